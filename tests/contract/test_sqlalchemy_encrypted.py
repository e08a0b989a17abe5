"""The adapter contract on *encrypted* SQL stores (a key ring: personal fields sealed, e-mail
and phone look-ups through blind indexes): every contract an encrypted store must keep as
the plaintext one does, on SQLite (memory and file), PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis.stateful import run_state_machine_as_test
from tests.helpers import delete_rows, unique_prefix

from crmcore.ports import Store
from crmcore.testing.contract import (
    ConcurrencyContract,
    MetricsSourceContract,
    StoreContract,
    TransferContract,
)
from crmcore.testing.stateful import make_differential_machine

from .conftest import STATEFUL_SETTINGS

# Before the import of test_sqlalchemy, whose own skip would otherwise surface here as an
# error in an environment without the extras.
pytest.importorskip("sqlalchemy")
pytest.importorskip("cryptography")
from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.crypto import KeyRing

from . import test_sqlalchemy
from .test_sqlalchemy import _leftover_rows

RING = KeyRing.generate()


class _SqliteMemory(test_sqlalchemy._SqliteMemory):
    keyring = RING


class _SqliteFile(test_sqlalchemy._SqliteFile):
    keyring = RING


class _Postgres(test_sqlalchemy._Postgres):
    keyring = RING


class _Mariadb(test_sqlalchemy._Mariadb):
    keyring = RING


class TestEncryptedSqliteMemoryStore(_SqliteMemory, StoreContract):
    pass


class TestEncryptedSqliteFileStore(_SqliteFile, StoreContract):
    pass


@pytest.mark.postgresql
class TestEncryptedPostgresStore(_Postgres, StoreContract):
    pass


@pytest.mark.mariadb
class TestEncryptedMariadbStore(_Mariadb, StoreContract):
    pass


class TestEncryptedSqliteFileTransfer(_SqliteFile, TransferContract):
    pass


@pytest.mark.postgresql
class TestEncryptedPostgresTransfer(_Postgres, TransferContract):
    pass


@pytest.mark.mariadb
class TestEncryptedMariadbTransfer(_Mariadb, TransferContract):
    pass


class TestEncryptedSqliteFileMetrics(_SqliteFile, MetricsSourceContract):
    ROWS_IN_NUMBER_ORDER = True


@pytest.mark.postgresql
class TestEncryptedPostgresMetrics(_Postgres, MetricsSourceContract):
    ROWS_IN_NUMBER_ORDER = True


@pytest.mark.mariadb
class TestEncryptedMariadbMetrics(_Mariadb, MetricsSourceContract):
    ROWS_IN_NUMBER_ORDER = True


class _Concurrency(ConcurrencyContract):
    def leftover_rows(self, store: Store, number: Any) -> list[str]:
        return _leftover_rows(store, number)


class TestEncryptedSqliteFileConcurrency(_SqliteFile, _Concurrency):
    def make_store(self) -> Store:
        return SqlStore.from_url(
            self.url, create_schema=True, table_prefix=unique_prefix("cc", 6), keyring=RING
        )


@pytest.mark.postgresql
class TestEncryptedPostgresConcurrency(_Postgres, _Concurrency):
    pass


@pytest.mark.mariadb
class TestEncryptedMariadbConcurrency(_Mariadb, _Concurrency):
    pass


def _run_machine(url: str, *, prefix: str = "crm_") -> None:
    store = SqlStore.from_url(url, create_schema=True, table_prefix=prefix, keyring=RING)

    def make_store() -> Store:
        delete_rows(store)
        return store

    try:
        machine = make_differential_machine(make_store, name="EncryptedDifferential")
        run_state_machine_as_test(machine, settings=STATEFUL_SETTINGS)
    finally:
        if store.dialect_name != "sqlite":
            store.drop_schema()
        store.close()


def test_encrypted_sqlite_store_agrees_with_the_reference(tmp_path: Path) -> None:
    _run_machine(f"sqlite:///{tmp_path / 'machine.sqlite'}")


@pytest.mark.postgresql
def test_encrypted_postgres_store_agrees_with_the_reference(postgres_url: str) -> None:
    _run_machine(postgres_url, prefix=unique_prefix())


@pytest.mark.mariadb
def test_encrypted_mariadb_store_agrees_with_the_reference(mariadb_url: str) -> None:
    _run_machine(mariadb_url, prefix=unique_prefix())
