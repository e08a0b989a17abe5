"""The audit log's part of the contract: append-only, ordered, filtered, transactional."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from crmcore.domain import AuditAction, AuditEntity, AuditEntry, AuditOutcome, CrmNumber
from crmcore.errors import DuplicateError, ValidationError
from crmcore.ports import Store
from crmcore.testing.contract._support import T0, Boom, StoreFixture, read, register, write


def entry(
    at: dt.datetime = T0,
    *,
    actor: str = "user:1",
    action: AuditAction = AuditAction.READ,
    customer: CrmNumber | None = None,
    **changes: Any,
) -> AuditEntry:
    """An audit entry with a fresh id (the other fields as given or plain defaults)."""
    return AuditEntry(
        id=uuid.uuid4(),
        at=at,
        actor=actor,
        action=action,
        entity=changes.pop("entity", AuditEntity.CUSTOMER),
        customer=customer,
        **changes,
    )


class AuditLogContract(StoreFixture):
    """The audit log (``uow.audit``)."""

    def test_entries_round_trip_every_field(self, store: Store) -> None:
        number = register(store).number
        full = entry(
            T0 + dt.timedelta(microseconds=1),
            actor="job:nightly-import.v2/eu",
            action=AuditAction.UPDATE,
            customer=number,
            fields=("emails", "birth_date"),
            outcome=AuditOutcome.MASKED,
            rows=2**40,
        )
        bare = entry(T0, action=AuditAction.IMPORT_TRANSACTIONS, entity=AuditEntity.TRANSACTION)
        write(store, lambda uow: uow.audit.append_many([full, bare]))
        assert read(store, lambda uow: list(uow.audit.query())) == [bare, full]
        got = read(store, lambda uow: uow.audit.query(number=number))[0]
        assert got.at.tzinfo is not None and got.at.utcoffset() == dt.timedelta(0)
        assert got.fields == ("birth_date", "emails")  # sorted by construction

    def test_order_is_instant_then_insertion(self, store: Store) -> None:
        later, same = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(minutes=5)
        first = [entry(later, actor="a"), entry(same, actor="b")]
        second = [entry(same, actor="c"), entry(T0, actor="d"), entry(same, actor="e")]
        write(store, lambda uow: uow.audit.append_many(first))
        for item in second:
            with store.unit_of_work() as uow:
                uow.audit.append(item)
                uow.commit()
        actors = [e.actor for e in read(store, lambda uow: uow.audit.query())]
        assert actors == ["d", "b", "c", "e", "a"]

    def test_filters_combine_and_limit_keeps_the_oldest(self, store: Store) -> None:
        a, b = register(store).number, register(store).number
        entries = [
            entry(T0, customer=a, actor="u1"),
            entry(T0 + dt.timedelta(days=1), customer=b, actor="u1"),
            entry(T0 + dt.timedelta(days=2), customer=a, actor="u2", action=AuditAction.ERASE),
            entry(T0 + dt.timedelta(days=3), customer=a, actor="u1"),
            entry(T0 + dt.timedelta(days=4), actor="u1", action=AuditAction.REGISTER_MANY),
        ]
        write(store, lambda uow: uow.audit.append_many(entries))

        def ids(**filters: Any) -> list[uuid.UUID]:
            return [e.id for e in read(store, lambda uow: uow.audit.query(**filters))]

        assert ids(number=a) == [entries[0].id, entries[2].id, entries[3].id]
        assert ids(actor="u2") == [entries[2].id]
        assert ids(action=AuditAction.ERASE) == [entries[2].id]
        day1 = T0 + dt.timedelta(days=1)
        day3 = T0 + dt.timedelta(days=3)
        assert ids(since=day1, until=day3) == [entries[1].id, entries[2].id]
        assert ids(number=a, actor="u1", since=day1) == [entries[3].id]
        assert ids(limit=2) == [entries[0].id, entries[1].id]
        assert ids(number=a, limit=0) == []
        assert ids(since=T0 + dt.timedelta(days=9)) == []
        with pytest.raises(ValidationError):
            read(store, lambda uow: uow.audit.query(limit=-1))
        with pytest.raises(ValidationError):
            read(store, lambda uow: uow.audit.query(since=dt.datetime(2024, 1, 1)))  # noqa: DTZ001

    def test_rollback_leaves_no_entry(self, store: Store) -> None:
        def failing() -> None:
            with store.unit_of_work() as uow:
                uow.audit.append(entry())
                raise Boom

        with pytest.raises(Boom):
            failing()
        with store.unit_of_work() as uow:
            uow.audit.append(entry())
            uow.rollback()
        assert read(store, lambda uow: list(uow.audit.query())) == []

    def test_a_duplicate_id_is_refused(self, store: Store) -> None:
        item = entry()
        write(store, lambda uow: uow.audit.append(item))
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.audit.append(item))
        assert len(read(store, lambda uow: uow.audit.query())) == 1

    def test_erasure_keeps_the_customers_entries(self, store: Store) -> None:
        number = register(store).number
        item = entry(customer=number, action=AuditAction.REGISTER)
        write(store, lambda uow: uow.audit.append(item))
        write(store, lambda uow: uow.customers.erase(number))
        assert read(store, lambda uow: list(uow.audit.query(number=number))) == [item]
