"""Every driver exception class the adapter can meet is translated to a crmcore error."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
from tests.helpers import backend_url, sql_store, unique_prefix

from crmcore import (
    ConcurrencyError,
    ConfigurationError,
    Crm,
    DuplicateError,
    NotFound,
    ValidationError,
)
from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.adapters.sqlalchemy._errors import WITHHELD, translate, translated


@pytest.fixture(params=["sqlite-file", "postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with sql_store(backend_url(request, request.param, tmp_path), unique_prefix("er", 6)) as s:
        yield s


def raw(store: SqlStore, stmt: sa.Executable) -> BaseException:
    """Run a statement that violates the schema; return the driver's exception, translated."""
    assert store.engine is not None
    with store.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as info:
        conn.execute(stmt)
    return translate(info.value, "row")


PERSONAL = "ann.lee@example.com"


def _customer_row(number: str, **values: object) -> dict[str, object]:
    return {"number": number, "erased": False, "version": 0, **values}


def test_unique_violation_becomes_duplicate_error(store: SqlStore) -> None:
    t = store.tables.settings
    error = raw(store, sa.insert(t).values(key="reporting_currency", value="EUR"))
    assert isinstance(error, DuplicateError)
    assert store.tables.settings.name in str(error)


def test_unique_violation_names_the_constraint_not_the_value(store: SqlStore) -> None:
    c = store.tables.customers
    assert store.engine is not None
    with store.engine.begin() as conn:
        conn.execute(sa.insert(c).values(_customer_row("C1", source="erp", external_id=PERSONAL)))
    error = raw(store, sa.insert(c).values(_customer_row("C2", source="erp", external_id=PERSONAL)))
    assert isinstance(error, DuplicateError)
    assert "ann" not in str(error) and PERSONAL not in repr(error.key)
    # PostgreSQL and MariaDB name the constraint, SQLite the columns.
    assert f"{c.name}_source_external_id" in str(error) or f"{c.name}.external_id" in str(error)


def test_foreign_key_violation_becomes_not_found(store: SqlStore) -> None:
    t = store.tables.customer_tags
    error = raw(store, sa.insert(t).values(customer="C0000000013", tag="vip"))
    assert isinstance(error, NotFound)
    assert error.kind == "customer"


def test_not_null_violation_becomes_validation_error_naming_the_column(store: SqlStore) -> None:
    t = store.tables.settings
    error = raw(store, sa.insert(t).values(key="x", value=None))
    assert isinstance(error, ValidationError)
    assert error.field == "value"
    assert "required" in error.reason
    # MariaDB's message names the column only; the others name the table too.
    assert t.name in error.reason or store.dialect_name == "mariadb"


def test_check_violation_becomes_validation_error_naming_the_constraint(store: SqlStore) -> None:
    assert store.engine is not None
    name = f"{store.tables.prefix}checked"
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(100)),
        sa.CheckConstraint("n > 0", name=f"ck_{name}_positive"),
    )
    table.create(store.engine)
    try:
        error = raw(store, sa.insert(table).values(n=-1, email=PERSONAL))
    finally:
        table.drop(store.engine)
    assert isinstance(error, ValidationError)
    assert error.value is WITHHELD and "ann" not in str(error)
    assert f"ck_{name}_positive" in error.reason or store.dialect_name == "sqlite"
    assert "check constraint" in error.reason


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_data_error_becomes_validation_error_without_the_value(
    request: pytest.FixtureRequest, server: str
) -> None:
    """A value the column cannot hold (SQLite does not enforce VARCHAR lengths)."""
    url = str(request.getfixturevalue(f"{server}_url"))
    store = SqlStore.from_url(url, create_schema=True, table_prefix=f"dt{uuid.uuid4().hex[:6]}_")
    try:
        too_long = PERSONAL * 20
        error = raw(store, sa.insert(store.tables.settings).values(key="k", value=too_long))
    finally:
        store.drop_schema()
        store.close()
    assert isinstance(error, ValidationError)
    assert error.value is WITHHELD
    assert "ann" not in str(error)
    assert error.field == "value" or server == "postgres"


@pytest.mark.parametrize(
    ("cls", "orig", "expected", "names"),
    [
        (
            sa.exc.IntegrityError,
            pymysql.err.IntegrityError(
                1062, f"Duplicate entry 'erp-{PERSONAL}' for key 'uq_crm_customers_x'"
            ),
            DuplicateError,
            "uq_crm_customers_x",
        ),
        (
            sa.exc.DataError,
            pymysql.err.DataError(
                1366, f"Incorrect string value: '{PERSONAL}' for column `db`.`t`.`notes` at row 1"
            ),
            ValidationError,
            "notes",
        ),
        (
            sa.exc.DataError,
            pymysql.err.DataError(1406, "Data too long for column 'notes' at row 1"),
            ValidationError,
            "notes",
        ),
        (
            sa.exc.IntegrityError,
            pymysql.err.IntegrityError(4025, "CONSTRAINT `ck_t_a` failed for `db`.`t`"),
            ValidationError,
            "ck_t_a",
        ),
        (
            sa.exc.IntegrityError,
            pymysql.err.IntegrityError(
                1452,
                "Cannot add or update a child row: a foreign key constraint fails (`db`.`t`, "
                "CONSTRAINT `fk_t_customer` FOREIGN KEY (`customer`) REFERENCES `c` (`number`))",
            ),
            NotFound,
            "fk_t_customer",
        ),
        (
            sa.exc.OperationalError,
            pymysql.err.OperationalError(1213, f"Deadlock found ... row '{PERSONAL}'"),
            ConcurrencyError,
            "1213",
        ),
        (
            sa.exc.ProgrammingError,
            pymysql.err.ProgrammingError(1064, f"syntax error near '{PERSONAL}'"),
            ConfigurationError,
            "1064",
        ),
    ],
)
def test_driver_text_with_personal_data_never_reaches_the_message(
    cls: type[sa.exc.DBAPIError], orig: Exception, expected: type[Exception], names: str
) -> None:
    error = translate(cls("INSERT ...", {"v": PERSONAL}, orig), "interaction")
    assert isinstance(error, expected)
    assert names in str(error)
    assert "ann" not in str(error) and "example" not in str(error)


def test_a_crmcore_error_raised_while_binding_comes_out_as_itself(store: SqlStore) -> None:
    assert store.engine is not None
    t = store.tables.segment_runs
    with (
        store.engine.connect() as conn,
        pytest.raises(ValidationError, match="naive"),
        translated("segment run"),
    ):
        conn.execute(sa.insert(t).values(segment="x", as_of=dt.datetime(2024, 1, 1)))


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
