"""Concurrency on PostgreSQL and a SQLite file: allocation, lost updates, duplicate ingest."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crmcore import ConcurrencyError, Crm, FixedClock, Money, Transaction
from crmcore.adapters.sqlalchemy import SqlStore

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
THREADS = 8


@pytest.fixture(params=["sqlite-file", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite-file":
        url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    s = SqlStore.from_url(url, create_schema=True, table_prefix=f"cc{uuid.uuid4().hex[:6]}_")
    try:
        yield s
    finally:
        s.drop_schema()
        s.close()


def run_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count)))


def test_concurrent_registrations_get_unique_numbers(store: SqlStore) -> None:
    crm = Crm(store, clock=FixedClock(NOW))
    per_thread = 500

    def register(worker: int) -> list[str]:
        return [crm.register(f"W{worker} #{i}").number.value for i in range(per_thread)]

    numbers = [n for batch in run_threads(THREADS, register) for n in batch]
    assert len(numbers) == THREADS * per_thread
    assert len(set(numbers)) == len(numbers)
    with store.unit_of_work() as uow:
        assert uow.customers.count() == THREADS * per_thread


def test_concurrent_updates_lose_nothing(store: SqlStore) -> None:
    crm = Crm(store, clock=FixedClock(NOW))
    number = crm.register("Shared").number
    barrier = threading.Barrier(THREADS)

    def race(worker: int) -> str:
        mine = crm.get(number)
        barrier.wait()  # everyone holds version 0 now
        mine.organisation = f"worker {worker}"
        try:
            crm.update(mine)
        except ConcurrencyError:
            return "lost"
        return "won"

    outcomes = run_threads(THREADS, race)
    assert outcomes.count("won") == 1
    assert outcomes.count("lost") == THREADS - 1
    assert crm.get(number).version == 1

    # Retrying loops: every increment lands exactly once.
    def increment(worker: int) -> int:
        done = 0
        while done < 5:
            customer = crm.get(number)
            customer.attributes = {"n": int(customer.attributes.get("n", 0)) + 1}
            try:
                crm.update(customer)
            except ConcurrencyError:
                continue
            done += 1
        return done

    assert sum(run_threads(THREADS, increment)) == THREADS * 5
    final = crm.get(number)
    assert final.attributes["n"] == THREADS * 5
    assert final.version == 1 + THREADS * 5


def test_concurrent_duplicate_ingest_stores_one_row(store: SqlStore) -> None:
    crm = Crm(store, clock=FixedClock(NOW))
    number = crm.register("Buyer").number
    barrier = threading.Barrier(THREADS)

    def ingest(_: int) -> bool:
        tx = Transaction(
            customer=number,
            occurred_at=NOW,
            kind="purchase",
            total=Money("5.00", "USD"),
            source="erp",
            external_ref="INV-1",
        )
        barrier.wait()
        return crm.record_transaction(tx).created

    created = run_threads(THREADS, ingest)
    assert created.count(True) == 1
    t = store.tables.transactions
    assert store.engine is not None
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() == 1
    with store.unit_of_work() as uow:
        assert uow.aggregates.get(number).purchase_count == 1
