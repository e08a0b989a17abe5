"""Development sessions: tests, tests_minimal, lint, typecheck, docs, bench, demo.

``nox -s tests`` is the README's test command and what CI runs: the full suite, under
coverage, on the oldest supported Python and on the newest CPython (a missing interpreter is
skipped locally and an error under ``CI``). ``nox -s tests_minimal`` runs the tests with only
the ``[testing]`` extra, so whatever needs another extra must skip cleanly.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "tests_minimal", "lint", "typecheck", "docs"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

PACKAGE_EXTRAS = ".[all,dataframes]"

# The oldest supported Python and the newest CPython. The first one runs at the sizes the
# caller asks for (.ci/run: the large CI sizes); the others at the everyday sizes, so a second
# interpreter adds minutes, not another full CI run.
PYTHONS = ["3.11", "3.13"]
EVERYDAY_SIZES = {"CRMCORE_STATEFUL_EXAMPLES": "25", "CRMCORE_SQL_RULES_PER_STORE": "120"}


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The full test suite: unit, contract on every backend, integration, docs examples.

    On the first Python it runs under coverage, xdist workers included (``patch =
    ["subprocess"]`` in pyproject.toml), and the report fails under ``[tool.coverage.report]
    fail_under``.
    """
    # duckdb: the benchmark smoke test runs the baselines; lifetimes: the predictive models
    # are checked against it on the CDNOW log it ships (neither is a crmcore dependency).
    session.install(
        "-e",
        PACKAGE_EXTRAS,
        "pytest-xdist>=3.5",
        "coverage[toml]>=7.10",
        "duckdb>=1.0",
        "lifetimes>=0.11",
    )
    args = session.posargs or ["-n", "2"]
    env = {"PYTHONHASHSEED": "0", "COVERAGE_FILE": os.path.join(session.create_tmp(), ".coverage")}
    if session.python != PYTHONS[0]:
        # A compatibility run: everyday sizes, no coverage (measured once, on the first).
        env.update(EVERYDAY_SIZES)
        session.run("pytest", *args, env=env)
        return
    session.run("coverage", "erase", env=env)
    session.run("coverage", "run", "-m", "pytest", *args, env=env)
    session.run("coverage", "combine", "--quiet", env=env)
    session.run("coverage", "report", env=env)


@nox.session
def tests_minimal(session: nox.Session) -> None:
    """The tests with only the ``[testing]`` extra: no SQLAlchemy, drivers, CLI or dataframes.

    Tests that need another extra skip (``pytest.importorskip``); this is the only run where
    such skips are expected (tests/test_extras.py fails them under ``CI`` elsewhere).
    """
    session.install("-e", ".[testing]", "pytest-xdist>=3.5")
    args = session.posargs or ["-n", "2", "tests"]
    session.run("pytest", *args, env={"PYTHONHASHSEED": "0", "CRMCORE_MINIMAL_EXTRAS": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style, bugs, security) and import-linter (the layers of DESIGN.md section 1)."""
    # lint-imports finds the package through the import system: the plain install, no extras.
    session.install("ruff>=0.5", "import-linter>=2.1", "-e", ".")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("lint-imports")


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
