"""SQL specifics of analytics pushed down into the database, on every backend.

What every store's analytics must do (snapshots equal to the fold of the history, rule members
and window-function RFM scores equal to numpy's) is ``MetricsSourceContract``, applied to each
backend in ``tests/contract/test_sqlalchemy.py``. Here: PostgreSQL's packed snapshots, bound
rule parameters, a host's schema translation, the chunked row fetch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from tests.helpers import rows_by_number

from crmcore import Crm, FixedClock, InMemoryStore, Money, SqlStore, Transaction
from crmcore._epoch import to_us
from crmcore.adapters.sqlalchemy._frame import build_frame
from crmcore.adapters.sqlalchemy._rules import compile_where
from crmcore.analytics import (
    FIELDS,
    Compare,
    HasTag,
    Match,
    Or,
)
from crmcore.domain import CrmNumber, TransactionKind
from crmcore.errors import ConfigurationError
from crmcore.services import Analytics
from crmcore.testing.contract._support import History, fill_history, histories

BACKENDS = ["sqlite", "postgresql", "mariadb"]
LOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HIGH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def sql_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('analytics') / 'crm.db'}"
    elif request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    else:
        url = str(request.getfixturevalue("mariadb_url"))
    store = SqlStore.from_url(url, create_schema=True, table_prefix="an_")
    yield store
    store.drop_schema()
    store.close()


# -- snapshots ---------------------------------------------------------------------------------


@settings(max_examples=10)
@given(case=histories())
def test_packed_postgresql_snapshots_in_many_groups_equal_the_row_fetch(
    postgres_url: str, case: History
) -> None:
    # Tiny groups: the server hashes rows into many packed values, which arrive in no
    # particular order; the client must reorder them and place every tag exactly.
    from crmcore.adapters.sqlalchemy import _metrics, _pgpack
    from crmcore.adapters.sqlalchemy._metrics import SqlMetrics

    store = SqlStore.from_url(postgres_url, create_schema=True, table_prefix="pk_")
    try:
        fill_history(store, case)
        source = store.metrics_source()
        # Text profile fields and the consent ledger are fetched as rows, never packed.
        fields = sorted(set(FIELDS) - {"gender", "owner", "country", "consents"})
        with mock.patch.object(SqlMetrics, "_packed_snapshot", return_value=None):
            rows = rows_by_number(source.snapshot(case.as_of, fields))
        results: list[object] = []

        def recording(*args: Any) -> Any:
            results.append(_pgpack.fetch_packed(*args))
            return results[-1]

        with (
            mock.patch.object(_pgpack, "_GROUP_BYTES", 64),
            mock.patch.object(_metrics, "fetch_packed", recording),
        ):
            packed = source.snapshot(case.as_of, fields)
        assert results and all(r is not None for r in results)  # the packed path was taken
        assert [n.value for n in packed.numbers()] == sorted(rows)
        assert rows_by_number(packed) == rows
    finally:
        store.drop_schema()
        store.close()


def test_rule_values_are_bound_never_spliced(sql_store: SqlStore) -> None:
    frame = build_frame(
        sql_store.tables,
        sql_store.dialect_name,
        to_us(HIGH),
        {"owner", "number"},
        current_tx=True,
        current_ix=True,
    )
    evil = "O'Brien; DROP TABLE customers; --"
    rule = Or(
        (
            Compare("owner", "==", evil),
            Match("owner", "contains", evil),
            Match("owner", "startswith", evil),
            HasTag(evil),
        )
    )
    assert sql_store.engine is not None
    compiled = compile_where(rule, frame).compile(dialect=sql_store.engine.dialect)
    assert "DROP" not in str(compiled)
    assert any(evil in str(value) for value in compiled.params.values())


def test_engine_sql_needs_a_store_that_scores_itself() -> None:
    crm = Crm(InMemoryStore(), clock=FixedClock(HIGH))
    with pytest.raises(ConfigurationError):
        Analytics(crm).rfm(engine="sql")
    with pytest.raises(ConfigurationError):
        Analytics(crm).rfm(engine="pandas")  # type: ignore[arg-type]


def test_packed_snapshots_honour_a_host_schema_translate_map(postgres_url: str) -> None:
    # The packed path talks to the driver directly; a host connection that maps crmcore's
    # tables to another schema must still read that schema (the row fetch does).
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS tenant_b")
    public = SqlStore.from_url(postgres_url, create_schema=True, table_prefix="tm_")
    tenant = SqlStore.from_url(
        postgres_url, create_schema=True, table_prefix="tm_", schema="tenant_b"
    )
    try:
        for i in range(3):
            Crm(public, clock=FixedClock(HIGH)).register(f"P{i}", tags=["vip"])
        Crm(tenant, clock=FixedClock(HIGH)).register("T", tags=["gold"])
        with engine.connect() as conn:
            mapped = conn.execution_options(schema_translate_map={None: "tenant_b"})
            host = SqlStore(mapped, table_prefix="tm_")
            source = host.metrics_source()
            assert len(source.snapshot(HIGH, ["frequency"])) == 1
            metrics = source.snapshot(HIGH, ["frequency", "tags"])
            assert len(metrics) == 1
            assert metrics.tags.of_row(0) == {"gold"}
    finally:
        tenant.drop_schema()
        public.drop_schema()
        tenant.close()
        public.close()
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS tenant_b CASCADE")
        engine.dispose()


@pytest.mark.postgresql
def test_packed_snapshots_of_numbers_of_several_lengths_equal_the_row_fetch(
    postgres_url: str,
) -> None:
    # Numbers travel unpadded when all have one length; customers numbered by two schemes
    # make the server's row widths differ, and the fetch is repeated blank-padded; the tags
    # (of short-number customers only) then come padded too, and later snapshots pad at once.
    from crmcore.adapters.sqlalchemy import _metrics, _pgpack
    from crmcore.adapters.sqlalchemy._metrics import SqlMetrics
    from crmcore.domain import CrmNumberScheme, Customer, PersonName

    store = SqlStore.from_url(postgres_url, create_schema=True, table_prefix="ml_")
    try:
        short, long_ = CrmNumberScheme("S", 3), CrmNumberScheme("LONG", 12)
        made = [
            Customer(
                number=(short if i % 2 else long_).format(i + 1),
                name=PersonName(given=f"N{i}"),
                created_at=LOW,
                updated_at=LOW,
                tags=frozenset({"vip"} if i % 2 else ()),
            )
            for i in range(9)
        ]
        with store.unit_of_work() as uow:
            uow.customers.add_many(made)
            uow.commit()
        crm = Crm(store, clock=FixedClock(HIGH))
        crm.record_transaction(_purchase(made[0].number, HIGH - dt.timedelta(days=3)))
        source = store.metrics_source()
        fields = ["frequency", "tags", "stage", "birth_year"]
        with mock.patch.object(SqlMetrics, "_packed_snapshot", return_value=None):
            rows = rows_by_number(source.snapshot(HIGH, fields))
        pads: list[int | None] = []
        fetch_rows = _pgpack._fetch_rows

        def recording(*args: Any) -> Any:
            pads.append(args[-1])
            return fetch_rows(*args)

        results: list[object] = []

        def packed(*args: Any) -> Any:
            results.append(_pgpack.fetch_packed(*args))
            return results[-1]

        with (
            mock.patch.object(_pgpack, "_fetch_rows", recording),
            mock.patch.object(_metrics, "fetch_packed", packed),
        ):
            metrics = source.snapshot(HIGH, fields)
        assert results and all(r is not None for r in results)  # the packed path was taken
        assert pads == [None, 32, 32]  # rows uneven, padded again; tags padded
        assert [n.value for n in metrics.numbers()] == sorted(rows)
        assert rows_by_number(metrics) == rows
        pads.clear()
        with (
            mock.patch.object(_pgpack, "_fetch_rows", recording),
            mock.patch.object(_metrics, "fetch_packed", packed),
        ):
            again = source.snapshot(HIGH, fields)
        assert pads == [32, 32]
        assert rows_by_number(again) == rows
        assert sum(1 for row in rows.values() if row["tags"] == {"vip"}) == 4
    finally:
        store.drop_schema()
        store.close()


def test_row_fetch_in_chunks_equals_one_chunk(tmp_path: Any) -> None:
    # The row fetch transposes a few rows at a time; the chunk seams must not show.
    from crmcore.adapters.sqlalchemy import _metrics

    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'chunks.db'}", create_schema=True)
    try:
        crm = Crm(store, clock=FixedClock(HIGH))
        for i in range(11):
            number = crm.register(
                f"C{i}", tags=["vip"] if i % 3 == 0 else [], owner=f"o{i % 2}"
            ).number
            for day in range(i % 4):
                crm.record_transaction(_purchase(number, HIGH - dt.timedelta(days=day + 1)))
        source = store.metrics_source()
        whole = rows_by_number(source.snapshot(HIGH))
        with mock.patch.object(_metrics, "_FETCH_ROWS", 4):
            chunked = source.snapshot(HIGH)
        assert rows_by_number(chunked) == whole
        assert len(whole) == 11
    finally:
        store.close()


def _purchase(number: CrmNumber, at: dt.datetime) -> Transaction:
    return Transaction(number, at, TransactionKind.PURCHASE, Money(Decimal("12.50"), "USD"))
