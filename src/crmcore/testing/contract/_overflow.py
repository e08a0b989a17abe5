"""Running totals at the edge of their range: refused whole, never wrapped or half-applied.

Private to :mod:`crmcore.testing.contract`: :class:`~crmcore.testing.contract.AggregateContract`
inherits these cases. A transaction's total is below ``10**17`` minor units, so 92 of the
largest fit in a running total (``2**63 - 1``) and the 93rd does not; each case checks that
the refused write raised :class:`~crmcore.errors.ValidationError` naming the total, stored no
record and left the aggregate as it was, through every way of recording: one record, a list
(``add_many``) and a column batch (``add_batch``, the columnar import's path).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Final

import attrs
import numpy as np
import pytest

from crmcore._epoch import to_us
from crmcore.analytics.columns import SALES_CHANNEL_CODES, TRANSACTION_KIND_CODES
from crmcore.domain import CrmNumber, Transaction, TransactionKind
from crmcore.errors import ValidationError
from crmcore.ports import Store, UnitOfWork
from crmcore.ports.batches import TransactionBatch
from crmcore.testing.contract._support import (
    T0,
    make_transaction,
    read,
    register,
    write,
)

__all__ = ["OverflowCases"]

LARGEST: Final = 10**17 - 1
"""The largest total in minor units a transaction may have."""
FITTING: Final = 92
"""How many :data:`LARGEST` totals a running total holds."""


def _largest(store: Store, number: CrmNumber, kind: TransactionKind, ref: str) -> Transaction:
    return _priced(
        make_transaction(store, number, T0, LARGEST, kind, source="edge", external_ref=ref)
    )


def _priced(tx: Transaction) -> Transaction:
    """``tx`` with its total as reporting total (it is in the store's reporting currency)."""
    return attrs.evolve(tx, reporting_total=tx.total)


def _batch(store: Store, items: Sequence[Transaction]) -> TransactionBatch:
    """``items`` as the column batch the columnar import hands to ``add_batch``."""
    ids = [t.id.int for t in items]
    return TransactionBatch(
        customer=np.array([t.customer.value for t in items], dtype=object),
        occurred_us=np.array([to_us(t.occurred_at) for t in items], dtype=np.int64),
        kind=np.array([TRANSACTION_KIND_CODES[t.kind] for t in items], dtype=np.int8),
        channel=np.array([SALES_CHANNEL_CODES[t.channel] for t in items], dtype=np.int8),
        currency=np.array([t.total.currency for t in items], dtype=object),
        total_minor=np.array([t.total.minor_units for t in items], dtype=np.int64),
        reporting_minor=np.array(
            [t.reporting_total.minor_units for t in items if t.reporting_total], dtype=np.int64
        ),
        source=np.array([t.source for t in items], dtype=object),
        external_ref=np.array([t.external_ref for t in items], dtype=object),
        id_high=np.array([i >> 64 for i in ids], dtype=np.uint64),
        id_low=np.array([i & (2**64 - 1) for i in ids], dtype=np.uint64),
    )


def _write(store: Store, uow: UnitOfWork, how: str, items: list[Transaction]) -> None:
    """Store ``items`` the way ``how`` names (the unit is left without committing)."""
    if how == "add":
        (item,) = items
        uow.transactions.add(item)
    elif how == "add_many":
        uow.transactions.add_many(items)
    else:
        uow.transactions.add_batch(_batch(store, items))


class OverflowCases:
    """A running total that would pass ``2**63 - 1`` is refused before anything is stored."""

    @pytest.mark.parametrize("kind", list(TransactionKind))
    @pytest.mark.parametrize("how", ["add", "add_many", "add_batch"])
    def test_a_write_past_the_largest_running_total_is_refused_whole(
        self, store: Store, kind: TransactionKind, how: str
    ) -> None:
        number = register(store).number
        tag = uuid.uuid4().hex
        full = [_largest(store, number, kind, f"{tag}-{i}") for i in range(FITTING)]
        write(store, lambda uow: uow.transactions.add_many(full))
        before = read(store, lambda uow: uow.aggregates.get(number))
        total = "refund_minor" if kind is TransactionKind.REFUND else "purchase_minor"
        assert getattr(before, total) == FITTING * LARGEST

        small = _priced(
            make_transaction(store, number, T0, 1, kind, source="edge", external_ref=tag)
        )
        extra = _largest(store, number, kind, f"{tag}-over")
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as info:
            _write(store, uow, how, [extra] if how == "add" else [small, extra])
        assert info.value.field == total
        with store.unit_of_work() as uow:
            assert uow.aggregates.get(number) == before
            assert uow.transactions.find_by_external_ref("edge", tag) is None
            assert uow.transactions.find_by_external_ref("edge", f"{tag}-over") is None
            assert len(uow.transactions.for_customer(number)) == FITTING

    @pytest.mark.parametrize("how", ["add_many", "add_batch"])
    def test_a_batch_whose_own_sum_overflows_is_refused_whole(self, store: Store, how: str) -> None:
        number = register(store).number
        tag = uuid.uuid4().hex
        kind = TransactionKind.PURCHASE
        items = [_largest(store, number, kind, f"{tag}-{i}") for i in range(FITTING + 1)]
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as info:
            _write(store, uow, how, items)
        assert info.value.field == "purchase_minor"
        with store.unit_of_work() as uow:
            aggregate = uow.aggregates.get(number)
            assert (aggregate.purchase_count, aggregate.purchase_minor) == (0, 0)
            assert list(uow.transactions.for_customer(number)) == []
