"""The retention operations' part of the contract: inactive customers, interaction texts
before an instant and their redaction, transaction line descriptions, the anonymised mark."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import attrs
import pytest

from crmcore.domain import CrmNumber, Money, TransactionKind, TransactionLine
from crmcore.errors import ValidationError
from crmcore.ports import Store
from crmcore.testing.contract._support import (
    ONE_DAY,
    T0,
    Boom,
    StoreFixture,
    get_customer,
    make_interaction,
    make_transaction,
    read,
    record,
    register,
    write,
)

CUT = T0 + 100 * ONE_DAY


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(int=(n << 64) | (2**64 - n))  # high and low halves both matter


class RetentionContract(StoreFixture):
    """What :mod:`crmcore.services` retention needs from a store."""

    def test_inactive_customers_since_a_cutoff(self, store: Store) -> None:
        before = T0
        quiet = register(store, created_at=before, updated_at=before).number
        bought = register(store, created_at=before, updated_at=before).number
        refunded = register(store, created_at=before, updated_at=before).number
        called = register(store, created_at=before, updated_at=before).number
        old_history = register(store, created_at=before, updated_at=before).number
        register(store, created_at=CUT, updated_at=CUT)  # registered at the cut-off: active
        anonymised = register(
            store, created_at=before, updated_at=before, anonymised_at=before + ONE_DAY
        ).number
        erased = register(store, created_at=before, updated_at=before).number
        record(store, make_transaction(store, bought, CUT + ONE_DAY))
        record(store, make_transaction(store, refunded, CUT, kind=TransactionKind.REFUND))
        record(store, make_interaction(called, CUT))  # at the cut-off: active
        record(store, make_transaction(store, old_history, CUT - dt.timedelta(microseconds=1)))
        record(store, make_interaction(old_history, before))
        write(store, lambda uow: uow.customers.erase(erased))

        def inactive(**kwargs: object) -> list[CrmNumber]:
            return read(store, lambda uow: list(uow.customers.inactive(CUT, **kwargs)))  # type: ignore[arg-type]

        assert inactive() == [quiet, old_history]
        assert inactive(include_anonymised=True) == sorted([quiet, old_history, anonymised])
        # Keyset paging: pages of one, each after the last number of the page before.
        assert inactive(limit=1) == [quiet]
        assert inactive(limit=1, after=quiet) == [old_history]
        assert inactive(limit=1, after=old_history) == []
        shifted = CUT.astimezone(dt.timezone(dt.timedelta(hours=-5)))
        assert read(store, lambda uow: list(uow.customers.inactive(shifted))) == inactive()
        for bad in (0, -1, True, 1.5):
            with pytest.raises(ValidationError):
                inactive(limit=bad)
        with pytest.raises(ValidationError):
            read(store, lambda uow: uow.customers.inactive(CUT.replace(tzinfo=None)))

    def test_anonymised_at_is_stored_and_read_back(self, store: Store) -> None:
        customer = register(store)
        assert get_customer(store, customer.number).anonymised_at is None
        stored = get_customer(store, customer.number)
        stored.anonymised_at = CUT.astimezone(dt.timezone(dt.timedelta(hours=2)))
        write(store, lambda uow: uow.customers.update(stored))
        back = get_customer(store, customer.number)
        assert back.anonymised_at == CUT
        assert back.anonymised_at is not None and back.anonymised_at.utcoffset() == dt.timedelta(0)
        assert read(store, lambda uow: list(uow.customers.iter_all())) == [back]

    def test_interaction_texts_before_a_cutoff_and_their_redaction(self, store: Store) -> None:
        a, b = register(store).number, register(store).number
        items = [
            make_interaction(a, T0, subject="s", notes="n", outcome="o", agent="x", id=_id(5)),
            make_interaction(b, T0, notes="only notes", id=_id(3)),
            make_interaction(a, T0, subject="only subject", id=_id(9)),
            make_interaction(a, T0, outcome="only outcome", id=_id(1)),  # nothing to blank
            make_interaction(b, CUT, subject="at the cut-off", notes="n", id=_id(2)),
            make_interaction(a, CUT + ONE_DAY, notes="later", id=_id(4)),
        ]
        for item in items:
            record(store, item)
        aggregates = read(store, lambda uow: (uow.aggregates.get(a), uow.aggregates.get(b)))

        def page(**kwargs: object) -> list[tuple[uuid.UUID, CrmNumber]]:
            return read(store, lambda uow: list(uow.interactions.with_text_before(CUT, **kwargs)))  # type: ignore[arg-type]

        assert page() == [(_id(3), b), (_id(5), a), (_id(9), a)]
        assert page(limit=2) == [(_id(3), b), (_id(5), a)]
        assert page(after=_id(5)) == [(_id(9), a)]
        with pytest.raises(ValidationError):
            page(limit=0)

        # A rolled-back redaction changes nothing.
        def failing_unit() -> None:
            with store.unit_of_work() as uow:
                uow.interactions.redact([_id(5)], ["subject", "notes"])
                raise Boom

        with pytest.raises(Boom):
            failing_unit()
        assert read(store, lambda uow: uow.interactions.get(_id(5))) == items[0]

        changed = write(
            store,
            lambda uow: uow.interactions.redact(
                [_id(3), _id(5), _id(9), _id(1), uuid.UUID(int=77)], ["notes", "subject"]
            ),
        )
        assert changed == 3
        assert page() == []
        assert read(store, lambda uow: uow.interactions.get(_id(5))) == attrs.evolve(
            items[0], subject=None, notes=None
        )
        assert read(store, lambda uow: uow.interactions.get(_id(1))) == items[3]
        assert read(store, lambda uow: uow.interactions.get(_id(2))) == items[4]
        assert read(store, lambda uow: (uow.aggregates.get(a), uow.aggregates.get(b))) == aggregates
        again = write(store, lambda uow: uow.interactions.redact([_id(3), _id(5)], ["notes"]))
        assert again == 0
        assert write(store, lambda uow: uow.interactions.redact([_id(5)], ["outcome"])) == 1
        assert read(store, lambda uow: uow.interactions.get(_id(5))).outcome is None
        with pytest.raises(ValidationError):
            write(store, lambda uow: uow.interactions.redact([_id(4)], ["agent"]))

    def test_transaction_line_descriptions_are_redacted(self, store: Store) -> None:
        a, b = register(store).number, register(store).number
        price = Money.from_minor_units(250, store.reporting_currency)
        described = (
            TransactionLine("SKU-1", Decimal("1.5"), price, "for Ann's birthday"),
            TransactionLine("SKU-2", Decimal(2), price),
        )
        plain = (TransactionLine("SKU-3", Decimal(1), price),)
        txs = [
            make_transaction(store, a, T0, lines=described),
            make_transaction(store, a, T0 + ONE_DAY, lines=plain),
            make_transaction(store, a, T0 + 2 * ONE_DAY),
            make_transaction(store, b, T0, lines=described),
        ]
        for tx in txs:
            record(store, tx)
        assert write(store, lambda uow: uow.transactions.redact_line_descriptions(a)) == 1
        after = read(store, lambda uow: uow.transactions.get(txs[0].id))
        assert after == attrs.evolve(
            txs[0], lines=tuple(attrs.evolve(line, description=None) for line in described)
        )
        assert read(store, lambda uow: uow.transactions.get(txs[1].id)) == txs[1]
        assert read(store, lambda uow: uow.transactions.get(txs[3].id)) == txs[3]
        assert write(store, lambda uow: uow.transactions.redact_line_descriptions(a)) == 0
        unknown = store.scheme.format(10**6)
        assert write(store, lambda uow: uow.transactions.redact_line_descriptions(unknown)) == 0
