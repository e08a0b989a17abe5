"""Shared test configuration: database services and hypothesis profiles.

PostgreSQL and MariaDB URLs come from ``CRMCORE_TEST_POSTGRES_URL`` and
``CRMCORE_TEST_MARIADB_URL`` (defaults: the loopback services of the development machines).
Each test session creates its own uniquely named database on each server and drops it at the
end, so concurrent runs never see each other's rows. An unreachable server skips the tests
that need it with a one-line reason, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")

POSTGRES_URL = os.environ.get(
    "CRMCORE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("CRMCORE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI") == "true"


def _unavailable(service: str, error: BaseException) -> None:
    reason = f"{service} not reachable ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    if IN_CI:
        pytest.fail(f"{reason}; under CI=true a missing service is a failure", pytrace=False)
    pytest.skip(reason)


def _fresh_database(base_url: str, service: str) -> Iterator[str]:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    url = sqlalchemy.engine.make_url(base_url)
    name = f"crmcore_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        admin.dispose()
        _unavailable(service, exc)
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if url.get_backend_name() == "postgresql":
                conn.execute(
                    sqlalchemy.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session (dropped at the end)."""
    yield from _fresh_database(POSTGRES_URL, "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL of a fresh MariaDB database for this test session (dropped at the end)."""
    yield from _fresh_database(MARIADB_URL, "MariaDB")
