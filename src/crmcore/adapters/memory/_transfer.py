"""The in-memory store's :class:`~crmcore.ports.transfer.TransferRepository`: the allocator's
position, tombstones, every segment run and the history column-wise, for dump and restore.

History chunks are cut straight from the numpy log of each history (no domain object per
row): codes, amounts and instants are copied, dictionary codes and text spans decoded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from crmcore.adapters.memory._columns import ALIVE, Int64Array
from crmcore.adapters.memory._context import TransactionContext
from crmcore.adapters.memory._customers import Customers, check_number
from crmcore.adapters.memory._history import REF, HistoryTable
from crmcore.analytics.columns import INTERACTION_COLUMNS, TRANSACTION_COLUMNS
from crmcore.domain import ConsentRecord, CrmNumber, Customer, SegmentMembership, TransactionLine
from crmcore.domain.consent import history_order
from crmcore.errors import DuplicateError, ValidationError
from crmcore.ports.batches import InteractionBatch, TransactionBatch
from crmcore.ports.transfer import AggregateColumns, TransactionChunk

__all__ = ["MemoryTransfer", "PositionedAllocator", "check_size"]


class PositionedAllocator(Protocol):
    """What the transfer needs from the store's allocator."""

    def position(self) -> int: ...
    def raise_to(self, position: int) -> None: ...


def check_size(size: object) -> int:
    """``size`` if it is a positive integer.

    Raises:
        ValidationError: it is not.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValidationError("size", size, "must be a positive integer")
    return size


def _objects(values: Sequence[Any]) -> Any:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class MemoryTransfer:
    """:class:`~crmcore.ports.transfer.TransferRepository` of one in-memory unit of work.

    Args:
        context: the unit's transaction context.
        allocator: the store's allocator.
    """

    def __init__(self, context: TransactionContext, allocator: PositionedAllocator) -> None:
        self._context = context
        self._state = context.state
        self._allocator = allocator

    def is_empty(self) -> bool:
        self._context.check_active()
        state = self._state
        return not (
            state.customers
            or state.tombstones
            or state.segments
            or state.transactions.log.size
            or state.interactions.log.size
        )

    def allocator_position(self) -> int:
        self._context.check_active()
        return self._allocator.position()

    def raise_allocator(self, position: int) -> None:
        self._context.check_active()
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValidationError("position", position, "must be a non-negative integer")
        # Not undone on rollback: a raised counter only leaves a gap, which is allowed.
        self._allocator.raise_to(position)

    def customer_chunks(self, size: int) -> Iterator[Sequence[Customer]]:
        self._context.check_active()
        check_size(size)
        customers = self._state.customers
        numbers = sorted(customers)
        for start in range(0, len(numbers), size):
            # Copies: the stored objects are mutable and must not leak to the caller.
            yield [copy.copy(customers[n]) for n in numbers[start : start + size]]

    def consent_chunks(self, size: int) -> Iterator[Sequence[ConsentRecord]]:
        self._context.check_active()
        check_size(size)
        ledger = self._state.consents
        chunk: list[ConsentRecord] = []
        for number in sorted(ledger):
            chunk.extend(history_order(ledger[number]))
            while len(chunk) >= size:
                yield chunk[:size]
                chunk = chunk[size:]
        if chunk:
            yield chunk

    def add_customers(self, customers: Sequence[Customer]) -> None:
        Customers(self._context).add_owned(customers)

    def tombstones(self) -> Sequence[CrmNumber]:
        self._context.check_active()
        return sorted(self._state.tombstones)

    def add_tombstones(self, numbers: Sequence[CrmNumber]) -> None:
        self._context.check_active()
        state = self._state
        added: list[CrmNumber] = []
        try:
            for number in numbers:
                check_number(number)
                if number in state.customers or number in state.tombstones:
                    raise DuplicateError("crm number", number)
                state.tombstones.add(number)
                added.append(number)
        finally:

            def undo() -> None:
                state.tombstones.difference_update(added)

            self._context.undo.append(undo)

    def _live(self, history: HistoryTable[Any]) -> Int64Array:
        # Erased customers' rows are blanked to row -1 and stay in the log.
        return (history.log.view("row") >= 0).nonzero()[0]

    def _common(self, history: HistoryTable[Any], rows: Int64Array) -> dict[str, Any]:
        cols = history.log.columns
        numbers = self._state.row_numbers
        sources = history.dictionaries["source"].names
        text = history.text
        return {
            "customer": _objects([numbers[r].value for r in cols["row"][rows].tolist()]),
            "occurred_us": cols["occurred_us"][rows].astype(np.int64),
            "source": _objects([sources[c] for c in cols["source"][rows].tolist()]),
            "external_ref": _objects(
                text.texts(
                    cols[f"{REF}_start"][rows].astype(np.int64),
                    cols[f"{REF}_len"][rows].astype(np.int64),
                )
            ),
            "id_high": cols["id_high"][rows].astype(np.uint64),
            "id_low": cols["id_low"][rows].astype(np.uint64),
        }

    def transaction_chunks(self, size: int) -> Iterator[TransactionChunk]:
        self._context.check_active()
        check_size(size)
        history = self._state.transactions
        live = self._live(history)
        cols = history.log.columns
        currencies = history.dictionary("currency").names
        for start in range(0, len(live), size):
            rows = live[start : start + size]
            batch = TransactionBatch(
                **self._common(history, rows),
                kind=cols["kind"][rows].astype(np.int8),
                channel=cols["channel"][rows].astype(np.int8),
                currency=_objects([currencies[c] for c in cols["currency"][rows].tolist()]),
                total_minor=cols["total_minor"][rows].astype(np.int64),
                reporting_minor=cols["reporting_minor"][rows].astype(np.int64),
            )
            lines: dict[int, tuple[TransactionLine, ...]] = {}
            if history.extras:
                for i, row in enumerate(rows.tolist()):
                    extra = history.extras.get(row)
                    if extra:
                        lines[i] = extra  # type: ignore[assignment]  # a transaction's lines
            yield TransactionChunk(batch=batch, lines=lines)

    def interaction_chunks(self, size: int) -> Iterator[InteractionBatch]:
        self._context.check_active()
        check_size(size)
        history = self._state.interactions
        live = self._live(history)
        cols = history.log.columns
        text = history.text
        for start in range(0, len(live), size):
            rows = live[start : start + size]
            texts = {
                name: _objects(
                    text.texts(
                        cols[f"{name}_start"][rows].astype(np.int64),
                        cols[f"{name}_len"][rows].astype(np.int64),
                    )
                )
                for name in ("subject", "notes", "outcome", "agent")
            }
            yield InteractionBatch(
                **self._common(history, rows),
                **texts,
                kind=cols["kind"][rows].astype(np.int8),
                channel=cols["channel"][rows].astype(np.int8),
                direction=cols["direction"][rows].astype(np.int8),
                follow_up_us=cols["follow_up_us"][rows].astype(np.int64),
            )

    def aggregate_columns(self) -> AggregateColumns:
        self._context.check_active()
        state = self._state
        table = state.aggregates
        rows = (table.view(ALIVE) == 1).nonzero()[0]
        texts = [state.row_numbers[r].value for r in rows.tolist()]
        order = np.argsort(np.array(texts, dtype=object), kind="stable")
        rows = rows[order]
        return AggregateColumns(
            numbers=[texts[i] for i in order.tolist()],
            columns={
                name: table.columns[name][rows].astype(np.int64)
                for name in (*TRANSACTION_COLUMNS, *INTERACTION_COLUMNS)
            },
        )

    def memberships(self) -> Iterator[SegmentMembership]:
        self._context.check_active()
        memberships = self._state.memberships
        for name in sorted(memberships):
            yield from list(memberships[name])
