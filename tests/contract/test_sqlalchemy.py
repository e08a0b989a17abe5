"""The adapter contract on the SQLAlchemy store: SQLite (memory and file), PostgreSQL, MariaDB.

PostgreSQL and MariaDB get one database per test session (``postgres_url``/``mariadb_url``);
every test creates its own tables under a unique prefix and drops them afterwards, so tests
start empty and never see each other's rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis.stateful import run_state_machine_as_test
from tests.helpers import delete_rows, unique_prefix

from crmcore.domain import CrmNumber
from crmcore.ports import Store
from crmcore.testing.contract import (
    ConcurrencyContract,
    MetricsSourceContract,
    StoreContract,
    TransferContract,
)
from crmcore.testing.stateful import DifferentialStoreMachine, make_differential_machine

from .conftest import STATEFUL_SETTINGS

sqlalchemy = pytest.importorskip("sqlalchemy")
sqlalchemy_adapter = pytest.importorskip("crmcore.adapters.sqlalchemy")
SqlStore = sqlalchemy_adapter.SqlStore


# -- how each backend makes a store ------------------------------------------------------------


class _SqliteMemory:
    keyring: Any = None  # test_sqlalchemy_encrypted.py runs the same contracts with one

    def make_store(self) -> Store:
        return SqlStore.from_url(  # type: ignore[no-any-return]
            "sqlite:///:memory:", create_schema=True, keyring=self.keyring
        )

    def close_store(self, store: Store) -> None:
        store.close()  # type: ignore[attr-defined]


class _SqliteFile:
    url: str
    keyring: Any = None

    @pytest.fixture(autouse=True)
    def _database_file(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'crm.sqlite'}"

    def make_store(self) -> Store:
        return SqlStore.from_url(  # type: ignore[no-any-return]
            self.url, create_schema=True, keyring=self.keyring
        )

    def close_store(self, store: Store) -> None:
        store.close()  # type: ignore[attr-defined]

    def empty_store(self, store: Store) -> bool:
        delete_rows(store)
        return True


class _Server:
    url: str
    keyring: Any = None

    def make_store(self) -> Store:
        return SqlStore.from_url(  # type: ignore[no-any-return]
            self.url, create_schema=True, table_prefix=unique_prefix(), keyring=self.keyring
        )

    def close_store(self, store: Store) -> None:
        try:
            store.drop_schema()  # type: ignore[attr-defined]
        finally:
            store.close()  # type: ignore[attr-defined]

    def empty_store(self, store: Store) -> bool:
        delete_rows(store)
        return True


class _Postgres(_Server):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url


class _Mariadb(_Server):
    @pytest.fixture(autouse=True)
    def _database(self, mariadb_url: str) -> None:
        self.url = mariadb_url


# -- the store contract ------------------------------------------------------------------------


class TestSqliteMemoryStore(_SqliteMemory, StoreContract):
    pass


class TestSqliteFileStore(_SqliteFile, StoreContract):
    pass


@pytest.mark.postgresql
class TestPostgresStore(_Postgres, StoreContract):
    pass


@pytest.mark.mariadb
class TestMariadbStore(_Mariadb, StoreContract):
    pass


# -- dump, restore, copy: the transfer contract ---------------------------------------------------


class TestSqliteMemoryTransfer(_SqliteMemory, TransferContract):
    pass


class TestSqliteFileTransfer(_SqliteFile, TransferContract):
    pass


@pytest.mark.postgresql
class TestPostgresTransfer(_Postgres, TransferContract):
    pass


@pytest.mark.mariadb
class TestMariadbTransfer(_Mariadb, TransferContract):
    pass


# -- analytics pushed down: the metrics source contract -----------------------------------------


class TestSqliteFileMetrics(_SqliteFile, MetricsSourceContract):
    ROWS_IN_NUMBER_ORDER = True


@pytest.mark.postgresql
class TestPostgresMetrics(_Postgres, MetricsSourceContract):
    ROWS_IN_NUMBER_ORDER = True


@pytest.mark.mariadb
class TestMariadbMetrics(_Mariadb, MetricsSourceContract):
    ROWS_IN_NUMBER_ORDER = True


# -- threads: the concurrency contract (not on SQLite :memory:, one connection) -----------------


def _count_transaction_rows(store: Any) -> int:
    t = store.tables.transactions
    with store.engine.connect() as conn:
        return int(conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(t)).scalar())


def _leftover_rows(store: Any, number: CrmNumber) -> list[str]:
    """Rows of every table still holding data of ``number``: any child row at all, and any
    non-NULL column of its tombstone but the number, the erased flag and the version."""
    left: list[str] = []
    kept = {"number", "erased", "version"}
    with store.engine.connect() as conn:
        for table in store.tables.all:
            # The audit log keeps its entries about an erased customer by design: they hold
            # nothing personal (tests/integration/test_audit.py dumps them to prove it).
            if "customer" in table.c and table is not store.tables.audit_log:
                rows = conn.execute(
                    sqlalchemy.select(sqlalchemy.func.count())
                    .select_from(table)
                    .where(table.c.customer == number.value)
                ).scalar()
                if rows:
                    left.append(f"{rows} row(s) in {table.name}")
        customers = store.tables.customers
        row = (
            conn.execute(sqlalchemy.select(customers).where(customers.c.number == number.value))
            .mappings()
            .one()
        )
        left.extend(
            f"customers.{name}"
            for name, value in row.items()
            if name not in kept and value is not None
        )
    return left


class _SqlConcurrency(ConcurrencyContract):
    def test_concurrent_duplicate_ingest_stores_one_row(self, store: Store) -> None:
        super().test_concurrent_duplicate_ingest_stores_one_row(store)
        assert _count_transaction_rows(store) == 1

    def leftover_rows(self, store: Store, number: CrmNumber) -> list[str]:
        return _leftover_rows(store, number)


class TestSqliteFileConcurrency(_SqliteFile, _SqlConcurrency):
    def make_store(self) -> Store:
        return SqlStore.from_url(  # type: ignore[no-any-return]
            self.url, create_schema=True, table_prefix=unique_prefix("cc", 6)
        )


@pytest.mark.postgresql
class TestPostgresConcurrency(_Postgres, _SqlConcurrency):
    pass


@pytest.mark.mariadb
class TestMariadbConcurrency(_Mariadb, _SqlConcurrency):
    pass


# -- the differential state machine ------------------------------------------------------------


def _machine_on(store: Any) -> type[DifferentialStoreMachine]:
    """A machine whose every example starts from the same store with its rows deleted.

    Creating tables per example would dominate the run on a server; deleting the rows of the
    data tables (settings and the number counter stay) gives each example an empty store.
    """

    def make_store() -> Store:
        delete_rows(store)
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
    _run_machine(postgres_url, prefix=unique_prefix())


@pytest.mark.mariadb
def test_mariadb_store_agrees_with_the_reference(mariadb_url: str) -> None:
    _run_machine(mariadb_url, prefix=unique_prefix())
