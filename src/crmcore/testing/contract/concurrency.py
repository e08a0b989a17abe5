"""Threads sharing one store: unique numbers, conflicts surfacing as errors, idempotent ingest."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from crmcore.clock import FixedClock
from crmcore.domain import Money, Transaction, TransactionKind
from crmcore.errors import ConcurrencyError
from crmcore.ports import Store
from crmcore.services import Crm
from crmcore.testing.contract._races import RaceCases
from crmcore.testing.contract._support import StoreFixture

__all__ = ["ConcurrencyContract"]

T = TypeVar("T")

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def run_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0) .. work(count - 1)`` on ``count`` threads at once; their results."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count)))


class ConcurrencyContract(RaceCases, StoreFixture):
    """What a store shared by threads must do, as pytest test methods.

    :data:`THREADS` threads use one store (each its own units of work, through
    :class:`~crmcore.services.Crm`): numbers allocated at once are unique, a lost update is
    refused with :class:`~crmcore.errors.ConcurrencyError` (and retries all land), one
    record ingested by every thread at once is stored once, a merge racing with threads that
    record for the duplicate loses no record reported as created, and an erase racing with
    updates and recordings leaves none of the customer's data behind (the race cases repeat
    for several customers; ``CRMCORE_RACE_ROUNDS`` sets how many).

    Apply it like :class:`~crmcore.testing.contract.StoreContract`, to a store that threads
    can share. crmcore applies it to the in-memory store, a SQLite *file*, PostgreSQL and
    MariaDB; not to SQLite ``:memory:`` (one connection, nothing to race: a file database is
    the embedded SQLite that threads share).
    """

    THREADS = 8
    """Threads racing in each case."""
    REGISTRATIONS_PER_THREAD = 500
    """Customers each thread registers in the allocation case."""

    def test_concurrent_registrations_get_unique_numbers(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(NOW))
        per_thread = self.REGISTRATIONS_PER_THREAD

        def register(worker: int) -> list[str]:
            return [crm.register(f"W{worker} #{i}").number.value for i in range(per_thread)]

        numbers = [n for batch in run_threads(self.THREADS, register) for n in batch]
        assert len(numbers) == self.THREADS * per_thread
        assert len(set(numbers)) == len(numbers)
        with store.unit_of_work() as uow:
            assert uow.customers.count() == self.THREADS * per_thread

    def test_concurrent_updates_lose_nothing(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(NOW))
        number = crm.register("Shared").number
        threads = self.THREADS
        barrier = threading.Barrier(threads)

        def race(worker: int) -> str:
            mine = crm.get(number)
            barrier.wait()  # everyone holds version 0 now
            mine.organisation = f"worker {worker}"
            try:
                crm.update(mine)
            except ConcurrencyError:
                return "lost"
            return "won"

        outcomes = run_threads(threads, race)
        assert outcomes.count("won") == 1
        assert outcomes.count("lost") == threads - 1
        assert crm.get(number).version == 1

        # Retrying loops: every increment lands exactly once.
        def increment(worker: int) -> int:
            done = 0
            while done < 5:
                customer = crm.get(number)
                count = customer.attributes.get("n", 0)
                assert isinstance(count, int)
                customer.attributes = {"n": count + 1}
                try:
                    crm.update(customer)
                except ConcurrencyError:
                    continue
                done += 1
            return done

        assert sum(run_threads(threads, increment)) == threads * 5
        final = crm.get(number)
        assert final.attributes["n"] == threads * 5
        assert final.version == 1 + threads * 5

    def test_concurrent_duplicate_ingest_stores_one_row(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(NOW))
        number = crm.register("Buyer").number
        barrier = threading.Barrier(self.THREADS)

        def ingest(_: int) -> bool:
            tx = Transaction(
                customer=number,
                occurred_at=NOW,
                kind=TransactionKind.PURCHASE,
                total=Money.from_minor_units(500, store.reporting_currency),
                source="erp",
                external_ref="INV-1",
            )
            barrier.wait()
            return crm.record_transaction(tx).created

        created = run_threads(self.THREADS, ingest)
        assert created.count(True) == 1
        with store.unit_of_work() as uow:
            assert len(list(uow.transactions.for_customer(number))) == 1
            assert uow.aggregates.get(number).purchase_count == 1
