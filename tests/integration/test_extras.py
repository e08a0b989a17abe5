"""Guard: the integration modules left out for want of an extra (see ``conftest.py``).

Each left-out module shows up here as a skip with its reason. Under ``CI=true`` that is a
failure, except in ``nox -s tests_minimal`` (``CRMCORE_MINIMAL_EXTRAS=1``), the one run where
the extras are missing on purpose.
"""

from __future__ import annotations

import os

import pytest

from .conftest import NEEDS, missing

MISSING_EXTRAS_EXPECTED = os.environ.get("CRMCORE_MINIMAL_EXTRAS") == "1"
IN_CI = os.environ.get("CI") == "true"


@pytest.mark.parametrize("pattern", sorted(NEEDS))
def test_integration_module_is_collected(pattern: str) -> None:
    absent = missing(NEEDS[pattern])
    if not absent:
        return
    reason = f"tests/integration/{pattern} not collected: {', '.join(absent)} not installed"
    if IN_CI and not MISSING_EXTRAS_EXPECTED:
        pytest.fail(f"{reason}; under CI=true every extra must be installed", pytrace=False)
    pytest.skip(reason)


# Every optional import the tests use: crmcore's extras, plus duckdb for the benchmark smoke
# test (it skips through ``pytest.importorskip`` when one is missing).
EXTRAS = (
    "alembic",
    "click",
    "cryptography",
    "duckdb",
    "pandas",
    "polars",
    "psycopg",
    "pyarrow",
    "pymysql",
    "rich",
    "sqlalchemy",
)


@pytest.mark.skipif(
    not IN_CI or MISSING_EXTRAS_EXPECTED, reason="checked under CI=true with the full extras"
)
def test_ci_installs_every_extra() -> None:
    assert missing(EXTRAS) == []
