"""The Parquet tables of a dump: each part of a store as an Arrow table, and back.

The file format is the dump's own, independent of any store's layout: enumerations are their
text values (dictionary-encoded), instants ``timestamp[us, UTC]``, ids 16 big-endian bytes,
money integer minor units beside its currency. A customer is one JSON document (crmcore's
exact serialization, :mod:`crmcore.serialization`) beside its number, because its nested
parts (addresses, consents, stage history, typed attributes) have no flat shape worth
fixing in a format.

pyarrow is imported when this module is: callers reach it through :func:`require_pyarrow`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import numpy as np
import pyarrow as pa

from crmcore._epoch import NONE_MIN
from crmcore.analytics.columns import (
    CHANNEL_CODES,
    INTERACTION_COLUMNS,
    INTERACTION_KIND_CODES,
    SALES_CHANNEL_CODES,
    TRANSACTION_COLUMNS,
    TRANSACTION_KIND_CODES,
)
from crmcore.domain import (
    AuditEntry,
    CrmNumber,
    Customer,
    Money,
    Segment,
    SegmentMembership,
    TransactionLine,
)
from crmcore.ports.batches import DIRECTION_CODES, InteractionBatch, TransactionBatch
from crmcore.ports.transfer import AggregateColumns, TransactionChunk
from crmcore.serialization import make_converter

__all__ = [
    "SCHEMAS",
    "aggregates_from",
    "aggregates_table",
    "audit_from",
    "audit_table",
    "customers_from",
    "customers_table",
    "interactions_from",
    "interactions_table",
    "runs_from",
    "runs_table",
    "segments_from",
    "segments_table",
    "tombstones_from",
    "tombstones_table",
    "transactions_from",
    "transactions_table",
]

_CONVERTER = make_converter()
_TIME = pa.timestamp("us", tz="UTC")
_ENUM = pa.dictionary(pa.int8(), pa.string())
_ID = pa.binary(16)


def _names(codes: Mapping[Any, int]) -> list[str]:
    """Enumeration values by code (codes are small and dense)."""
    out = [""] * (max(codes.values()) + 1)
    for member, code in codes.items():
        out[code] = member.value
    return out


_TX_KINDS: Final = _names(TRANSACTION_KIND_CODES)
_SALES: Final = _names(SALES_CHANNEL_CODES)
_IX_KINDS: Final = _names(INTERACTION_KIND_CODES)
_CHANNELS: Final = _names(CHANNEL_CODES)
_DIRECTIONS: Final = _names(DIRECTION_CODES)

_AGGREGATES: Final = (*TRANSACTION_COLUMNS, *INTERACTION_COLUMNS)

SCHEMAS: Final = {
    "customers.parquet": pa.schema(
        [("number", pa.string()), ("version", pa.int64()), ("document", pa.string())]
    ),
    "tombstones.parquet": pa.schema([("number", pa.string())]),
    "transactions.parquet": pa.schema(
        [
            ("id", _ID),
            ("customer", pa.string()),
            ("occurred_at", _TIME),
            ("kind", _ENUM),
            ("channel", _ENUM),
            ("currency", pa.string()),
            ("total_minor", pa.int64()),
            ("reporting_minor", pa.int64()),
            ("source", pa.string()),
            ("external_ref", pa.string()),
            ("lines", pa.string()),
        ]
    ),
    "interactions.parquet": pa.schema(
        [
            ("id", _ID),
            ("customer", pa.string()),
            ("occurred_at", _TIME),
            ("channel", _ENUM),
            ("direction", _ENUM),
            ("kind", _ENUM),
            ("subject", pa.string()),
            ("notes", pa.string()),
            ("outcome", pa.string()),
            ("agent", pa.string()),
            ("follow_up_due", _TIME),
            ("source", pa.string()),
            ("external_ref", pa.string()),
        ]
    ),
    "aggregates.parquet": pa.schema(
        [("customer", pa.string())] + [(name, pa.int64()) for name in _AGGREGATES]
    ),
    "segments.parquet": pa.schema(
        [("name", pa.string()), ("rule", pa.string()), ("description", pa.string())]
    ),
    "segment_runs.parquet": pa.schema(
        [("segment", pa.string()), ("as_of", _TIME), ("members", pa.list_(pa.string()))]
    ),
    "audit_log.parquet": pa.schema(
        [
            ("id", _ID),
            ("at", _TIME),
            ("actor", pa.string()),
            ("action", pa.string()),
            ("entity", pa.string()),
            ("customer", pa.string()),
            ("fields", pa.list_(pa.string())),
            ("outcome", pa.string()),
            ("rows", pa.int64()),
        ]
    ),
}
"""The Arrow schema of each file."""


# -- helpers ---------------------------------------------------------------------------------


def _enum(codes: Any, names: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(codes, dtype=np.int8)), pa.array(names, pa.string())
    )


def _codes(column: pa.ChunkedArray | pa.Array, names: list[str], field: str) -> Any:
    """Codes of an enumeration column (dictionary-encoded or plain text)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    lookup = {name: code for code, name in enumerate(names)}
    dictionary = array.dictionary.to_pylist()
    unknown = [v for v in dictionary if v not in lookup]
    if unknown or array.null_count:
        raise ValueError(f"{field}: unknown values {unknown[:3]!r} or nulls")
    mapping = np.array([lookup[v] for v in dictionary] or [0], dtype=np.int8)
    return mapping[array.indices.to_numpy(zero_copy_only=False).astype(np.int64)]


def _ids(high: Any, low: Any) -> pa.Array:
    pairs = np.empty((len(high), 2), dtype=">u8")
    pairs[:, 0] = high
    pairs[:, 1] = low
    return pa.Array.from_buffers(_ID, len(high), [None, pa.py_buffer(pairs.tobytes())])


def _id_halves(column: pa.ChunkedArray | pa.Array) -> tuple[Any, Any]:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        raise ValueError("id: nulls")
    data = np.frombuffer(array.buffers()[1], dtype=">u8")
    pairs = data[2 * array.offset : 2 * (array.offset + len(array))].reshape(-1, 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)


def _instants(values: Any, missing: int | None = None) -> pa.Array:
    us = np.asarray(values, dtype=np.int64)
    mask = None if missing is None else us == missing
    return pa.array(us, type=pa.int64(), mask=mask).cast(_TIME)


def _us(column: Any, missing: int | None = None) -> Any:
    array = column.cast(pa.int64())
    if missing is None:
        if array.null_count:
            raise ValueError("instant: nulls")
        return array.to_numpy(zero_copy_only=False).astype(np.int64)
    return np.asarray(array.fill_null(missing).to_numpy(zero_copy_only=False), dtype=np.int64)


def _texts(column: Any) -> Any:
    values = column.to_pylist()
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _required(column: Any, field: str) -> Any:
    if column.null_count:
        raise ValueError(f"{field}: nulls")
    return _texts(column)


# -- tables ----------------------------------------------------------------------------------


def customers_table(customers: Sequence[Customer]) -> pa.Table:
    """Customers as rows of ``customers.parquet``."""
    return pa.table(
        {
            "number": [c.number.value for c in customers],
            "version": pa.array([c.version for c in customers], pa.int64()),
            "document": [json.dumps(_CONVERTER.unstructure(c), sort_keys=True) for c in customers],
        },
        schema=SCHEMAS["customers.parquet"],
    )


def customers_from(table: pa.Table) -> list[Customer]:
    """The customers of rows of ``customers.parquet``."""
    out = []
    for number, version, document in zip(
        table["number"].to_pylist(),
        table["version"].to_pylist(),
        table["document"].to_pylist(),
        strict=True,
    ):
        customer = _CONVERTER.structure(json.loads(document), Customer)
        if customer.number.value != number or customer.version != version:
            raise ValueError(f"customer {number}: the document does not match its row")
        out.append(customer)
    return out


def tombstones_table(numbers: Sequence[CrmNumber]) -> pa.Table:
    """Retired numbers as rows of ``tombstones.parquet``."""
    return pa.table({"number": [n.value for n in numbers]}, schema=SCHEMAS["tombstones.parquet"])


def tombstones_from(table: pa.Table) -> list[CrmNumber]:
    """The retired numbers of rows of ``tombstones.parquet``."""
    return [CrmNumber(v) for v in _required(table["number"], "number")]


def _lines_json(lines: tuple[TransactionLine, ...]) -> str:
    return json.dumps(
        [[li.sku, str(li.quantity), li.unit_price.minor_units, li.description] for li in lines]
    )


def transactions_table(chunk: TransactionChunk) -> pa.Table:
    """A chunk of transactions as rows of ``transactions.parquet``."""
    b = chunk.batch
    lines: list[str | None] = [None] * len(b)
    for row, items in chunk.lines.items():
        lines[row] = _lines_json(items)
    return pa.table(
        {
            "id": _ids(b.id_high, b.id_low),
            "customer": pa.array(b.customer, pa.string()),
            "occurred_at": _instants(b.occurred_us),
            "kind": _enum(b.kind, _TX_KINDS),
            "channel": _enum(b.channel, _SALES),
            "currency": pa.array(b.currency, pa.string()),
            "total_minor": pa.array(b.total_minor, pa.int64()),
            "reporting_minor": pa.array(b.reporting_minor, pa.int64()),
            "source": pa.array(b.source, pa.string()),
            "external_ref": pa.array(b.external_ref, pa.string()),
            "lines": pa.array(lines, pa.string()),
        },
        schema=SCHEMAS["transactions.parquet"],
    )


def transactions_from(table: pa.Table) -> TransactionChunk:
    """The chunk of transactions of rows of ``transactions.parquet``."""
    high, low = _id_halves(table["id"])
    currency = _required(table["currency"], "currency")
    lines: dict[int, tuple[TransactionLine, ...]] = {}
    for row, text in enumerate(table["lines"].to_pylist()):
        if text is not None:
            lines[row] = tuple(
                TransactionLine(
                    sku, Decimal(qty), Money.from_minor_units(unit, currency[row]), description
                )
                for sku, qty, unit, description in json.loads(text)
            )
    batch = TransactionBatch(
        customer=_required(table["customer"], "customer"),
        occurred_us=_us(table["occurred_at"]),
        kind=_codes(table["kind"], _TX_KINDS, "kind"),
        channel=_codes(table["channel"], _SALES, "channel"),
        currency=currency,
        total_minor=_us(table["total_minor"]),
        reporting_minor=_us(table["reporting_minor"]),
        source=_texts(table["source"]),
        external_ref=_texts(table["external_ref"]),
        id_high=high,
        id_low=low,
    )
    return TransactionChunk(batch=batch, lines=lines)


def interactions_table(batch: InteractionBatch) -> pa.Table:
    """A batch of interactions as rows of ``interactions.parquet``."""
    b = batch
    return pa.table(
        {
            "id": _ids(b.id_high, b.id_low),
            "customer": pa.array(b.customer, pa.string()),
            "occurred_at": _instants(b.occurred_us),
            "channel": _enum(b.channel, _CHANNELS),
            "direction": _enum(b.direction, _DIRECTIONS),
            "kind": _enum(b.kind, _IX_KINDS),
            "subject": pa.array(b.subject, pa.string()),
            "notes": pa.array(b.notes, pa.string()),
            "outcome": pa.array(b.outcome, pa.string()),
            "agent": pa.array(b.agent, pa.string()),
            "follow_up_due": _instants(b.follow_up_us, NONE_MIN),
            "source": pa.array(b.source, pa.string()),
            "external_ref": pa.array(b.external_ref, pa.string()),
        },
        schema=SCHEMAS["interactions.parquet"],
    )


def interactions_from(table: pa.Table) -> InteractionBatch:
    """The batch of interactions of rows of ``interactions.parquet``."""
    high, low = _id_halves(table["id"])
    return InteractionBatch(
        customer=_required(table["customer"], "customer"),
        occurred_us=_us(table["occurred_at"]),
        channel=_codes(table["channel"], _CHANNELS, "channel"),
        direction=_codes(table["direction"], _DIRECTIONS, "direction"),
        kind=_codes(table["kind"], _IX_KINDS, "kind"),
        subject=_texts(table["subject"]),
        notes=_texts(table["notes"]),
        outcome=_texts(table["outcome"]),
        agent=_texts(table["agent"]),
        follow_up_us=_us(table["follow_up_due"], NONE_MIN),
        source=_texts(table["source"]),
        external_ref=_texts(table["external_ref"]),
        id_high=high,
        id_low=low,
    )


def aggregates_table(columns: AggregateColumns) -> pa.Table:
    """Every live customer's aggregates as rows of ``aggregates.parquet``."""
    data: dict[str, Any] = {"customer": pa.array(list(columns.numbers), pa.string())}
    data |= {name: pa.array(columns.columns[name], pa.int64()) for name in _AGGREGATES}
    return pa.table(data, schema=SCHEMAS["aggregates.parquet"])


def aggregates_from(tables: Iterator[pa.Table]) -> AggregateColumns:
    """The aggregates of all rows of ``aggregates.parquet``."""
    numbers: list[str] = []
    parts: dict[str, list[Any]] = {name: [] for name in _AGGREGATES}
    for table in tables:
        numbers.extend(_required(table["customer"], "customer").tolist())
        for name in _AGGREGATES:
            parts[name].append(_us(table[name]))
    return AggregateColumns(
        numbers=numbers,
        columns={
            name: np.concatenate(values) if values else np.zeros(0, np.int64)
            for name, values in parts.items()
        },
    )


def segments_table(segments: Sequence[Segment]) -> pa.Table:
    """Segment definitions as rows of ``segments.parquet``."""
    return pa.table(
        {
            "name": [s.name for s in segments],
            "rule": [s.rule for s in segments],
            "description": [s.description for s in segments],
        },
        schema=SCHEMAS["segments.parquet"],
    )


def segments_from(table: pa.Table) -> list[Segment]:
    """The segment definitions of rows of ``segments.parquet``."""
    return [
        Segment(name=n, rule=r, description=d)
        for n, r, d in zip(
            _required(table["name"], "name"),
            _required(table["rule"], "rule"),
            _required(table["description"], "description"),
            strict=True,
        )
    ]


def runs_table(runs: Sequence[SegmentMembership]) -> pa.Table:
    """Segment runs as rows of ``segment_runs.parquet`` (members sorted)."""
    return pa.table(
        {
            "segment": [r.segment for r in runs],
            "as_of": pa.array([r.as_of for r in runs], _TIME),
            "members": [sorted(n.value for n in r.members) for r in runs],
        },
        schema=SCHEMAS["segment_runs.parquet"],
    )


def runs_from(table: pa.Table) -> list[SegmentMembership]:
    """The segment runs of rows of ``segment_runs.parquet``."""
    if table["as_of"].null_count or table["members"].null_count:
        raise ValueError("as_of, members: nulls")
    return [
        SegmentMembership(
            segment=segment, as_of=as_of, members=frozenset(CrmNumber(n) for n in members)
        )
        for segment, as_of, members in zip(
            _required(table["segment"], "segment"),
            table["as_of"].to_pylist(),
            table["members"].to_pylist(),
            strict=True,
        )
    ]


def audit_table(entries: Sequence[AuditEntry]) -> pa.Table:
    """Audit entries as rows of ``audit_log.parquet``, in the order given."""
    return pa.table(
        {
            "id": pa.array([e.id.bytes for e in entries], _ID),
            "at": pa.array([e.at for e in entries], _TIME),
            "actor": [e.actor for e in entries],
            "action": [e.action.value for e in entries],
            "entity": [e.entity.value for e in entries],
            "customer": [None if e.customer is None else e.customer.value for e in entries],
            "fields": [list(e.fields) for e in entries],
            "outcome": [e.outcome.value for e in entries],
            "rows": pa.array([e.rows for e in entries], pa.int64()),
        },
        schema=SCHEMAS["audit_log.parquet"],
    )


def audit_from(table: pa.Table) -> list[AuditEntry]:
    """The audit entries of rows of ``audit_log.parquet`` (each checked as it is built)."""
    if table["at"].null_count or table["fields"].null_count or table["id"].null_count:
        raise ValueError("id, at, fields: nulls")
    return [
        AuditEntry(
            id=uuid.UUID(bytes=key),
            at=at,
            actor=actor,
            action=action,
            entity=entity,
            customer=None if customer is None else CrmNumber(customer),
            fields=tuple(fields),
            outcome=outcome,
            rows=rows,
        )
        for key, at, actor, action, entity, customer, fields, outcome, rows in zip(
            table["id"].to_pylist(),
            table["at"].to_pylist(),
            _required(table["actor"], "actor"),
            _required(table["action"], "action"),
            _required(table["entity"], "entity"),
            table["customer"].to_pylist(),
            table["fields"].to_pylist(),
            _required(table["outcome"], "outcome"),
            table["rows"].to_pylist(),
            strict=True,
        )
    ]
