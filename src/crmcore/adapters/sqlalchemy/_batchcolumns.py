"""A validated history batch as the SQL tables store it, column by column (Arrow).

The row path maps one domain object to one row dict (``_mapping``); a
:class:`~crmcore.ports.batches.TransactionBatch` is already column-wise, so here each
column becomes its stored form in one vectorised step: enumeration codes become their text
through a lookup array, instants become naive UTC ``timestamp[us]``, the two 64-bit id
halves become the 32-digit lower-case hex every dialect stores (PostgreSQL's ``uuid``
accepts it too). No Python object per row is built here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

import numpy as np

from crmcore._epoch import NONE_MIN
from crmcore.adapters.sqlalchemy._mapping import _NO_LINES
from crmcore.adapters.sqlalchemy._sealing import INTERACTION_FIELDS, RowSealer
from crmcore.analytics.columns import (
    CHANNEL_CODES,
    INTERACTION_KIND_CODES,
    SALES_CHANNEL_CODES,
    TRANSACTION_KIND_CODES,
)
from crmcore.ports.batches import DIRECTION_CODES, InteractionBatch, TransactionBatch

__all__ = ["hex_ids", "interaction_columns", "transaction_columns"]


def hex_ids(high: Any, low: Any) -> Any:
    """The ids of (high, low) 64-bit halves as an Arrow string array of 32 hex digits."""
    import pyarrow as pa

    words = np.empty((len(high), 2), dtype=">u8")
    words[:, 0] = high
    words[:, 1] = low
    digits = np.frombuffer(words.tobytes().hex().encode("ascii"), dtype="S32")
    return pa.array(digits, pa.binary(32)).cast(pa.string())


def _labels(codes: Mapping[Any, int], values: Any) -> Any:
    """Each code of ``values`` as its enumeration's stored text."""
    import pyarrow as pa

    names: list[str | None] = [None] * (max(codes.values()) + 1)
    for member, code in codes.items():
        names[code] = member.value if isinstance(member, Enum) else str(member)
    return pa.array(names, pa.string()).take(pa.array(np.asarray(values, dtype=np.int32)))


def _text(values: Any) -> Any:
    import pyarrow as pa

    return pa.array(values, pa.string(), from_pandas=False)


def _instants(us: Any, missing: Any = None) -> Any:
    import pyarrow as pa

    return pa.array(np.asarray(us, dtype=np.int64), pa.timestamp("us"), mask=missing)


def _has_refs(batch: TransactionBatch | InteractionBatch) -> bool:
    return bool(np.any(batch.external_ref != None))  # noqa: E711 - element-wise


def transaction_columns(batch: TransactionBatch) -> tuple[Any, bool]:
    """The batch as the transactions table's columns, and whether any row has a reference."""
    import pyarrow as pa

    table = pa.table(
        {
            "id": hex_ids(batch.id_high, batch.id_low),
            "customer": _text(batch.customer),
            "occurred_at": _instants(batch.occurred_us),
            "occurred_us": pa.array(batch.occurred_us, pa.int64()),
            "kind": _labels(TRANSACTION_KIND_CODES, batch.kind),
            "amount_minor": pa.array(batch.total_minor, pa.int64()),
            "currency": _text(batch.currency),
            "reporting_minor": pa.array(batch.reporting_minor, pa.int64()),
            "channel": _labels(SALES_CHANNEL_CODES, batch.channel),
            "source": _text(batch.source),
            "external_ref": _text(batch.external_ref),
            "lines": pa.repeat(pa.scalar(_NO_LINES, pa.string()), len(batch)),
        }
    )
    return table, _has_refs(batch)


def interaction_columns(
    batch: InteractionBatch, sealer: RowSealer | None = None
) -> tuple[Any, bool]:
    """The batch as the interactions table's columns, and whether any row has a reference.

    With ``sealer`` (an encrypted store) subject, notes and outcome are sealed row by row
    into ``sealed`` (their own columns left NULL) and ``key_id`` names the active key.
    """
    import pyarrow as pa

    follow = np.asarray(batch.follow_up_us, dtype=np.int64)
    columns: dict[str, Any] = {
        "subject": _text(batch.subject),
        "notes": _text(batch.notes),
        "outcome": _text(batch.outcome),
    }
    ids = hex_ids(batch.id_high, batch.id_low)
    sealed: dict[str, Any] = {}
    if sealer is not None:
        values = zip(
            batch.subject.tolist(), batch.notes.tolist(), batch.outcome.tolist(), strict=True
        )
        sealed = {
            "sealed": _text(
                [
                    sealer.seal_interaction_fields(number, rid, fields)
                    for number, rid, fields in zip(
                        batch.customer.tolist(), ids.to_pylist(), values, strict=True
                    )
                ]
            ),
            "key_id": pa.repeat(pa.scalar(sealer.cipher.active_key_id, pa.string()), len(batch)),
        }
        columns = {f: pa.nulls(len(batch), pa.string()) for f in INTERACTION_FIELDS}
    table = pa.table(
        {
            "id": ids,
            "customer": _text(batch.customer),
            "occurred_at": _instants(batch.occurred_us),
            "occurred_us": pa.array(batch.occurred_us, pa.int64()),
            "channel": _labels(CHANNEL_CODES, batch.channel),
            "direction": _labels(DIRECTION_CODES, batch.direction),
            "kind": _labels(INTERACTION_KIND_CODES, batch.kind),
            **columns,
            "agent": _text(batch.agent),
            "follow_up_due": _instants(follow, follow == NONE_MIN),
            "source": _text(batch.source),
            "external_ref": _text(batch.external_ref),
            **sealed,
        }
    )
    return table, _has_refs(batch)
