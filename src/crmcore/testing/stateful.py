"""A differential hypothesis state machine: your store against the in-memory reference.

The machine applies the same random operations to a reference
:class:`~crmcore.InMemoryStore`, assumed to be right, and to the store under test, and after
every step asserts that every read agrees: customers (with their versions), lookups by
e-mail, phone and external id, interactions and transactions of each customer (order,
``limit``, ``before``), aggregates, counts and listings, segments and their membership runs.
Operations include the failing ones (stale updates, duplicates, illegal stage changes,
history for erased customers, units of work that raise or never commit): both stores must
fail the same way and keep the same state. Use it on your own adapter::

    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test
    from crmcore.testing.stateful import make_differential_machine

    def test_my_store_agrees_with_the_reference():
        machine = make_differential_machine(lambda: MyStore.connect("..."))
        run_state_machine_as_test(
            machine, settings=settings(max_examples=200, stateful_step_count=30, deadline=None)
        )

**Numbers.** Allocation is each store's own business (and gaps are allowed), so the machine
does not register through the allocators: it gives both stores the *same* ``Customer``
objects with numbers from its own counter. Every read can then be compared directly, with no
mapping between numbers. (The contract suite, :mod:`crmcore.testing.contract`, covers the
allocators.)

**Errors.** Outcomes are compared by kind of crmcore error (``NotFound``,
``DuplicateError``, ``ConcurrencyError``, ...); ``customers.get`` must moreover tell an erased
customer (:class:`~crmcore.errors.ErasedError`) from an unknown one. Any exception that is not
a :class:`~crmcore.errors.CrmError` (a leaked driver exception) fails the run.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from crmcore.adapters.memory import InMemoryStore
from crmcore.domain import (
    CrmNumber,
    Customer,
    Interaction,
    LifecycleStage,
    Money,
    PersonName,
    Segment,
    SegmentMembership,
    Transaction,
)
from crmcore.ports import Store, UnitOfWork
from crmcore.testing import strategies as cst
from crmcore.testing._stateful_draws import (
    _CUSTOMERS,
    _INTERACTIONS,
    _SEGMENTS,
    _START,
    _TRANSACTIONS,
    _email_lists,
    _external_ids,
    _phone_lists,
)
from crmcore.testing._stateful_ops import _attempt, _in_unit, _read_ports

__all__ = ["DifferentialStoreMachine", "make_differential_machine"]

_Item = TypeVar("_Item", Interaction, Transaction)


class _Boom(Exception):
    """Raised inside a unit of work to make it fail."""


class DifferentialStoreMachine(RuleBasedStateMachine):
    """Runs every operation on the reference store and on ``make_store()``; compares reads.

    Use :func:`make_differential_machine` to bind ``make_store`` (and optionally
    ``close_store``); hypothesis creates one machine, hence one store under test, per
    example.
    """

    make_store: Callable[[], Store]
    close_store: Callable[[Store], None] | None = None
    retry_same_record = True
    """Whether a record may be re-added with the id *and* reference of a stored one (an
    ingest retried with the same objects). The reference answers "already recorded"
    (``add`` returns ``False``); with ``False`` a reused id never comes with a reference."""
    FULL_CHECK_EVERY = 10
    """Compare the reads of every customer after every this many steps (and at the end)."""

    def __init__(self) -> None:
        super().__init__()
        self.tested = type(self).make_store()
        self.reference = InMemoryStore(
            scheme=self.tested.scheme, reporting_currency=self.tested.reporting_currency
        )
        self.scheme = self.tested.scheme
        self.currency = self.tested.reporting_currency
        self.next_sequence = 1
        self.numbers: list[CrmNumber] = []  # every number ever registered (erased ones too)
        self.ghosts: list[CrmNumber] = []  # numbers handed to writes that failed
        self.interaction_ids: list[uuid.UUID] = []
        self.transaction_ids: list[uuid.UUID] = []
        self.now = _START
        # What the current step touched: checked after the step. Everything is checked after
        # every ``FULL_CHECK_EVERY``-th step and at the end of the run.
        self.touched: set[CrmNumber] = set()
        self.dirty: set[str] = set()  # of "profiles", "history", "segments"
        self.touched_segments: set[str] = set()
        self.checked_ids = (0, 0)
        self.full_check = True
        self.steps = 0

    def teardown(self) -> None:
        """Compare everything a last time, then release the store under test."""
        try:
            # Only after a run that passed: a failing step already reports its divergence
            # (teardown runs in hypothesis' ``finally``, where the failure is in flight).
            if sys.exc_info()[0] is None:
                self.full_check = True
                self.every_read_agrees()
        finally:
            close = type(self).close_store
            if close is not None:
                close(self.tested)

    # -- helpers -------------------------------------------------------------------------

    def _both(self, action: Callable[[Store], Any]) -> Any:
        """Run ``action`` on both stores; they must succeed alike or fail alike."""
        expected = _attempt(lambda: action(self.reference))
        actual = _attempt(lambda: action(self.tested))
        assert actual == expected, f"reference did {expected}, store under test did {actual}"
        return expected

    def _tick(self) -> dt.datetime:
        self.now += dt.timedelta(minutes=7)
        return self.now

    def _pick(self, index: int) -> CrmNumber:
        number = self.numbers[index % len(self.numbers)]
        self.touched.add(number)
        return number

    def _new_number(self) -> CrmNumber:
        number = self.scheme.format(self.next_sequence)
        self.next_sequence += 1
        self.touched.add(number)
        return number

    def _prepare_customer(
        self, customer: Customer, emails: Any, phones: Any, external: Any
    ) -> Customer:
        customer = attrs.evolve(customer, number=self._new_number())
        customer.emails = emails
        customer.phones = phones
        customer.source, customer.external_id = external if external else (None, None)
        customer.version = 0
        return customer

    def _retry_safe(self, items: list[_Item], known: list[uuid.UUID]) -> list[_Item]:
        """Drop the reference of items reusing an id, unless ``retry_same_record``."""
        if self.retry_same_record:
            return items
        seen = set(known)
        out = []
        for item in items:
            if item.id in seen:
                item = attrs.evolve(item, external_ref=None)
            seen.add(item.id)
            out.append(item)
        return out

    def _prepare_transaction(self, tx: Transaction, number: CrmNumber) -> Transaction:
        # Zero only for a free purchase (Transaction requires it), else any positive amount.
        minor = 0 if tx.total.minor_units == 0 else max(1, tx.total.minor_units % 10**9)
        return attrs.evolve(
            tx, customer=number, reporting_total=Money.from_minor_units(minor, self.currency)
        )

    # -- registry ------------------------------------------------------------------------

    @rule(
        customer=_CUSTOMERS,
        emails=_email_lists(),
        phones=_phone_lists(),
        external=_external_ids(),
    )
    def register(self, customer: Customer, emails: Any, phones: Any, external: Any) -> None:
        """Add one new customer (may clash on ``(source, external_id)``)."""
        self.dirty.add("profiles")
        new = self._prepare_customer(customer, emails, phones, external)
        outcome = self._both(
            lambda s: _in_unit(s, lambda uow: uow.customers.add(attrs.evolve(new)))
        )
        (self.ghosts if outcome.error else self.numbers).append(new.number)

    @rule(
        batch=st.lists(
            st.tuples(_CUSTOMERS, _email_lists(), _phone_lists(), _external_ids()),
            max_size=3,
        ),
        repeat_one=st.booleans(),
    )
    def register_many(self, batch: list[Any], repeat_one: bool) -> None:
        """Bulk-add customers; a repeated number or external id fails the whole batch."""
        self.dirty.add("profiles")
        customers = [self._prepare_customer(*item) for item in batch]
        if repeat_one and customers:
            customers.append(attrs.evolve(customers[0]))
        outcome = self._both(
            lambda s: _in_unit(
                s, lambda uow: uow.customers.add_many([attrs.evolve(c) for c in customers])
            )
        )
        numbers = sorted({c.number for c in customers})
        (self.ghosts if outcome.error else self.numbers).extend(numbers)

    @precondition(lambda self: self.numbers)
    @rule(pick=st.integers(0, 1000), customer=_CUSTOMERS)
    def register_taken_number(self, pick: int, customer: Customer) -> None:
        """Adding a number that is (or was) taken must fail with DuplicateError in both."""
        self.dirty.add("profiles")
        customer = attrs.evolve(customer, number=self._pick(pick), source=None, external_id=None)
        outcome = self._both(
            lambda s: _in_unit(s, lambda uow: uow.customers.add(attrs.evolve(customer)))
        )
        assert outcome.error == "DuplicateError"

    @precondition(lambda self: self.numbers)
    @rule(
        pick=st.integers(0, 1000),
        organisation=st.none() | st.sampled_from(("Acme", "Initech", "Ümlaut GmbH")),
        emails=st.none() | _email_lists(),
        phones=st.none() | _phone_lists(),
        external=st.none() | _external_ids(),
        tags=st.frozensets(cst.tags(), max_size=2),
        given=st.none() | st.sampled_from(("Zoë", "Jean-Luc", "李")),
    )
    def update_profile(
        self,
        pick: int,
        organisation: str | None,
        emails: Any,
        phones: Any,
        external: Any,
        tags: frozenset[str],
        given: str | None,
    ) -> None:
        """Load, change and update a customer (version bump; may clash on external id)."""
        self.dirty.add("profiles")
        number = self._pick(pick)
        updated_at = self._tick()

        def change(uow: UnitOfWork) -> int:
            customer = uow.customers.get(number)
            customer.organisation = organisation
            customer.tags = tags
            if given is not None:
                customer.name = PersonName(given=given, family=customer.name.family)
            if emails is not None:
                customer.emails = emails
            if phones is not None:
                customer.phones = phones
            if external is not None:
                customer.source, customer.external_id = external or (None, None)
            customer.updated_at = max(updated_at, customer.created_at)
            uow.customers.update(customer)
            return customer.version

        self._both(lambda s: _in_unit(s, change))

    @precondition(lambda self: self.numbers)
    @rule(pick=st.integers(0, 1000))
    def stale_update(self, pick: int) -> None:
        """Update from a stale copy after someone else's update: ConcurrencyError in both."""
        self.dirty.add("profiles")
        number = self._pick(pick)

        def race(store: Store) -> int:
            stale = _in_unit(store, lambda uow: uow.customers.get(number), commit=False)
            fresh = attrs.evolve(stale)
            fresh.owner = "agent-1"
            _in_unit(store, lambda uow: uow.customers.update(fresh))
            stale.owner = "agent-2"
            _in_unit(store, lambda uow: uow.customers.update(stale))
            return stale.version

        outcome = self._both(race)
        assert outcome.error in ("ConcurrencyError", "NotFound")

    @precondition(lambda self: self.numbers)
    @rule(pick=st.integers(0, 1000), to_stage=st.sampled_from(LifecycleStage))
    def change_stage(self, pick: int, to_stage: LifecycleStage) -> None:
        """Change the lifecycle stage (illegal transitions raise InvalidTransition in both)."""
        self.dirty.add("profiles")
        number = self._pick(pick)
        at = self._tick()

        def change(uow: UnitOfWork) -> int:
            customer = uow.customers.get(number)
            customer.change_stage(to_stage, at, "state machine")
            customer.updated_at = max(at, customer.created_at)
            uow.customers.update(customer)
            return customer.version

        self._both(lambda s: _in_unit(s, change))

    @precondition(lambda self: self.numbers)
    @rule(pick=st.integers(0, 1000))
    def erase(self, pick: int) -> None:
        """Erase a customer (a second erase raises ErasedError, a NotFound)."""
        number = self._pick(pick)
        self.dirty.update(("profiles", "history", "segments"))
        self.touched_segments.update(_SEGMENTS)
        self._both(lambda s: _in_unit(s, lambda uow: uow.customers.erase(number)))

    # -- history -------------------------------------------------------------------------

    @precondition(lambda self: self.numbers)
    @rule(
        pick=st.integers(0, 1000),
        interaction=_INTERACTIONS,
        reuse_id=st.booleans(),
    )
    def record_interaction(self, pick: int, interaction: Interaction, reuse_id: bool) -> None:
        """Record an interaction (duplicate references and reused ids included)."""
        self.dirty.add("history")
        item = attrs.evolve(interaction, customer=self._pick(pick))
        if reuse_id and self.interaction_ids:
            item = attrs.evolve(item, id=self.interaction_ids[pick % len(self.interaction_ids)])
        [item] = self._retry_safe([item], self.interaction_ids)
        self.interaction_ids.append(item.id)
        self._both(lambda s: _in_unit(s, lambda uow: uow.interactions.add(item)))

    @precondition(lambda self: self.numbers)
    @rule(
        pick=st.integers(0, 1000),
        transaction=_TRANSACTIONS,
        reuse_id=st.booleans(),
    )
    def record_transaction(self, pick: int, transaction: Transaction, reuse_id: bool) -> None:
        """Record a purchase or refund (duplicate references and reused ids included)."""
        self.dirty.add("history")
        item = self._prepare_transaction(transaction, self._pick(pick))
        if reuse_id and self.transaction_ids:
            item = attrs.evolve(item, id=self.transaction_ids[pick % len(self.transaction_ids)])
        [item] = self._retry_safe([item], self.transaction_ids)
        self.transaction_ids.append(item.id)
        self._both(lambda s: _in_unit(s, lambda uow: uow.transactions.add(item)))

    @precondition(lambda self: self.numbers)
    @rule(
        picks=st.lists(st.integers(0, 1000), min_size=1, max_size=5),
        transactions=st.lists(_TRANSACTIONS, min_size=5, max_size=5),
        interactions=st.lists(_INTERACTIONS, min_size=5, max_size=5),
    )
    def record_many(
        self,
        picks: list[int],
        transactions: list[Transaction],
        interactions: list[Interaction],
    ) -> None:
        """Bulk-record history for several customers (repeats within the batch included)."""
        self.dirty.add("history")
        txs = [
            self._prepare_transaction(t, self._pick(p))
            for p, t in zip(picks, transactions, strict=False)
        ]
        ixs = [
            attrs.evolve(i, customer=self._pick(p))
            for p, i in zip(picks, interactions, strict=False)
        ]
        txs = self._retry_safe(txs, self.transaction_ids)
        ixs = self._retry_safe(ixs, self.interaction_ids)
        self.transaction_ids.extend(t.id for t in txs)
        self.interaction_ids.extend(i.id for i in ixs)

        def record(uow: UnitOfWork) -> tuple[int, int]:
            return uow.transactions.add_many(txs), uow.interactions.add_many(ixs)

        self._both(lambda s: _in_unit(s, record))

    # -- segments ------------------------------------------------------------------------

    @rule(name=st.sampled_from(_SEGMENTS), rule_text=st.sampled_from(("frequency >= 2", "x")))
    def save_segment(self, name: str, rule_text: str) -> None:
        """Create or replace a segment definition."""
        self.dirty.add("segments")
        self.touched_segments.add(name)
        segment = Segment(name, rule_text, description=f"{name} customers")
        self._both(lambda s: _in_unit(s, lambda uow: uow.segments.save(segment)))

    @rule(name=st.sampled_from(_SEGMENTS))
    def delete_segment(self, name: str) -> None:
        """Delete a segment and its runs (NotFound if undefined)."""
        self.dirty.add("segments")
        self.touched_segments.add(name)
        self._both(lambda s: _in_unit(s, lambda uow: uow.segments.delete(name)))

    @rule(
        name=st.sampled_from(_SEGMENTS),
        days=st.integers(0, 4),
        picks=st.frozensets(st.integers(0, 1000), max_size=4),
    )
    def save_membership(self, name: str, days: int, picks: frozenset[int]) -> None:
        """Save a run of living customers (DuplicateError for a repeated as-of)."""
        self.dirty.add("segments")
        self.touched_segments.add(name)

        def save(store: Store) -> None:
            def run(uow: UnitOfWork) -> None:
                alive = set(uow.customers.numbers())
                members = {self._pick(p) for p in picks} & alive if self.numbers else set()
                as_of = _START + dt.timedelta(days=days)
                uow.segments.save_membership(SegmentMembership(name, as_of, frozenset(members)))

            _in_unit(store, run)

        self._both(save)

    # -- failing units of work -----------------------------------------------------------

    @precondition(lambda self: self.numbers)
    @rule(
        pick=st.integers(0, 1000),
        customer=_CUSTOMERS,
        interaction=_INTERACTIONS,
        transaction=_TRANSACTIONS,
        also_erase=st.booleans(),
        raise_inside=st.booleans(),
    )
    def failing_unit(
        self,
        pick: int,
        customer: Customer,
        interaction: Interaction,
        transaction: Transaction,
        also_erase: bool,
        raise_inside: bool,
    ) -> None:
        """Write one of everything, then raise (or leave without commit): nothing persists."""
        number = self._pick(pick)
        new = self._prepare_customer(customer, (), (), None)
        [ix] = self._retry_safe([attrs.evolve(interaction, customer=number)], self.interaction_ids)
        [tx] = self._retry_safe(
            [self._prepare_transaction(transaction, number)], self.transaction_ids
        )
        other_tx = uuid.uuid5(tx.id, "other")  # deterministic, so examples replay exactly
        at = self._tick()

        def writes(uow: UnitOfWork) -> None:
            uow.customers.add(attrs.evolve(new))
            uow.transactions.add(attrs.evolve(tx, customer=new.number, id=other_tx))
            uow.segments.save(Segment("vip", "frequency >= 99"))
            uow.segments.save_membership(SegmentMembership("vip", at, frozenset({new.number})))
            uow.interactions.add(ix)
            uow.transactions.add(tx)
            changed = uow.customers.get(number)
            changed.owner = "nobody"
            uow.customers.update(changed)
            if also_erase:
                uow.customers.erase(number)

        def fail(store: Store) -> str:
            try:
                with store.unit_of_work() as uow:
                    writes(uow)
                    if raise_inside:
                        raise _Boom
            except _Boom:
                return "raised"
            return "left without commit"

        self.interaction_ids.append(ix.id)
        self.transaction_ids.append(tx.id)
        self.dirty.update(("profiles", "history", "segments"))
        self.touched_segments.add("vip")
        self._both(fail)
        # The number stays unused in both stores; remember it so reads cover it too.
        self.ghosts.append(new.number)

    # -- the invariant -------------------------------------------------------------------

    def _snapshot(
        self,
        store: Store,
        probe: list[CrmNumber],
        interaction_ids: list[uuid.UUID],
        transaction_ids: list[uuid.UUID],
        parts: set[str],
        full: bool,
        segments: set[str],
    ) -> dict[str, Any]:
        """What the ports of ``store`` read (see ``_stateful_ops._read_ports``)."""
        return _read_ports(
            store,
            probe,
            interaction_ids,
            transaction_ids,
            parts,
            full,
            now=self.now,
            steps=self.steps,
            touched_segments=segments,
        )

    @invariant()
    def every_read_agrees(self) -> None:
        """All reads of both stores are equal (checked after every step)."""
        self.steps += 1
        full = self.full_check or self.steps % self.FULL_CHECK_EVERY == 0
        if full:
            probe = [*self.numbers, *self.ghosts]
            ix_ids, tx_ids = self.interaction_ids, self.transaction_ids
            parts = {"profiles", "history", "segments"}
        else:
            parts = self.dirty
            probe = sorted(self.touched)
            ix_ids = self.interaction_ids[self.checked_ids[0] :]
            tx_ids = self.transaction_ids[self.checked_ids[1] :]
        # The segments changed since the last check are read now (taken before resetting).
        segments = self.touched_segments
        self.touched = set()
        self.dirty = set()
        self.touched_segments = set()
        self.checked_ids = (len(self.interaction_ids), len(self.transaction_ids))
        self.full_check = False
        expected = self._snapshot(self.reference, probe, ix_ids, tx_ids, parts, full, segments)
        actual = self._snapshot(self.tested, probe, ix_ids, tx_ids, parts, full, segments)
        if actual != expected:
            for key in expected:
                assert actual.get(key) == expected[key], (
                    f"{key}: reference {expected[key]!r}, store under test {actual.get(key)!r}"
                )
            raise AssertionError(f"extra reads: {sorted(set(actual) - set(expected))}")


def make_differential_machine(
    make_store: Callable[[], Store],
    *,
    close_store: Callable[[Store], None] | None = None,
    retry_same_record: bool = True,
    name: str = "DifferentialStoreMachine",
) -> type[DifferentialStoreMachine]:
    """Return a state machine class comparing ``make_store()`` stores with the reference.

    Args:
        make_store: returns a new, empty store (one per hypothesis example). Its scheme and
            reporting currency are given to the reference store.
        close_store: called with each store at the end of its example (release resources,
            drop tables).
        retry_same_record: see :attr:`DifferentialStoreMachine.retry_same_record`.
        name: the class name (shows in hypothesis' reports).

    Returns:
        A :class:`DifferentialStoreMachine` subclass; run it with
        ``hypothesis.stateful.run_state_machine_as_test`` or expose its ``TestCase``.
    """
    attributes: dict[str, Any] = {
        "make_store": staticmethod(make_store),
        "close_store": None if close_store is None else staticmethod(close_store),
        "retry_same_record": retry_same_record,
    }
    return type(name, (DifferentialStoreMachine,), attributes)
