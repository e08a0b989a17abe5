"""The transfer repository's part of the contract (opt-in: for stores that can be dumped,
restored and copied, see :mod:`crmcore.ports.transfer`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore.domain import (
    AuditAction,
    AuditOutcome,
    CustomerAggregate,
    Money,
    Segment,
    SegmentMembership,
    TransactionLine,
)
from crmcore.errors import DuplicateError, ErasedError, ValidationError
from crmcore.ports import Store
from crmcore.ports.transfer import TransferRepository, TransferUnitOfWork
from crmcore.testing import strategies as cst
from crmcore.testing.contract._support import (
    PROPERTY_SETTINGS,
    T0,
    Boom,
    StoreFixture,
    make_customer,
    make_interaction,
    make_transaction,
    record,
    register,
    write,
)


def _transfer(uow: Any) -> TransferRepository:
    assert isinstance(uow, TransferUnitOfWork), "the store's units of work offer no transfer"
    return uow.transfer


def _all_transactions(store: Store) -> dict[Any, Any]:
    with store.unit_of_work() as uow:
        chunks = list(_transfer(uow).transaction_chunks(2))
    out = {}
    for chunk in chunks:
        assert len(chunk) <= 2
        b = chunk.batch
        for i in range(len(chunk)):
            key = (int(b.id_high[i]) << 64) | int(b.id_low[i])
            out[key] = (
                b.customer[i],
                int(b.occurred_us[i]),
                int(b.kind[i]),
                int(b.channel[i]),
                b.currency[i],
                int(b.total_minor[i]),
                int(b.reporting_minor[i]),
                b.source[i],
                b.external_ref[i],
                chunk.lines.get(i, ()),
            )
    return out


class TransferContract(StoreFixture):
    """A store's :class:`~crmcore.ports.transfer.TransferRepository`: everything it holds,
    read back column-wise, and the writes a restore makes."""

    def test_a_new_store_is_empty_and_a_used_one_is_not(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            assert _transfer(uow).is_empty()
        customer = register(store)
        with store.unit_of_work() as uow:
            assert not _transfer(uow).is_empty()
        write(store, lambda uow: uow.customers.erase(customer.number))
        with store.unit_of_work() as uow:
            assert not _transfer(uow).is_empty()  # a tombstone is data

    def test_the_allocator_position_follows_allocation_and_can_only_rise(
        self, store: Store
    ) -> None:
        taken = max(store.allocator.allocate_many(3))
        with store.unit_of_work() as uow:
            assert _transfer(uow).allocator_position() >= taken
        write(store, lambda uow: _transfer(uow).raise_allocator(taken + 100))
        assert store.allocator.allocate() == taken + 101
        write(store, lambda uow: _transfer(uow).raise_allocator(5))  # lower: no change
        assert store.allocator.allocate() == taken + 102

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_added_customers_read_back_in_chunks_as_the_repository_reads_them(
        self, store: Store, data: st.DataObject
    ) -> None:
        drawn = data.draw(st.lists(cst.customers(), min_size=1, max_size=6))
        # Fresh numbers and import keys: examples share the store.
        mine = []
        for customer in drawn:
            number = store.scheme.format(store.allocator.allocate())
            key = None if customer.external_id is None else f"x{number.value}"
            mine.append(attrs.evolve(customer, number=number, external_id=key))
        expected = {c.number: attrs.evolve(c) for c in mine}
        write(store, lambda uow: _transfer(uow).add_customers(mine))
        with store.unit_of_work() as uow:
            chunks = [list(chunk) for chunk in _transfer(uow).customer_chunks(2)]
            read = [customer for chunk in chunks for customer in chunk]
            assert all(1 <= len(chunk) <= 2 for chunk in chunks)
            assert [c.number for c in read] == sorted(c.number for c in read)
            ours = {c.number: c for c in read if c.number in expected}
            assert ours == {n: uow.customers.get(n) for n in expected}
            assert ours == expected

    def test_customer_chunks_skip_the_erased_and_hand_out_copies(self, store: Store) -> None:
        keep, gone = register(store, tags=frozenset({"vip"})), register(store)
        write(store, lambda uow: uow.customers.erase(gone.number))
        with store.unit_of_work() as uow:
            (only,) = [c for chunk in _transfer(uow).customer_chunks(10) for c in chunk]
            assert only == keep
            only.title = "changed"
            assert uow.customers.get(keep.number) == keep

    def test_added_customers_are_checked_and_roll_back_with_the_unit(self, store: Store) -> None:
        taken = register(store, source="crm", external_id="e1")
        fresh = make_customer(store, source="crm", external_id="e2")
        twin = make_customer(store, source="crm", external_id="e2")
        with store.unit_of_work() as uow, pytest.raises(DuplicateError):
            _transfer(uow).add_customers([make_customer(store, number=taken.number)])
        with store.unit_of_work() as uow, pytest.raises(DuplicateError):
            _transfer(uow).add_customers([fresh, twin])
        with store.unit_of_work() as uow, pytest.raises(ValidationError):
            _transfer(uow).add_customers([fresh, "not a customer"])  # type: ignore[list-item]

        def fail() -> None:
            with store.unit_of_work() as uow:
                _transfer(uow).add_customers([fresh])
                raise Boom

        with pytest.raises(Boom):
            fail()
        with store.unit_of_work() as uow:
            assert uow.customers.find(fresh.number) is None
            assert uow.customers.count() == 1

    def test_tombstones_are_listed_and_added_tombstones_retire_numbers(self, store: Store) -> None:
        erased = register(store)
        write(store, lambda uow: uow.customers.erase(erased.number))
        retired = store.scheme.format(store.allocator.allocate())
        write(store, lambda uow: _transfer(uow).add_tombstones([retired]))
        with store.unit_of_work() as uow:
            assert list(_transfer(uow).tombstones()) == sorted([erased.number, retired])
            with pytest.raises(ErasedError):
                uow.customers.get(retired)
            with pytest.raises(DuplicateError):
                _transfer(uow).add_tombstones([erased.number])

    def test_added_tombstones_roll_back_with_the_unit(self, store: Store) -> None:
        retired = store.scheme.format(store.allocator.allocate())

        def fail() -> None:
            with store.unit_of_work() as uow:
                _transfer(uow).add_tombstones([retired])
                raise Boom

        with pytest.raises(Boom):
            fail()
        with store.unit_of_work() as uow:
            assert list(_transfer(uow).tombstones()) == []
            assert _transfer(uow).is_empty()

    def test_history_chunks_hold_every_live_record_exactly(self, store: Store) -> None:
        keep, gone = register(store), register(store)
        line = TransactionLine("sku-1", Decimal("1.5"), Money.from_minor_units(250, "EUR"), "x")
        eur = Money.from_minor_units(375, "EUR")
        lined = make_transaction(
            store, keep.number, total=eur, lines=(line,), source="erp", external_ref="r1"
        )
        plain = make_transaction(store, keep.number, minor=990)
        lost = make_transaction(store, gone.number)
        for item in (lined, plain, lost, make_interaction(gone.number)):
            assert record(store, item)
        ix = make_interaction(keep.number, subject="Hi", notes=None, follow_up_due=T0)
        assert record(store, ix)
        write(store, lambda uow: uow.customers.erase(gone.number))
        rows = _all_transactions(store)
        assert set(rows) == {lined.id.int, plain.id.int}
        assert rows[lined.id.int][4:] == ("EUR", 375, 1000, "erp", "r1", (line,))
        assert rows[plain.id.int][0] == keep.number.value
        with store.unit_of_work() as uow:
            batches = list(_transfer(uow).interaction_chunks(10))
        assert sum(len(b) for b in batches) == 1
        b = batches[0]
        assert (b.customer[0], b.subject[0], b.notes[0]) == (keep.number.value, "Hi", None)
        assert int(b.follow_up_us[0]) == int(b.occurred_us[0])
        assert (int(b.id_high[0]) << 64 | int(b.id_low[0])) == ix.id.int

    def test_aggregate_columns_agree_with_the_aggregate_repository(self, store: Store) -> None:
        buyer, idle = register(store), register(store)
        record(store, make_transaction(store, buyer.number, minor=500))
        record(store, make_interaction(buyer.number))
        with store.unit_of_work() as uow:
            columns = _transfer(uow).aggregate_columns()
            expected = {n: uow.aggregates.get(n) for n in (buyer.number, idle.number)}
        assert sorted(columns.numbers) == sorted(n.value for n in expected)
        for row, number in enumerate(columns.numbers):
            aggregate = expected[next(n for n in expected if n.value == number)]
            assert int(columns.columns["purchase_minor"][row]) == aggregate.purchase_minor
            assert int(columns.columns["interaction_count"][row]) == aggregate.interaction_count
            has = aggregate != CustomerAggregate(customer=aggregate.customer)
            assert bool(columns.columns["last_purchase_us"][row] > np.iinfo(np.int64).min) == has

    def test_memberships_lists_every_run_in_order(self, store: Store) -> None:
        a, b = register(store), register(store)
        runs = [
            SegmentMembership(segment="b", as_of=T0, members=frozenset({a.number})),
            SegmentMembership(segment="a", as_of=T0, members=frozenset()),
            SegmentMembership(
                segment="b", as_of=T0.replace(year=T0.year + 1), members=frozenset({a.number})
            ),
            SegmentMembership(segment="b", as_of=T0.replace(year=T0.year - 1), members=frozenset()),
        ]

        def save(uow: Any) -> None:
            for name in ("a", "b"):
                uow.segments.save(Segment(name=name, rule="frequency > 0"))
            for run in runs:
                uow.segments.save_membership(run)

        write(store, save)
        write(store, lambda uow: uow.customers.erase(b.number))
        with store.unit_of_work() as uow:
            listed = list(_transfer(uow).memberships())
        assert [(r.segment, r.as_of) for r in listed] == sorted((r.segment, r.as_of) for r in runs)
        assert [r.members for r in listed] == [
            r.members for r in sorted(runs, key=lambda r: (r.segment, r.as_of))
        ]

    def test_a_copy_keeps_the_audit_trail_in_order(self, store: Store) -> None:
        from crmcore.adapters.memory import InMemoryStore
        from crmcore.backup import copy
        from crmcore.testing.contract.audit import entry

        number = register(store).number
        later = T0 + dt.timedelta(seconds=1)
        entries = [
            entry(later, customer=number, action=AuditAction.UPDATE, fields=("emails",)),
            entry(T0, actor="job:import", action=AuditAction.IMPORT_TRANSACTIONS, rows=7),
            entry(later, customer=number, outcome=AuditOutcome.DENIED),
        ]
        write(store, lambda uow: uow.audit.append_many(entries))
        target = InMemoryStore(scheme=store.scheme, reporting_currency=store.reporting_currency)
        copy(store, target)
        with target.unit_of_work() as uow:
            copied = list(uow.audit.query())
        assert copied == [entries[1], entries[0], entries[2]]
