"""The transaction context: what one unit of work of the in-memory store is changing.

A :class:`~crmcore.adapters.memory.MemoryUnitOfWork` makes one :class:`TransactionContext`
and hands it to each of its repositories. Repositories change ``context.state`` in place and
push the inverse of every change on ``context.undo``; the unit replays that log backwards on
rollback and forgets it on commit. The context is the repositories' whole view of the unit
and the store: they reach nothing else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from typing import Final

import numpy as np

from crmcore.adapters.memory._columns import ColumnTable, Int64Array
from crmcore.adapters.memory._history import Undo
from crmcore.adapters.memory._state import MemoryState
from crmcore.domain import CrmNumber, DomainEvent
from crmcore.errors import ConfigurationError, ErasedError, NotFound

__all__ = ["TransactionContext"]

_PURCHASE: Final = ("purchase_count", "purchase_minor", "first_purchase_us", "last_purchase_us")
_REFUND: Final = ("refund_count", "refund_minor")
_INTERACTION: Final = ("interaction_count", "complaint_count", "last_interaction_us")


def _restore(aggregates: ColumnTable, row: int, names: tuple[str, ...], old: list[int]) -> None:
    # The arrays are looked up when undoing: a later write of the unit (a new customer) may
    # have grown the table and replaced them.
    columns = aggregates.columns
    for name, value in zip(names, old, strict=True):
        columns[name][row] = value


class TransactionContext:
    """The state one unit of work changes, its undo log and its pending events.

    Args:
        state: the store's state (the unit holds the store's lock while it is active).
        reporting_currency: the store's reporting currency.

    Attributes:
        state: as given; changed in place.
        reporting_currency: as given.
        undo: inverse operations of the unit's writes so far, oldest first.
        events: domain events added by the use case and not yet collected.
        active: whether the unit is inside its ``with`` block.
    """

    __slots__ = ("active", "events", "reporting_currency", "state", "undo")

    def __init__(self, state: MemoryState, reporting_currency: str) -> None:
        self.state = state
        self.reporting_currency = reporting_currency
        self.undo: list[Undo] = []
        self.events: list[DomainEvent] = []
        self.active = False

    def check_active(self) -> None:
        """Raise unless the unit is inside its ``with`` block.

        Raises:
            ConfigurationError: it is not.
        """
        if not self.active:
            raise ConfigurationError("use the unit of work inside a 'with' block")

    def require_customer(self, number: CrmNumber) -> None:
        """Raise unless ``number`` is a live customer.

        Raises:
            ErasedError: the customer was erased.
            NotFound: there never was such a customer.
        """
        state = self.state
        if number not in state.customers:
            if number in state.tombstones:
                raise ErasedError("customer", number)
            raise NotFound("customer", number)

    def update_aggregate(self, row: int, changes: Mapping[str, int]) -> None:
        """Set some aggregate columns of one customer's row (undoably)."""
        aggregates = self.state.aggregates
        columns = aggregates.columns
        old = {name: int(columns[name][row]) for name in changes}
        for name, value in changes.items():
            columns[name][row] = value
        self.undo.append(lambda: aggregates.set_row(row, old))

    def add_purchase(self, row: int, occurred_us: int, minor: int) -> None:
        """Fold one purchase into a customer's aggregates (undoably)."""
        aggregates = self.state.aggregates
        c = aggregates.columns
        count, total = c["purchase_count"], c["purchase_minor"]
        first, last = c["first_purchase_us"], c["last_purchase_us"]
        old = [count.item(row), total.item(row), first.item(row), last.item(row)]
        count[row] = old[0] + 1
        total[row] = old[1] + minor
        if occurred_us < old[2]:
            first[row] = occurred_us
        if occurred_us > old[3]:
            last[row] = occurred_us
        self.undo.append(functools.partial(_restore, aggregates, row, _PURCHASE, old))

    def add_refund(self, row: int, minor: int) -> None:
        """Fold one refund into a customer's aggregates (undoably)."""
        aggregates = self.state.aggregates
        c = aggregates.columns
        count, total = c["refund_count"], c["refund_minor"]
        old = [count.item(row), total.item(row)]
        count[row] = old[0] + 1
        total[row] = old[1] + minor
        self.undo.append(functools.partial(_restore, aggregates, row, _REFUND, old))

    def add_interaction(self, row: int, occurred_us: int, complaint: bool) -> None:
        """Fold one interaction into a customer's aggregates (undoably)."""
        aggregates = self.state.aggregates
        c = aggregates.columns
        count, complaints = c["interaction_count"], c["complaint_count"]
        last = c["last_interaction_us"]
        old = [count.item(row), complaints.item(row), last.item(row)]
        count[row] = old[0] + 1
        if complaint:
            complaints[row] = old[1] + 1
        if occurred_us > old[2]:
            last[row] = occurred_us
        self.undo.append(functools.partial(_restore, aggregates, row, _INTERACTION, old))

    def update_aggregates(
        self,
        rows: Int64Array,
        names: Collection[str],
        fold: Callable[[dict[str, Int64Array]], None],
    ) -> None:
        """Let ``fold`` change columns ``names`` at ``rows`` of the aggregates in place
        (numpy ``ufunc.at``), recording one undo entry for them all."""
        columns = self.state.aggregates.columns
        touched = np.unique(rows)
        saved = {name: columns[name][touched].copy() for name in names}
        fold(columns)

        def undo() -> None:
            for name, values in saved.items():
                columns[name][touched] = values

        self.undo.append(undo)

    def bump_latest(self, occurred_us: int) -> None:
        """Raise the state's latest event instant to ``occurred_us`` if later (undoably)."""
        state = self.state
        previous = state.latest_event_us
        if occurred_us > previous:
            state.latest_event_us = occurred_us

            def undo() -> None:
                state.latest_event_us = previous

            self.undo.append(undo)

    def commit(self) -> None:
        """Keep the writes so far: forget their undo log (a new generation if any)."""
        if self.undo:
            self.state.generation += 1
        self.undo.clear()

    def undo_to(self, mark: int) -> None:
        """Undo the writes made since the undo log was ``mark`` entries long, newest first
        (a repository method that fails after writing leaves nothing behind)."""
        undo = self.undo
        while len(undo) > mark:
            undo.pop()()

    def rollback(self) -> None:
        """Undo the writes so far, newest first, and drop the pending events."""
        undo = self.undo
        while undo:
            undo.pop()()
        self.events.clear()
