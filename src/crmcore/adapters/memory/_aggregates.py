"""The in-memory aggregate repository: a customer's running totals, read from its row."""

from __future__ import annotations

from crmcore._epoch import from_us_or_none
from crmcore.adapters.memory._context import TransactionContext
from crmcore.domain import CrmNumber, CustomerAggregate

__all__ = ["Aggregates"]


class Aggregates:
    """:class:`~crmcore.ports.AggregateRepository` of one in-memory unit of work.

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._context = context

    def get(self, number: CrmNumber) -> CustomerAggregate:
        context = self._context
        context.check_active()
        context.require_customer(number)
        state = context.state
        row = state.aggregates.row(state.row_of[number])
        return CustomerAggregate(
            customer=number,
            purchase_count=row["purchase_count"],
            refund_count=row["refund_count"],
            purchase_minor=row["purchase_minor"],
            refund_minor=row["refund_minor"],
            first_purchase_at=from_us_or_none(row["first_purchase_us"]),
            last_purchase_at=from_us_or_none(row["last_purchase_us"]),
            interaction_count=row["interaction_count"],
            complaint_count=row["complaint_count"],
            last_interaction_at=from_us_or_none(row["last_interaction_us"]),
        )
