"""Races between use cases on one customer: merge or erase while other threads write to it.

Private to :mod:`crmcore.testing.contract`: :class:`~crmcore.testing.contract.ConcurrencyContract`
inherits these cases. Each case starts its threads at a barrier and fires the merge or erase
while the writers are busy (once half of their work is done), and repeats that for
:attr:`RaceCases.RACE_ROUNDS` fresh customers, so that a loss which depends on timing
cannot pass by luck. ``CRMCORE_RACE_ROUNDS`` raises the count for a longer run.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from crmcore.clock import FixedClock
from crmcore.domain import (
    CrmNumber,
    Direction,
    EmailAddress,
    Interaction,
    InteractionChannel,
    InteractionKind,
    Money,
    Transaction,
    TransactionKind,
)
from crmcore.errors import ConcurrencyError, ErasedError, NotFound
from crmcore.ports import Store
from crmcore.services import Crm

__all__ = ["RaceCases"]

T = TypeVar("T")

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_HALFWAY_TIMEOUT = 30.0


def _rounds() -> int:
    return max(1, int(os.environ.get("CRMCORE_RACE_ROUNDS", "3")))


class _Halfway:
    """Counts the writers' successes; :meth:`wait` returns once ``target`` were counted (or
    every writer stopped), so the merge or erase lands in the middle of their work."""

    def __init__(self, target: int, writers: int) -> None:
        self._target = target
        self._writers = writers
        self._done = 0
        self._stopped = 0
        self._lock = threading.Lock()
        self._reached = threading.Event()

    def count(self) -> None:
        with self._lock:
            self._done += 1
            if self._done >= self._target:
                self._reached.set()

    def stopped(self) -> None:
        with self._lock:
            self._stopped += 1
            if self._stopped >= self._writers:
                self._reached.set()

    def wait(self) -> None:
        self._reached.wait(_HALFWAY_TIMEOUT)


def _run(count: int, work: Callable[[int], T]) -> list[T]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count)))


def _until_done(action: Callable[[], T]) -> T:
    """``action()``, retried while the store reports a conflict (a deadlock victim)."""
    while True:
        try:
            return action()
        except ConcurrencyError:
            continue


class RaceCases:
    """Merge and erase racing with writers of the same customer (see the module doc)."""

    THREADS: int
    RACE_ROUNDS = _rounds()
    """Fresh customers each race case runs on (``CRMCORE_RACE_ROUNDS``, default 3)."""
    WRITES_PER_THREAD = 24
    """Records (or updates) each writer thread tries per round."""

    def leftover_rows(self, store: Store, number: CrmNumber) -> list[str]:
        """Descriptions of stored rows still holding data of the erased ``number``, looked up
        below the store's API; the base contract checks through the API only (override it for
        a store whose tables you can read, as crmcore does for its SQL store)."""
        return []

    def test_merge_while_recording_loses_no_transaction(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(NOW))
        for round_ in range(self.RACE_ROUNDS):
            self._merge_round(store, crm, round_)

    def _merge_round(self, store: Store, crm: Crm, round_: int) -> None:
        writers = max(2, self.THREADS - 1)
        per_thread = self.WRITES_PER_THREAD
        keep = crm.register(f"Survivor {round_}").number
        drop = crm.register(f"Duplicate {round_}").number
        barrier = threading.Barrier(writers + 1)
        halfway = _Halfway(writers * per_thread // 2, writers)

        def work(worker: int) -> list[str]:
            barrier.wait()
            if worker == writers:
                halfway.wait()
                _until_done(lambda: crm.merge(keep, drop))
                return []
            created: list[str] = []
            try:
                for i in range(per_thread):
                    ref = f"M{round_}-{worker}-{i}"
                    tx = Transaction(
                        customer=drop,
                        occurred_at=NOW,
                        kind=TransactionKind.PURCHASE,
                        total=Money.from_minor_units(100 + i, store.reporting_currency),
                        source="race",
                        external_ref=ref,
                    )
                    try:
                        result = crm.record_transaction(tx)
                    except ConcurrencyError:
                        continue  # refused cleanly, nothing stored: fine
                    except (ErasedError, NotFound):
                        break  # the duplicate is retired: recording for it stops
                    assert result.created, ref
                    created.append(ref)
                    halfway.count()
            finally:
                halfway.stopped()
            return created

        created = [ref for refs in _run(writers + 1, work) for ref in refs]
        with store.unit_of_work() as uow:
            for ref in created:
                stored = uow.transactions.find_by_external_ref("race", ref)
                assert stored is not None, f"round {round_}: {ref} reported created, lost"
                assert stored.customer == keep, f"round {round_}: {ref} on the retired number"
            mine = uow.transactions.for_customer(keep)
            assert len(mine) == len(created)
            assert uow.aggregates.get(keep).purchase_count == len(created)
            assert uow.customers.find(drop) is None
        assert self.leftover_rows(store, drop) == [], f"round {round_}"

    def test_erase_while_writing_leaves_no_personal_data(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(NOW))
        for round_ in range(self.RACE_ROUNDS):
            self._erase_round(store, crm, round_)

    def _erase_round(self, store: Store, crm: Crm, round_: int) -> None:
        writers = max(2, self.THREADS - 1)
        per_thread = self.WRITES_PER_THREAD
        first = f"erase{round_}@example.com"
        number = crm.register(f"Erased Person {round_}", emails=[first]).number
        barrier = threading.Barrier(writers + 1)
        halfway = _Halfway(writers * per_thread // 2, writers)
        emails: list[str] = [first]
        refs: list[str] = []

        def work(worker: int) -> None:
            barrier.wait()
            if worker == writers:
                halfway.wait()
                _until_done(lambda: crm.erase(number))
                return
            try:
                for i in range(per_thread):
                    tag = f"{round_}-{worker}-{i}"
                    try:
                        if worker % 2:
                            customer = crm.get(number)
                            email = f"e{tag}@example.com"
                            emails.append(email)
                            customer.emails = (*customer.emails, EmailAddress(email))
                            customer.organisation = f"Org {tag}"
                            crm.update(customer)
                        else:
                            refs.append(tag)
                            crm.record_interaction(
                                Interaction(
                                    customer=number,
                                    occurred_at=NOW,
                                    channel=InteractionChannel.PHONE,
                                    direction=Direction.INBOUND,
                                    kind=InteractionKind.CARE,
                                    notes=f"private note {tag}",
                                    source="race",
                                    external_ref=tag,
                                )
                            )
                    except ConcurrencyError:
                        continue  # a lost update refused, or a clean conflict
                    except (ErasedError, NotFound):
                        break
                    halfway.count()
            finally:
                halfway.stopped()

        _run(writers + 1, work)
        try:
            crm.get(number)
        except ErasedError:
            pass
        else:  # pragma: no cover - a failure report
            raise AssertionError(f"round {round_}: {number} is not erased")
        for email in emails:
            assert crm.find_by_email(email) == [], f"round {round_}: {email} survived"
        with store.unit_of_work() as uow:
            for ref in refs:
                assert uow.interactions.find_by_external_ref("race", ref) is None, ref
            assert list(uow.interactions.for_customer(number)) == []
        assert self.leftover_rows(store, number) == [], f"round {round_}"
