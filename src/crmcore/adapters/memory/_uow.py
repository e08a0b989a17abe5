"""The in-memory unit of work: the store's lock, held from ``__enter__`` to ``__exit__``.

A unit applies each write to the live state at once and pushes the inverse operation on the
undo log of its :class:`~crmcore.adapters.memory._context.TransactionContext`; ``rollback``
replays the log backwards, ``commit`` forgets it. Reads inside the unit therefore see its own
writes, other threads see only committed state, and a failed unit leaves no trace.
"""

from __future__ import annotations

import functools
from types import TracebackType
from typing import Self

from crmcore.adapters.memory._aggregates import Aggregates
from crmcore.adapters.memory._audit import AuditTrail
from crmcore.adapters.memory._context import TransactionContext
from crmcore.adapters.memory._customers import Customers
from crmcore.adapters.memory._records import Interactions, Transactions
from crmcore.adapters.memory._segments import Segments
from crmcore.adapters.memory._state import StateGuard
from crmcore.adapters.memory._transfer import MemoryTransfer, PositionedAllocator
from crmcore.domain import DomainEvent
from crmcore.errors import ConfigurationError

__all__ = ["MemoryUnitOfWork"]


class MemoryUnitOfWork:
    """A unit of work of :class:`~crmcore.adapters.memory.InMemoryStore`.

    Made by :meth:`~crmcore.adapters.memory.InMemoryStore.unit_of_work`; used once, as a
    context manager.

    Args:
        guard: the store's lock around its state.
        reporting_currency: the store's reporting currency.
        allocator: the store's allocator (for :attr:`transfer`).
    """

    def __init__(
        self, guard: StateGuard, reporting_currency: str, allocator: PositionedAllocator
    ) -> None:
        self._guard = guard
        self._entered = False
        self._context = TransactionContext(guard.state, reporting_currency)
        self._allocator = allocator

    # The repositories are made on first use: most units (one recorded event, one read) use
    # one of the five, and making all of them was a measurable share of a per-event write.

    @functools.cached_property
    def customers(self) -> Customers:
        return Customers(self._context)

    @functools.cached_property
    def interactions(self) -> Interactions:
        return Interactions(self._context)

    @functools.cached_property
    def transactions(self) -> Transactions:
        return Transactions(self._context)

    @functools.cached_property
    def aggregates(self) -> Aggregates:
        return Aggregates(self._context)

    @functools.cached_property
    def segments(self) -> Segments:
        return Segments(self._context)

    @functools.cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self._context)

    @functools.cached_property
    def transfer(self) -> MemoryTransfer:
        return MemoryTransfer(self._context, self._allocator)

    def __enter__(self) -> Self:
        if self._entered:
            raise ConfigurationError("a unit of work is used once; start a new one")
        self._entered = True  # even if entering fails: a unit is tried once
        self._guard.__enter__()
        self._context.active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._context.rollback()
        finally:
            self._context.active = False
            self._guard.__exit__(None, None, None)

    def commit(self) -> None:
        self._context.check_active()
        self._context.commit()

    def rollback(self) -> None:
        self._context.rollback()

    def add_event(self, event: DomainEvent) -> None:
        self._context.events.append(event)

    def collect_events(self) -> list[DomainEvent]:
        context = self._context
        events, context.events = context.events, []
        return events
