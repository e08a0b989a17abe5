"""Every driver exception class the adapter can meet is translated to a crmcore error."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crmcore import ConcurrencyError, ConfigurationError, Crm, DuplicateError, NotFound
from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.adapters.sqlalchemy._errors import translate, translated


@pytest.fixture(params=["sqlite-file", "postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite-file":
        url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    elif request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    else:
        url = str(request.getfixturevalue("mariadb_url"))
    s = SqlStore.from_url(url, create_schema=True, table_prefix=f"er{uuid.uuid4().hex[:6]}_")
    try:
        yield s
    finally:
        s.drop_schema()
        s.close()


def raw(store: SqlStore, stmt: sa.Executable) -> BaseException:
    """Run a statement that violates the schema; return the driver's exception, translated."""
    assert store.engine is not None
    with store.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as info:
        conn.execute(stmt)
    return translate(info.value, "row")


def test_unique_violation_becomes_duplicate_error(store: SqlStore) -> None:
    t = store.tables.settings
    error = raw(store, sa.insert(t).values(key="reporting_currency", value="EUR"))
    assert isinstance(error, DuplicateError)


def test_foreign_key_violation_becomes_not_found(store: SqlStore) -> None:
    t = store.tables.customer_tags
    error = raw(store, sa.insert(t).values(customer="C0000000013", tag="vip"))
    assert isinstance(error, NotFound)


def test_missing_schema_becomes_configuration_error(store: SqlStore) -> None:
    assert store.engine is not None
    other = SqlStore(store.engine, table_prefix="missing_")
    with pytest.raises(ConfigurationError, match="schema is missing"), other.unit_of_work() as u:
        u.customers.count()


def test_unreachable_database_becomes_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not reachable"):
        SqlStore.from_url("sqlite:////nonexistent-dir/x/crm.sqlite")
    with pytest.raises(ConfigurationError):
        SqlStore.from_url("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigurationError):
        SqlStore.from_url("nosuchdialect://x")


def test_lock_conflicts_become_concurrency_error(store: SqlStore) -> None:
    """Deadlock / lock timeout / serialization failure / "database is locked"."""
    assert store.engine is not None
    t = store.tables.number_counter
    name = store.dialect_name
    holder = store.engine.connect()
    try:
        if name == "sqlite":
            holder.execution_options(crmcore_lazy_begin=True)
            holder.exec_driver_sql("BEGIN IMMEDIATE")
            waiter = sa.create_engine(
                store.engine.url, connect_args={"timeout": 0.05, "isolation_level": None}
            )
        else:
            holder.begin()
            waiter = sa.create_engine(store.engine.url)
        holder.execute(sa.update(t).values(value=t.c.value + 1))
        with waiter.connect() as conn:
            if name == "postgresql":
                conn.exec_driver_sql("SET lock_timeout = '50ms'")
            elif name != "sqlite":
                conn.exec_driver_sql("SET innodb_lock_wait_timeout = 1")
            # SQLite needs the write lock at BEGIN IMMEDIATE; the servers at the UPDATE.
            sql = "BEGIN IMMEDIATE" if name == "sqlite" else f"UPDATE {t.name} SET value = 1"
            with pytest.raises(ConcurrencyError), translated("counter"):
                conn.exec_driver_sql(sql)
        waiter.dispose()
    finally:
        holder.rollback()
        holder.close()


def test_postgres_serialization_failure_becomes_concurrency_error(postgres_url: str) -> None:
    store = SqlStore.from_url(postgres_url, create_schema=True, table_prefix="ser_")
    engine = sa.create_engine(postgres_url, isolation_level="SERIALIZABLE")
    t = store.tables.number_counter
    try:
        with engine.connect() as a, engine.connect() as b:
            a.execute(sa.select(t.c.value)).all()
            b.execute(sa.select(t.c.value)).all()
            a.execute(sa.update(t).values(value=t.c.value + 1))
            a.commit()
            with pytest.raises(ConcurrencyError), translated("counter"):
                b.execute(sa.update(t).values(value=t.c.value + 1))
    finally:
        engine.dispose()
        store.drop_schema()
        store.close()


def test_service_errors_stay_crmcore_errors(store: SqlStore) -> None:
    crm = Crm(store)
    ann = crm.register("Ann", source="erp", external_id="1")
    with pytest.raises(DuplicateError):
        crm.register("Ann again", source="erp", external_id="1")
    assert crm.get(ann.number).name.display == "Ann"
    assert threading.active_count() >= 1
