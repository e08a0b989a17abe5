"""The adapter contract on the SQLAlchemy store: SQLite (memory and file), PostgreSQL, MariaDB.

PostgreSQL and MariaDB get one database per test session (``postgres_url``/``mariadb_url``);
every test creates its own tables under a unique prefix and drops them afterwards, so tests
start empty and never see each other's rows.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis.stateful import run_state_machine_as_test

from crmcore.ports import Store
from crmcore.testing.contract import StoreContract
from crmcore.testing.stateful import DifferentialStoreMachine, make_differential_machine

from .conftest import STATEFUL_SETTINGS

sqlalchemy = pytest.importorskip("sqlalchemy")
sqlalchemy_adapter = pytest.importorskip("crmcore.adapters.sqlalchemy")
SqlStore = sqlalchemy_adapter.SqlStore


def _unique_prefix() -> str:
    return f"c{uuid.uuid4().hex[:8]}_"


class TestSqliteMemoryStore(StoreContract):
    def make_store(self) -> Store:
        return SqlStore.from_url("sqlite:///:memory:", create_schema=True)  # type: ignore[no-any-return]

    def close_store(self, store: Store) -> None:
        store.close()  # type: ignore[attr-defined]


class TestSqliteFileStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _database_file(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'crm.sqlite'}"

    def make_store(self) -> Store:
        return SqlStore.from_url(self.url, create_schema=True)  # type: ignore[no-any-return]

    def close_store(self, store: Store) -> None:
        store.close()  # type: ignore[attr-defined]


class _ServerStoreContract(StoreContract):
    url: str

    def make_store(self) -> Store:
        return SqlStore.from_url(  # type: ignore[no-any-return]
            self.url, create_schema=True, table_prefix=_unique_prefix()
        )

    def close_store(self, store: Store) -> None:
        try:
            store.drop_schema()  # type: ignore[attr-defined]
        finally:
            store.close()  # type: ignore[attr-defined]


@pytest.mark.postgresql
class TestPostgresStore(_ServerStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url


@pytest.mark.mariadb
class TestMariadbStore(_ServerStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, mariadb_url: str) -> None:
        self.url = mariadb_url


# -- the differential state machine ------------------------------------------------------------


def _machine_on(store: Any) -> type[DifferentialStoreMachine]:
    """A machine whose every example starts from the same store with its rows deleted.

    Creating tables per example would dominate the run on a server; deleting the rows of the
    data tables (settings and the number counter stay) gives each example an empty store.
    """
    tables = store.tables
    keep = {tables.settings.name, tables.number_counter.name}
    data_tables = [t for t in reversed(tables.all) if t.name not in keep]

    def make_store() -> Store:
        with store.engine.begin() as conn:
            for table in data_tables:
                conn.execute(sqlalchemy.delete(table))
        return store  # type: ignore[no-any-return]

    return make_differential_machine(make_store, name=f"Differential_{store.dialect_name}")


def _run_machine(url: str, *, prefix: str = "crm_") -> None:
    store = SqlStore.from_url(url, create_schema=True, table_prefix=prefix)
    try:
        run_state_machine_as_test(_machine_on(store), settings=STATEFUL_SETTINGS)
    finally:
        if store.dialect_name != "sqlite":
            store.drop_schema()
        store.close()


def test_sqlite_memory_store_agrees_with_the_reference() -> None:
    _run_machine("sqlite:///:memory:")


def test_sqlite_file_store_agrees_with_the_reference(tmp_path: Path) -> None:
    _run_machine(f"sqlite:///{tmp_path / 'machine.sqlite'}")


@pytest.mark.postgresql
def test_postgres_store_agrees_with_the_reference(postgres_url: str) -> None:
    _run_machine(postgres_url, prefix=_unique_prefix())


@pytest.mark.mariadb
def test_mariadb_store_agrees_with_the_reference(mariadb_url: str) -> None:
    _run_machine(mariadb_url, prefix=_unique_prefix())
