"""Development sessions: tests, lint, typecheck, docs, bench, demo.

``nox -s tests`` is the README's test command and what CI runs.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

PACKAGE_EXTRAS = ".[all,dataframes]"


@nox.session
def tests(session: nox.Session) -> None:
    """The full test suite: unit, contract on every backend, integration, docs examples."""
    # duckdb: the benchmark smoke test runs the baselines (they are not crmcore dependencies).
    session.install("-e", PACKAGE_EXTRAS, "pytest-xdist>=3.5", "coverage[toml]>=7", "duckdb>=1.0")
    args = session.posargs or ["-n", "2"]
    session.run("pytest", *args, env={"PYTHONHASHSEED": "0"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: style, bugs, security and layering checks."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and on a typing-only file exercising the public API."""
    session.install("-e", PACKAGE_EXTRAS, "mypy>=1.10")
    session.run("mypy", "--strict", "src/crmcore")
    session.run("mypy", "--strict", "tests/typing/public_api.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation in strict mode (warnings are errors)."""
    session.install(
        "-e", PACKAGE_EXTRAS, "mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.25"
    )
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", os.path.join(session.create_tmp(), "site")
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Segmentation benchmarks against pandas, polars, DuckDB and plain SQL.

    ``nox -s bench -- --size S`` (default), ``--size L`` for 1M customers, ``--json FILE``.
    """
    session.install(
        "-e",
        PACKAGE_EXTRAS,
        "pandas>=2.1",
        "polars>=0.20",
        "duckdb>=1.0",
        "pyarrow>=14",
        "psutil>=5.9",
    )
    session.run("python", "-m", "benchmarks", *(session.posargs or ["--size", "S"]))


@nox.session
def demo(session: nox.Session) -> None:
    """Run the demo: a synthetic store, scored and segmented, on a SQLite file."""
    session.install("-e", PACKAGE_EXTRAS)
    session.run("crmcore", "demo", *session.posargs)
