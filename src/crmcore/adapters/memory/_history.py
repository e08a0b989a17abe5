"""One append-only history of records (transactions or interactions), stored column-wise.

:class:`HistoryTable` is generic over the record type. It holds no Python object per record:
one row per record in :attr:`HistoryTable.log` (numpy columns: the customer's aggregate row,
the instant, the encoder's codes and amounts, the id's halves, the source's dictionary code,
and offset/length pairs into one UTF-8 :class:`~._text.ByteBuffer` for free text), two
:class:`~._hashing.HashIndex` (id -> row, ``(source, external_ref)`` -> row) and a
:class:`~._listing.CustomerListing` (rows by customer). Domain objects are built when read.
The rare extras the columns do not hold (a transaction's lines) sit in a dict by row.

Every write pushes its inverse on the undo log it is given (see
:class:`~crmcore.adapters.memory._context.TransactionContext`), so a rolled-back unit of work
leaves no trace. Folding records into the per-customer aggregates is the repositories' job.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from crmcore._epoch import to_us
from crmcore.adapters.memory._columns import ColumnTable, Int64Array
from crmcore.adapters.memory._encoders import Common, Encoded, uuid_of
from crmcore.adapters.memory._hashing import (
    MASK,
    HashIndex,
    fnv1a,
    fnv1a_many,
    id_hash,
    id_hash_many,
    ref_hash,
    ref_hash_many,
)
from crmcore.adapters.memory._listing import CustomerListing
from crmcore.adapters.memory._selection import select
from crmcore.adapters.memory._text import ByteBuffer, Dictionary, encode_texts, spans
from crmcore.domain import CrmNumber
from crmcore.domain._checks import aware_utc
from crmcore.errors import DuplicateError, NotFound, ValidationError

__all__ = ["ColumnEncoder", "HistoryTable", "Undo"]

Undo = Callable[[], None]
"""One inverse operation on an undo log."""

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
REF = "external_ref"


class ColumnEncoder(Protocol[R]):
    """How records of one type become columns of a history (see :mod:`._encoders`)."""

    @property
    def columns(self) -> tuple[str, ...]: ...
    @property
    def dtypes(self) -> Mapping[str, Any]: ...
    @property
    def texts(self) -> tuple[str, ...]: ...
    def encode(self, record: R, codes: Any) -> tuple[int, ...]: ...
    def text_values(self, record: R) -> tuple[str | None, ...]: ...
    def extras_of(self, record: R) -> object | None: ...
    def encode_many(self, records: Sequence[R], codes: Any) -> Encoded: ...
    def build(
        self, columns: dict[str, list[int]], common: Common, codes: Any, reporting: str
    ) -> list[R]: ...


class _Record(Protocol):
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def source(self) -> str | None: ...
    @property
    def external_ref(self) -> str | None: ...


def _text_columns(texts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{name}_{part}" for name in texts for part in ("start", "len"))


class HistoryTable(Generic[R]):
    """The stored records of one kind, column-wise (see the module docstring).

    Args:
        kind: the record kind named in errors ("transaction", "interaction").
        encoder: encodes records into columns and builds them back.
        index_capacity: initial slots of the hash indexes (tests force collisions).

    Attributes:
        log: one row per stored record, in insertion order (erased customers' rows blanked:
            ``row`` -1, the other columns 0). Analytics read ``row``, ``occurred_us`` and
            the encoder's code columns.
        text: the free text's UTF-8 bytes.
        ids: row by record id.
        refs: row by ``(source, external_ref)`` (the rows that have one).
        listing: rows by customer.
        extras: what the columns do not hold, by row.
    """

    def __init__(self, kind: str, encoder: ColumnEncoder[R], index_capacity: int = 1024) -> None:
        self.kind = kind
        self.encoder = encoder
        self.texts = (REF, *encoder.texts)
        text_columns = _text_columns(self.texts)
        names = ("row", "occurred_us", *encoder.columns, "id_high", "id_low", "source")
        dtypes = {"id_high": np.uint64, "id_low": np.uint64, "source": np.int32}
        dtypes |= {name: np.int32 for name in text_columns if name.endswith("_len")}
        self.log = ColumnTable((*names, *text_columns), dtypes=dtypes | dict(encoder.dtypes))
        self.text = ByteBuffer()
        self.dictionaries: dict[str, Dictionary] = {"source": Dictionary()}
        self.ids = HashIndex(self._id_hashes, capacity=index_capacity)
        self.refs = HashIndex(self._ref_hashes, keep_hashes=True, capacity=index_capacity)
        self.listing = CustomerListing()
        self.extras: dict[int, object] = {}

    def dictionary(self, name: str) -> Dictionary:
        """The history's dictionary of codes ``name`` (made when first asked for)."""
        found = self.dictionaries.get(name)
        if found is None:
            found = self.dictionaries[name] = Dictionary()
        return found

    # -- keys ----------------------------------------------------------------------------------

    def _id_hashes(self, rows: Int64Array) -> npt.NDArray[np.uint64]:
        cols = self.log.columns
        return id_hash_many(cols["id_high"][rows], cols["id_low"][rows])

    def _ref_hashes(self, rows: Int64Array) -> npt.NDArray[np.uint64]:
        cols = self.log.columns
        starts = cols[f"{REF}_start"][rows].astype(np.int64)
        lengths = cols[f"{REF}_len"][rows].astype(np.int64)
        texts = fnv1a_many(self.text.data, starts, lengths)
        return ref_hash_many(cols["source"][rows].astype(np.int64), texts)

    def ref_bytes(self, row: int) -> bytes:
        """The UTF-8 external reference stored at ``row``."""
        cols = self.log.columns
        start, length = int(cols[f"{REF}_start"][row]), int(cols[f"{REF}_len"][row])
        return self.text.data[start : start + length].tobytes()

    def _find_ref(self, source: str | None, ref: bytes) -> tuple[int, int]:
        """(row or -1, hash or -1) of a stored ``(source, external_ref)``."""
        code = self.dictionaries["source"].codes.get(source)
        if code is None:
            return -1, -1
        h = ref_hash(code, fnv1a(ref))
        sources = self.log.columns["source"]
        row = self.refs.find_one(h, lambda r: int(sources[r]) == code and self.ref_bytes(r) == ref)
        return row, h

    def _find_id(self, value: int) -> tuple[int, int]:
        high, low = value >> 64, value & MASK
        h = id_hash(high, low)
        cols = self.log.columns
        his, los = cols["id_high"], cols["id_low"]
        row = self.ids.find_one(h, lambda r: his.item(r) == high and los.item(r) == low)
        return row, h

    # -- writes --------------------------------------------------------------------------------

    def add(self, record: R, row: int, undo: list[Undo]) -> tuple[int, ...] | None:
        """Store ``record`` (its customer's aggregate row is ``row``).

        Returns:
            Its ``occurred_us`` and the encoder's numeric values in the encoder's column
            order, or ``None`` if its ``(source, external_ref)`` is already stored ("already
            recorded" wins over "id taken": retrying the very same record is the idempotent
            no-op, not a duplicate).

        Raises:
            DuplicateError: another record has the same id.
        """
        rec: _Record = record  # type: ignore[assignment]
        ref_text = rec.external_ref
        ref = None
        if ref_text is not None:
            ref = ref_text.encode()
            if self._find_ref(rec.source, ref)[0] >= 0:
                return None
        record_id = rec.id.int
        high, low = record_id >> 64, record_id & MASK
        id_h = id_hash(high, low)
        cols = self.log.columns
        his, los = cols["id_high"], cols["id_low"]
        if self.ids.find_one(id_h, lambda r: his.item(r) == high and los.item(r) == low) >= 0:
            raise DuplicateError(f"{self.kind} id", rec.id)
        encoder = self.encoder
        values = encoder.encode(record, self)
        text = self.text
        used = text.size
        source = self.dictionaries["source"].code(rec.source)
        # Text columns as (start, length) pairs, in the order of the log's text columns.
        spans_of: list[int] = []
        if ref is None:
            spans_of += (used, -1)
        else:
            spans_of += (text.append(ref), len(ref))
        for value in encoder.text_values(record):
            if value is None:
                spans_of += (text.size, -1)
            else:
                data = value.encode()
                spans_of += (text.append(data), len(data))
        log = self.log
        at = log.append_row((row, *values, high, low, source, *spans_of))
        self.ids.insert_one(id_h, at)
        ref_h = -1
        if ref is not None:
            ref_h = ref_hash(source, fnv1a(ref))
            self.refs.insert_one(ref_h, at)
        extra = encoder.extras_of(record)
        extras = self.extras
        if extra is not None:
            extras[at] = extra

        def forget() -> None:
            log.truncate(at)
            text.truncate(used)
            self.ids.remove_one(id_h, at)
            if ref_h >= 0:
                self.refs.remove_one(ref_h, at)
            extras.pop(at, None)
            self.listing.forget_from(at)

        undo.append(forget)
        return values

    def add_many(
        self,
        batch: Sequence[R],
        customers: Sequence[CrmNumber],
        require_customer: Callable[[CrmNumber], None],
        row_of: Mapping[CrmNumber, int],
        undo: list[Undo],
    ) -> dict[str, Int64Array] | None:
        """Store a batch of records exactly as :meth:`add` would, one by one (the first of a
        repeated reference wins), column-wise.

        Returns:
            The stored records' numeric values, column-wise, or ``None`` if none was stored.

        Raises:
            NotFound, ErasedError: from ``require_customer``; nothing of the batch stays.
            DuplicateError: a record id is taken; nothing of the batch stays.
        """
        bad = -1
        for i, number in enumerate(customers):
            try:
                require_customer(number)
            except Exception:  # raised again below, unless an earlier id clash comes first
                bad = i
                break
        encoded = self.encoder.encode_many(batch, self)
        kept, duplicate = select(self, encoded, len(batch) if bad < 0 else bad)
        self._raise_duplicate(encoded, duplicate)
        if bad >= 0:
            require_customer(customers[bad])
        rows = np.fromiter((row_of[customers[i]] for i in kept.tolist()), np.int64, len(kept))
        return self.append(encoded, kept, rows, undo)

    def _raise_duplicate(self, encoded: Encoded, position: int) -> None:
        if position >= 0:
            high, low = int(encoded.id_high[position]), int(encoded.id_low[position])
            raise DuplicateError(f"{self.kind} id", uuid.UUID(int=(high << 64) | low))

    def add_encoded(
        self, encoded: Encoded, rows: Int64Array, undo: list[Undo]
    ) -> dict[str, Int64Array] | None:
        """Store encoded rows (customers' aggregate rows ``rows``, customers checked) as
        :meth:`add_many` would."""
        kept, duplicate = select(self, encoded, len(rows))
        self._raise_duplicate(encoded, duplicate)
        return self.append(encoded, kept, rows[kept], undo)

    def append(
        self, encoded: Encoded, kept: Int64Array, rows: Int64Array, undo: list[Undo]
    ) -> dict[str, Int64Array] | None:
        """Append the ``kept`` positions of ``encoded`` (checked) for customers ``rows``."""
        count = len(kept)
        if count == 0:
            return None
        log, text = self.log, self.text
        size, used = log.size, text.size
        values: dict[str, npt.NDArray[Any]] = {
            name: column[kept] for name, column in encoded.numbers.items()
        }
        values["row"] = rows
        values["id_high"] = encoded.id_high[kept]
        values["id_low"] = encoded.id_low[kept]
        source = np.asarray(encoded.source, dtype=object)[kept]
        values["source"] = self.dictionaries["source"].code_many(source)
        refs = np.asarray(encoded.external_ref, dtype=object)[kept]
        texts = {REF: refs} | {
            name: np.asarray(encoded.texts[name], dtype=object)[kept] for name in self.texts[1:]
        }
        for name, column in texts.items():
            data, lengths = encode_texts(column)
            offsets = np.cumsum(np.maximum(lengths, 0)) - np.maximum(lengths, 0)
            values[f"{name}_start"] = offsets + text.append(data)
            values[f"{name}_len"] = lengths
        at = np.arange(size, size + count, dtype=np.int64)
        log.append_many(values)
        id_h = id_hash_many(values["id_high"], values["id_low"])
        self.ids.insert(id_h, at)
        with_ref = (values[f"{REF}_len"] >= 0).nonzero()[0]
        ref_h = self._ref_hashes(at[with_ref])
        self.refs.insert(ref_h, at[with_ref])
        extras = self.extras
        added = {
            int(at[i]): encoded.extras[p]
            for i, p in enumerate(kept.tolist())
            if p in encoded.extras
        }
        extras.update(added)

        def forget() -> None:
            log.truncate(size)
            text.truncate(used)
            self.ids.remove(id_h, at)
            self.refs.remove(ref_h, at[with_ref])
            for row in added:
                del extras[row]
            self.listing.forget_from(size)

        undo.append(forget)
        return values

    def remove_customer(self, number: CrmNumber, row: int) -> Undo:
        """Erase a customer's records: their keys leave the indexes, their text bytes are
        overwritten, their log rows blanked. Returns the undo."""
        log, text = self.log, self.text
        cols = log.columns
        hits = (log.view("row") == row).nonzero()[0]
        id_h = self._id_hashes(hits)
        with_ref = hits[cols[f"{REF}_len"][hits] >= 0]
        ref_h = self._ref_hashes(with_ref)
        self.ids.remove(id_h, hits)
        self.refs.remove(ref_h, with_ref)
        positions = np.concatenate(
            [
                spans(
                    cols[f"{name}_start"][hits].astype(np.int64),
                    np.maximum(cols[f"{name}_len"][hits], 0).astype(np.int64),
                )
                for name in self.texts
            ]
        )
        saved_bytes = text.wipe(positions)
        extras = self.extras
        removed = {r: extras.pop(r) for r in hits.tolist() if r in extras}
        blanked = log.blank_where("row", row)

        def restore() -> None:
            log.restore(blanked)
            text.unwipe(positions, saved_bytes)
            extras.update(removed)
            self.ids.insert(id_h, hits)
            self.refs.insert(ref_h, with_ref)

        return restore

    def blank_texts(self, rows: Int64Array, names: Sequence[str], undo: list[Undo]) -> int:
        """Set the free texts ``names`` of log rows ``rows`` to ``None`` (their bytes zeroed,
        so nothing of them stays in the buffer); return how many rows had one of them."""
        log, text = self.log, self.text
        had = np.zeros(len(rows), dtype=bool)
        saved: list[tuple[str, Int64Array, Int64Array, Any]] = []
        for name in names:
            lengths = log.columns[f"{name}_len"][rows].copy()
            starts = log.columns[f"{name}_start"][rows].astype(np.int64)
            positions = spans(starts, np.maximum(lengths, 0).astype(np.int64))
            saved.append((name, lengths, positions, text.wipe(positions)))
            log.columns[f"{name}_len"][rows] = -1
            had |= lengths >= 0

        def restore() -> None:
            for name, lengths, positions, data in reversed(saved):
                log.columns[f"{name}_len"][rows] = lengths
                text.unwipe(positions, data)

        undo.append(restore)
        return int(np.count_nonzero(had))

    def rows_of(self, row: int) -> Int64Array:
        """The log rows of the customer at aggregate row ``row``."""
        owner = self.log.view("row")
        found = self.listing.rows_of(owner, self.log.size, row)
        mine: Int64Array = found[owner[found] == row]
        return mine

    def first_ids(
        self, mask: npt.NDArray[np.bool_], after: uuid.UUID | None, limit: int
    ) -> Int64Array:
        """The log rows selected by ``mask`` with the ``limit`` smallest ids above ``after``,
        ascending by id (keyset paging)."""
        found = np.flatnonzero(mask)
        high = self.log.view("id_high")[found].astype(np.uint64)
        low = self.log.view("id_low")[found].astype(np.uint64)
        if after is not None:
            a_high, a_low = np.uint64(after.int >> 64), np.uint64(after.int & MASK)
            keep = (high > a_high) | ((high == a_high) & (low > a_low))
            found, high, low = found[keep], high[keep], low[keep]
        chosen: Int64Array = found[np.lexsort((low, high))[:limit]]
        return chosen

    def row_of_id(self, record_id: uuid.UUID) -> int:
        """The log row of the record with this id (-1: none)."""
        return self._find_id(record_id.int)[0]

    def id_of(self, row: int) -> uuid.UUID:
        """The id of log row ``row``."""
        cols = self.log.columns
        return uuid_of((int(cols["id_high"][row]) << 64) | int(cols["id_low"][row]))

    # -- reads ---------------------------------------------------------------------------------

    def read(self, rows: Int64Array, numbers: Sequence[CrmNumber], reporting: str) -> list[R]:
        """The records of log rows ``rows`` (``numbers``: customer number by aggregate row)."""
        cols = self.log.columns
        high = cols["id_high"][rows].tolist()
        low = cols["id_low"][rows].tolist()
        sources = self.dictionaries["source"].names
        text = self.text
        common = Common(
            customer=[numbers[r] for r in cols["row"][rows].tolist()],
            occurred_us=cols["occurred_us"][rows].tolist(),
            source=[sources[c] for c in cols["source"][rows].tolist()],
            external_ref=[],
            id=[uuid_of((h << 64) | lo) for h, lo in zip(high, low, strict=True)],
            texts={
                name: text.texts(
                    cols[f"{name}_start"][rows].astype(np.int64),
                    cols[f"{name}_len"][rows].astype(np.int64),
                )
                for name in self.texts
            },
            extras=[self.extras.get(r) for r in rows.tolist()],
        )
        common.external_ref = common.texts[REF]
        columns = {name: cols[name][rows].tolist() for name in self.encoder.columns}
        return self.encoder.build(columns, common, self, reporting)

    def get(self, record_id: uuid.UUID, numbers: Sequence[CrmNumber], reporting: str) -> R:
        """The record with this id.

        Raises:
            NotFound: no such record.
        """
        row = self._find_id(record_id.int)[0] if isinstance(record_id, uuid.UUID) else -1
        if row < 0:
            raise NotFound(self.kind, record_id)
        return self.read(np.array([row], dtype=np.int64), numbers, reporting)[0]

    def by_ref(
        self, source: str, external_ref: str, numbers: Sequence[CrmNumber], reporting: str
    ) -> R | None:
        """The record stored under ``(source, external_ref)``, if any."""
        key: tuple[object, object] = (source, external_ref)
        if not isinstance(key[0], str) or not isinstance(key[1], str):
            return None
        row = self._find_ref(source, external_ref.encode())[0]
        if row < 0:
            return None
        return self.read(np.array([row], dtype=np.int64), numbers, reporting)[0]

    def for_customer(
        self,
        row: int | None,
        limit: int | None,
        before: dt.datetime | None,
        numbers: Sequence[CrmNumber],
        reporting: str,
    ) -> list[R]:
        """A customer's records (aggregate row ``row``, ``None`` if unknown), newest first
        (ties by id), optionally before an instant.

        Raises:
            ValidationError: a negative or non-integer ``limit``, a naive ``before``.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValidationError("limit", limit, "must be a non-negative integer")
        cutoff = None if before is None else to_us(aware_utc("before", before))
        if row is None or row < 0:
            return []
        log = self.log
        owner = log.view("row")
        found = self.listing.rows_of(owner, log.size, row)
        found = found[owner[found] == row]
        cols = log.columns
        when = cols["occurred_us"][found]
        if cutoff is not None:
            found, when = found[when < cutoff], when[when < cutoff]
        order = np.lexsort((cols["id_low"][found], cols["id_high"][found], when))[::-1]
        if limit is not None:
            order = order[:limit]
        return self.read(found[order], numbers, reporting)
