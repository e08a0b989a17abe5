"""One append-only history of records (transactions or interactions): objects and a log.

:class:`HistoryTable` is generic over the record type and holds, for one kind of record, the
objects by id, each customer's ids in insertion order, the ``(source, external_ref)`` index
that makes recording idempotent, and an append-only numpy log (one row per record, encoded
by the table's :class:`ColumnEncoder`) from which analytics recompute past aggregates.

Every write pushes its inverse on the undo log it is given (see
:class:`~crmcore.adapters.memory._context.TransactionContext`), so a rolled-back unit of work
leaves no trace. Folding a record into the per-customer aggregates is not this module's job:
the repositories do that.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

import numpy as np

from crmcore.adapters.memory._columns import ColumnTable, Int64Array
from crmcore.domain import CrmNumber
from crmcore.domain._checks import aware_utc
from crmcore.errors import DuplicateError, NotFound, ValidationError

__all__ = ["ColumnEncoder", "HistoryRecord", "HistoryTable", "Undo"]

Undo = Callable[[], None]
"""One inverse operation on an undo log."""


class HistoryRecord(Protocol):
    """What a history keeps of a record: its identity, owner, reference and instant."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def customer(self) -> CrmNumber: ...
    @property
    def source(self) -> str | None: ...
    @property
    def external_ref(self) -> str | None: ...
    @property
    def occurred_at(self) -> dt.datetime: ...


R = TypeVar("R", bound=HistoryRecord)
R_contra = TypeVar("R_contra", bound=HistoryRecord, contravariant=True)


class ColumnEncoder(Protocol[R_contra]):
    """How records of one type become rows of a history's numpy log.

    Every encoding has the columns ``row`` (the customer's aggregate row, -1 once erased)
    and ``occurred_us`` (microseconds since the epoch), plus columns of its own.
    """

    @property
    def columns(self) -> tuple[str, ...]:
        """The log's column names."""
        ...

    def encode(self, record: R_contra, row: int) -> dict[str, int]:
        """One record's log row."""
        ...

    def encode_many(self, records: Sequence[R_contra], rows: Int64Array) -> dict[str, Int64Array]:
        """Many records' log rows, column-wise (``rows`` are their customers' rows)."""
        ...


class HistoryTable(Generic[R]):
    """The stored records of one kind, by id, by customer and by external reference.

    Args:
        kind: the record kind named in errors ("transaction", "interaction").
        encoder: encodes records into :attr:`log`.

    Attributes:
        kind: as given.
        encoder: as given.
        items: every stored record by id.
        by_customer: each customer's record ids in insertion order.
        refs: record id by ``(source, external_ref)``.
        log: one row per stored record, in insertion order (erased customers' rows blanked).
    """

    def __init__(self, kind: str, encoder: ColumnEncoder[R]) -> None:
        self.kind = kind
        self.encoder = encoder
        self.items: dict[uuid.UUID, R] = {}
        self.by_customer: dict[CrmNumber, list[uuid.UUID]] = {}
        self.refs: dict[tuple[str, str], uuid.UUID] = {}
        self.log = ColumnTable(encoder.columns)

    # -- writes ------------------------------------------------------------------------------

    def add(self, record: R, row: int, undo: list[Undo]) -> dict[str, int] | None:
        """Store ``record`` (its customer's aggregate row is ``row``) and log it.

        Returns:
            Its encoded log row, or ``None`` if its ``(source, external_ref)`` is already
            stored ("already recorded" wins over "id taken": retrying the very same record
            is the idempotent no-op, not a duplicate).

        Raises:
            DuplicateError: another record has the same id.
        """
        refs = self.refs
        ref = None if record.external_ref is None else (record.source or "", record.external_ref)
        if ref is not None and ref in refs:
            return None
        items = self.items
        record_id = record.id
        if record_id in items:
            raise DuplicateError(f"{self.kind} id", record_id)
        values = self.encoder.encode(record, row)
        items[record_id] = record
        by_customer = self.by_customer
        customer = record.customer
        ids = by_customer.setdefault(customer, [])
        ids.append(record_id)
        if ref is not None:
            refs[ref] = record_id
        log = self.log
        size = log.append(values)

        def forget() -> None:
            log.truncate(size)
            del items[record_id]
            ids.pop()
            if not ids:
                by_customer.pop(customer, None)
            if ref is not None:
                del refs[ref]

        undo.append(forget)
        return values

    def add_many(
        self,
        batch: Sequence[R],
        require_customer: Callable[[CrmNumber], None],
        row_of: Mapping[CrmNumber, int],
        undo: list[Undo],
    ) -> dict[str, Int64Array] | None:
        """Store and log a batch exactly as :meth:`add` would, one by one (the first of a
        repeated reference wins), with the log appended column-wise.

        Returns:
            The stored records' log rows, column-wise, or ``None`` if none was stored.

        Raises:
            NotFound, ErasedError: from ``require_customer``; nothing of the batch stays.
            DuplicateError: a record id is taken; nothing of the batch stays.
        """
        items, by_customer, refs = self.items, self.by_customer, self.refs
        stored: list[R] = []
        lists: list[list[uuid.UUID]] = []
        keys: list[tuple[str, str] | None] = []

        def forget() -> None:
            for record, ids, ref in zip(
                reversed(stored), reversed(lists), reversed(keys), strict=True
            ):
                del items[record.id]
                ids.pop()
                if not ids:
                    by_customer.pop(record.customer, None)
                if ref is not None:
                    del refs[ref]

        try:
            for record in batch:
                require_customer(record.customer)
                ref = (
                    None
                    if record.external_ref is None
                    else (record.source or "", record.external_ref)
                )
                if ref is not None and ref in refs:
                    continue
                if record.id in items:
                    raise DuplicateError(f"{self.kind} id", record.id)
                items[record.id] = record
                ids = by_customer.setdefault(record.customer, [])
                ids.append(record.id)
                if ref is not None:
                    refs[ref] = record.id
                stored.append(record)
                lists.append(ids)
                keys.append(ref)
        except BaseException:
            forget()
            raise
        if not stored:
            return None
        rows = np.fromiter((row_of[r.customer] for r in stored), np.int64, len(stored))
        values = self.encoder.encode_many(stored, rows)
        log = self.log
        size = log.size
        log.append_many(values)

        def forget_all() -> None:
            log.truncate(size)
            forget()

        undo.append(forget_all)
        return values

    def remove_customer(self, number: CrmNumber, row: int) -> Undo:
        """Drop an erased customer's records and blank their log rows; return the undo."""
        items, by_customer, refs = self.items, self.by_customer, self.refs
        ids = by_customer.pop(number, None)
        removed: list[R] = []
        for record_id in ids or ():
            record = items.pop(record_id)
            removed.append(record)
            if record.external_ref is not None:
                assert record.source is not None
                refs.pop((record.source, record.external_ref), None)
        log = self.log
        blanked = log.blank_where("row", row)

        def restore() -> None:
            log.restore(blanked)
            if ids is None:
                return
            # Put back the very list object that was removed: undo entries of earlier writes
            # in the same unit of work hold it and pop from it when replayed after this one.
            by_customer[number] = ids
            for record in removed:
                items[record.id] = record
                if record.external_ref is not None:
                    assert record.source is not None
                    refs[(record.source, record.external_ref)] = record.id

        return restore

    # -- reads -------------------------------------------------------------------------------

    def get(self, record_id: uuid.UUID) -> R:
        """The record with this id.

        Raises:
            NotFound: no such record.
        """
        try:
            return self.items[record_id]
        except KeyError:
            raise NotFound(self.kind, record_id) from None

    def by_ref(self, source: str, external_ref: str) -> R | None:
        """The record stored under ``(source, external_ref)``, if any."""
        record_id = self.refs.get((source, external_ref))
        return None if record_id is None else self.items[record_id]

    def for_customer(
        self, number: CrmNumber, limit: int | None, before: dt.datetime | None
    ) -> list[R]:
        """A customer's records, newest first (ties by id), optionally before an instant.

        Raises:
            ValidationError: a negative or non-integer ``limit``, a naive ``before``.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValidationError("limit", limit, "must be a non-negative integer")
        items = self.items
        records = [items[i] for i in self.by_customer.get(number, ())]
        if before is not None:
            cutoff = aware_utc("before", before)
            records = [record for record in records if record.occurred_at < cutoff]
        ordered = sorted(
            records, key=lambda record: (record.occurred_at, record.id.int), reverse=True
        )
        return ordered if limit is None else ordered[:limit]
