"""The unit of work's part of the contract."""

from __future__ import annotations

from typing import Any

import pytest

from crmcore.clock import FixedClock
from crmcore.domain import (
    CrmNumber,
    Customer,
    CustomerErased,
    CustomerRegistered,
    DomainEvent,
    LifecycleStage,
    Segment,
    SegmentMembership,
)
from crmcore.errors import (
    DuplicateError,
    InvalidTransition,
)
from crmcore.ports import Store, UnitOfWork
from crmcore.services import Crm
from crmcore.testing.contract._support import (
    T0,
    Boom,
    StoreFixture,
    make_customer,
    make_interaction,
    make_transaction,
    read,
    register,
    write,
)


class UnitOfWorkContract(StoreFixture):
    """Units of work: atomicity, reading one's own writes, events published on commit."""

    # -- units of work -----------------------------------------------------------------------

    def _fill(self, store: Store, uow: UnitOfWork, existing: Customer) -> Customer:
        """Write one of everything in ``uow`` (used by the atomicity cases)."""
        new = make_customer(store, source="erp", external_id="NEW")
        uow.customers.add(new)
        uow.interactions.add(make_interaction(existing.number, source="helpdesk", external_ref="X"))
        uow.transactions.add(
            make_transaction(store, existing.number, source="erp", external_ref="X")
        )
        uow.transactions.add_many([make_transaction(store, new.number)])
        changed = uow.customers.get(existing.number)
        changed.organisation = "Changed"
        uow.customers.update(changed)
        uow.segments.save(Segment("vip", "frequency >= 3"))
        uow.segments.save_membership(SegmentMembership("vip", T0, frozenset({existing.number})))
        return new

    def _snapshot(self, store: Store, numbers: list[CrmNumber]) -> Any:
        def state(uow: UnitOfWork) -> Any:
            return (
                uow.customers.count(),
                list(uow.customers.numbers()),
                [uow.customers.find(n) for n in numbers],
                [uow.aggregates.get(n) for n in numbers if uow.customers.find(n)],
                [list(uow.interactions.for_customer(n)) for n in numbers],
                [list(uow.transactions.for_customer(n)) for n in numbers],
                uow.transactions.find_by_external_ref("erp", "X"),
                uow.interactions.find_by_external_ref("helpdesk", "X"),
                uow.customers.find_by_external_id("erp", "NEW"),
                list(uow.segments.list()),
                uow.segments.latest_membership("vip"),
            )

        return read(store, state)

    def test_a_unit_that_raises_persists_nothing(self, store: Store) -> None:
        existing = register(store)
        write(store, lambda uow: uow.transactions.add(make_transaction(store, existing.number)))
        before = self._snapshot(store, [existing.number])
        created: list[Customer] = []

        def failing_unit() -> None:
            with store.unit_of_work() as uow:
                created.append(self._fill(store, uow, existing))
                uow.customers.erase(existing.number)
                raise Boom

        with pytest.raises(Boom):
            failing_unit()
        assert self._snapshot(store, [existing.number]) == before
        assert read(store, lambda uow: uow.customers.find(created[0].number)) is None

    def test_a_unit_left_without_commit_rolls_back(self, store: Store) -> None:
        existing = register(store)
        before = self._snapshot(store, [existing.number])
        with store.unit_of_work() as uow:
            self._fill(store, uow, existing)
        assert self._snapshot(store, [existing.number]) == before
        with store.unit_of_work() as uow:
            self._fill(store, uow, existing)
            uow.rollback()
        assert self._snapshot(store, [existing.number]) == before

    def test_a_unit_reads_its_own_writes_and_commits_them_for_the_next(self, store: Store) -> None:
        existing = register(store)
        with store.unit_of_work() as uow:
            new = self._fill(store, uow, existing)
            inside = (
                uow.customers.get(new.number),
                uow.customers.get(existing.number).organisation,
                uow.aggregates.get(existing.number).interaction_count,
                uow.segments.get("vip"),
            )
            uow.commit()
        after = read(
            store,
            lambda uow: (
                uow.customers.get(new.number),
                uow.customers.get(existing.number).organisation,
                uow.aggregates.get(existing.number).interaction_count,
                uow.segments.get("vip"),
            ),
        )
        assert inside == after
        assert after[1] == "Changed"
        assert after[2] == 1

    def test_a_failed_stage_change_leaves_the_stored_customer_unchanged(self, store: Store) -> None:
        customer = register(store, stage=LifecycleStage.LEAD)

        def two_changes() -> None:
            with store.unit_of_work() as uow:
                loaded = uow.customers.get(customer.number)
                loaded.change_stage(LifecycleStage.PROSPECT, T0)
                uow.customers.update(loaded)
                again = uow.customers.get(customer.number)
                again.change_stage(LifecycleStage.ACTIVE, T0)  # prospect -> active: illegal
                uow.customers.update(again)
                uow.commit()

        with pytest.raises(InvalidTransition):
            two_changes()
        assert read(store, lambda uow: uow.customers.get(customer.number)) == customer

    def test_events_are_queued_and_cleared_by_rollback(self, store: Store) -> None:
        event = DomainEvent(at=T0)
        with store.unit_of_work() as uow:
            uow.add_event(event)
            uow.commit()
            assert uow.collect_events() == [event]
            assert uow.collect_events() == []
        with store.unit_of_work() as uow:
            uow.add_event(event)
            uow.rollback()
            assert uow.collect_events() == []

    def test_use_cases_publish_events_only_when_they_commit(self, store: Store) -> None:
        clock = FixedClock(T0)
        crm = Crm(store, clock=clock)
        seen: list[DomainEvent] = []
        crm.subscribe(seen.append)
        ann = crm.register("Ann Lee", emails=["ann@example.com"], source="erp", external_id="1")
        assert seen == [CustomerRegistered(at=T0, customer=ann.number)]
        with pytest.raises(DuplicateError):
            crm.register("Bob", source="erp", external_id="1")
        with pytest.raises(InvalidTransition):
            crm.change_stage(ann.number, LifecycleStage.REACTIVATED)
        assert len(seen) == 1
        crm.erase(ann.number)
        assert seen[-1] == CustomerErased(at=T0, customer=ann.number)
        assert len(seen) == 2
