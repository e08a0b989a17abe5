"""What an in-memory store holds, and the lock that guards it.

:class:`MemoryState` is every object, index and numpy column of one
:class:`~crmcore.adapters.memory.InMemoryStore`; :class:`StateGuard` is the store's single
lock around it. Units of work (:mod:`._uow`) and the analytics reader (:mod:`._metrics`) are
each handed the store's guard when the store makes them, and reach the state only by entering
it. Nothing here is re-exported: the package's public names are ``InMemoryStore`` and
``MemoryUnitOfWork``.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from types import TracebackType

import attrs

from crmcore._epoch import NONE_MIN
from crmcore.adapters.memory._columns import ColumnTable, new_aggregate_table
from crmcore.adapters.memory._encoders import INTERACTION_ENCODER, TRANSACTION_ENCODER
from crmcore.adapters.memory._history import HistoryTable
from crmcore.domain import (
    AuditEntry,
    CrmNumber,
    Customer,
    Interaction,
    Segment,
    SegmentMembership,
    Transaction,
)
from crmcore.errors import ConfigurationError

__all__ = ["MemoryState", "StateGuard"]


def _transactions() -> HistoryTable[Transaction]:
    return HistoryTable("transaction", TRANSACTION_ENCODER)


def _interactions() -> HistoryTable[Interaction]:
    return HistoryTable("interaction", INTERACTION_ENCODER)


@attrs.define
class MemoryState:
    """Everything an in-memory store holds. Read and changed only inside its
    :class:`StateGuard`.

    Attributes:
        customers: live customers by number (stored copies: hand out copies).
        tombstones: numbers of erased customers (never reused).
        by_external_id: number by ``(source, external_id)``.
        by_email: numbers by e-mail lookup key.
        by_phone: numbers by E.164 phone number.
        by_tag: tag -> aggregate rows of the live customers holding it (rule snapshots read
            tags here instead of walking every customer).
        transactions: the transaction history (objects and log).
        interactions: the interaction history (objects and log).
        aggregates: one row of running aggregates per customer ever added (erased rows stay,
            with ``alive`` 0); see :mod:`._columns`.
        row_of: aggregate row by number; ``row_numbers`` is the inverse.
        row_by_text: aggregate row by number text (the bulk import resolves columns of
            number text through it without building number objects).
        row_numbers: number by aggregate row.
        segments: saved segments by name.
        memberships: each segment's saved runs, ordered by ``as_of``.
        latest_event_us: the latest ``occurred_at`` of any stored transaction or interaction
            (analytics use it to know when the maintained aggregates are current).
        generation: bumped by every commit that changed something.
        audit: the audit trail, ordered by ``(at, order appended)``; ``audit_keys`` holds
            those keys (for ``bisect``), ``audit_ids`` the entries' ids, ``audit_sequence``
            the last order number given. Erasure leaves them alone.
    """

    customers: dict[CrmNumber, Customer] = attrs.Factory(dict)
    tombstones: set[CrmNumber] = attrs.Factory(set)
    by_external_id: dict[tuple[str, str], CrmNumber] = attrs.Factory(dict)
    by_email: dict[str, set[CrmNumber]] = attrs.Factory(dict)
    by_phone: dict[str, set[CrmNumber]] = attrs.Factory(dict)
    by_tag: dict[str, set[int]] = attrs.Factory(dict)
    transactions: HistoryTable[Transaction] = attrs.Factory(_transactions)
    interactions: HistoryTable[Interaction] = attrs.Factory(_interactions)
    aggregates: ColumnTable = attrs.Factory(new_aggregate_table)
    row_of: dict[CrmNumber, int] = attrs.Factory(dict)
    row_by_text: dict[str, int] = attrs.Factory(dict)
    row_numbers: list[CrmNumber] = attrs.Factory(list)
    segments: dict[str, Segment] = attrs.Factory(dict)
    memberships: dict[str, list[SegmentMembership]] = attrs.Factory(dict)
    latest_event_us: int = NONE_MIN
    generation: int = 0
    audit: list[AuditEntry] = attrs.Factory(list)
    audit_keys: list[tuple[dt.datetime, int]] = attrs.Factory(list)
    audit_ids: set[uuid.UUID] = attrs.Factory(set)
    audit_sequence: int = 0


class StateGuard:
    """The store's lock around its :class:`MemoryState`, one holder at a time.

    ``with guard as state:`` holds the lock for the block. The guard is itself the context
    manager (no object per entry: an incremental refresh takes the lock twice, and that cost
    is on its path). Entering from the thread that already holds it raises
    :class:`~crmcore.errors.ConfigurationError`, since waiting would deadlock.

    Args:
        state: the state to guard.

    Attributes:
        state: as given; touch it only while holding the guard.
    """

    __slots__ = ("_lock", "_owner", "state")

    def __init__(self, state: MemoryState) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._owner: int | None = None

    def __enter__(self) -> MemoryState:
        me = threading.get_ident()
        if self._owner == me:
            raise ConfigurationError(
                "a unit of work of this in-memory store is already open in this thread; "
                "nesting would deadlock"
            )
        self._lock.acquire()
        self._owner = me
        return self.state

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner = None
        self._lock.release()
