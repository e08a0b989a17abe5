"""The aggregate repository's part of the contract."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs
from hypothesis import given
from hypothesis import strategies as st

from crmcore.domain import (
    CustomerAggregate,
    Interaction,
    InteractionKind,
    Transaction,
    TransactionKind,
)
from crmcore.ports import Store
from crmcore.testing import strategies as cst
from crmcore.testing.contract._overflow import OverflowCases
from crmcore.testing.contract._support import (
    PROPERTY_SETTINGS,
    T0,
    StoreFixture,
    fold,
    make_interaction,
    make_transaction,
    read,
    record,
    register,
    with_reporting_total,
    write,
)


class AggregateContract(OverflowCases, StoreFixture):
    """Per-customer aggregates: the fold of the history, in any order; a running total that
    would pass ``2**63 - 1`` is refused before anything is stored."""

    # -- aggregates --------------------------------------------------------------------------

    def test_a_customer_without_history_has_an_all_zero_aggregate(self, store: Store) -> None:
        customer = register(store)
        aggregate = read(store, lambda uow: uow.aggregates.get(customer.number))
        assert aggregate == CustomerAggregate(customer=customer.number)

    def test_aggregates_fold_purchases_refunds_and_interactions(self, store: Store) -> None:
        customer = register(store)
        n = customer.number
        late, early = T0 + dt.timedelta(days=30), T0 - dt.timedelta(days=30)
        history: list[Interaction | Transaction] = [
            make_transaction(store, n, T0, 1500),
            make_transaction(store, n, late, 250, TransactionKind.REFUND),  # refunds move no dates
            make_transaction(store, n, early, 700),
            make_interaction(n, late, kind=InteractionKind.COMPLAINT),
            make_interaction(n, early),
        ]
        for item in history:
            record(store, item)
        aggregate = read(store, lambda uow: uow.aggregates.get(n))
        assert aggregate == CustomerAggregate(
            customer=n,
            purchase_count=2,
            refund_count=1,
            purchase_minor=2200,
            refund_minor=250,
            first_purchase_at=early,
            last_purchase_at=T0,
            interaction_count=2,
            complaint_count=1,
            last_interaction_at=late,
        )
        assert aggregate.net_minor == 1950

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_aggregates_equal_a_fold_of_the_history_in_any_order(
        self, store: Store, data: st.DataObject
    ) -> None:
        customer = register(store)
        n = customer.number
        txs = data.draw(
            st.lists(
                cst.transactions(n, refund_probability=0.3, sources=None, with_lines=False),
                max_size=8,
                unique_by=lambda t: t.id,
            )
        )
        ixs = data.draw(
            st.lists(cst.interactions(n, sources=None), max_size=8, unique_by=lambda i: i.id)
        )
        # Fresh ids: examples share the store, and generated ids repeat across examples.
        txs = [with_reporting_total(store, attrs.evolve(t, id=uuid.uuid4())) for t in txs]
        ixs = [attrs.evolve(i, id=uuid.uuid4()) for i in ixs]
        history: list[Interaction | Transaction] = data.draw(st.permutations([*txs, *ixs]))
        bulk = data.draw(st.booleans())
        if bulk:
            write(store, lambda uow: uow.transactions.add_many(txs))
            write(store, lambda uow: uow.interactions.add_many(ixs))
        else:
            for item in history:
                record(store, item)
        assert read(store, lambda uow: uow.aggregates.get(n)) == fold(n, history)
