"""Validated history, column-wise: what the bulk import hands a store.

:meth:`crmcore.Crm.import_transactions` and :meth:`~crmcore.Crm.import_interactions` read
Arrow data, validate it column by column with the per-row API's rules, and give the store one
:class:`TransactionBatch` or :class:`InteractionBatch` per chunk. A store's history
repository stores it set-wise (``add_batch``) without building a domain object per row; the
default path (:meth:`TransactionBatch.records`) builds them, for adapters without a bulk path.

Every value in a batch has passed validation: customers exist (as of the batch's unit of
work), instants are UTC microseconds, money is integer minor units, enumerations are the
codes of :mod:`crmcore.analytics.columns`, optional text is ``None`` or stripped text.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore._epoch import NONE_MIN, from_us
from crmcore.analytics.columns import (
    CHANNEL_CODES,
    INTERACTION_KIND_CODES,
    SALES_CHANNEL_CODES,
    TRANSACTION_KIND_CODES,
)
from crmcore.domain import (
    CrmNumber,
    Direction,
    Interaction,
    Money,
    Transaction,
)
from crmcore.domain._checks import trusted

__all__ = [
    "DIRECTION_CODES",
    "InteractionBatch",
    "TransactionBatch",
    "new_ids",
    "uuids",
]

Int64Array = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]
UInt64Array = npt.NDArray[np.uint64]
ObjectArray = npt.NDArray[np.object_]

DIRECTION_CODES: Final = {Direction.INBOUND: 0, Direction.OUTBOUND: 1}
"""Interaction direction codes (the other enumerations' codes are in analytics.columns)."""


def new_ids(count: int) -> tuple[UInt64Array, UInt64Array]:
    """``count`` new time-ordered UUIDs (RFC 9562 version 7) as (high, low) 64-bit halves,
    in ascending order.

    The upper 48 bits are the Unix time in milliseconds, the other 74 bits after the
    version and variant are random (``os.urandom``, drawn in one call), and the batch is
    sorted. Why not random version-4 ids: a batch's ids then all sort after those of
    earlier batches and among themselves in row order, so a database's B-tree index on the
    id (the SQL store's primary key) grows at its right edge instead of touching a random
    page of the whole index per row, which is what made bulk loads into large tables slow.
    Ids stay unique (74 random bits per millisecond) and opaque: nothing reads the time.
    """
    raw = np.frombuffer(os.urandom(16 * count), dtype=">u8").reshape(-1, 2)
    millis = np.uint64(time.time_ns() // 1_000_000) & np.uint64(0xFFFFFFFFFFFF)
    rand_a = raw[:, 0].astype(np.uint64) & np.uint64(0x0FFF)
    # RFC 9562: unix_ts_ms in bits 80-127, version 7 in bits 76-79, variant 10 in 62-63.
    high = (millis << np.uint64(16)) | np.uint64(0x7000) | rand_a
    low = (raw[:, 1].astype(np.uint64) & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(
        0x8000000000000000
    )
    order = np.lexsort((low, high))
    return high[order], low[order]


def uuids(high: UInt64Array, low: UInt64Array) -> list[uuid.UUID]:
    """The UUIDs of (high, low) halves."""
    return [uuid.UUID(int=(int(h) << 64) | int(lo)) for h, lo in zip(high, low, strict=True)]


@attrs.frozen(eq=False)
class TransactionBatch:
    """Validated transactions, one array per field (all of the same length).

    Attributes:
        customer: CRM number text of each row's (existing) customer.
        occurred_us: instants, microseconds since the epoch (UTC).
        kind: :data:`~crmcore.analytics.columns.TRANSACTION_KIND_CODES`.
        channel: :data:`~crmcore.analytics.columns.SALES_CHANNEL_CODES`.
        currency: ISO 4217 code of each total.
        total_minor: the total in minor units of ``currency`` (0 only for a free purchase).
        reporting_minor: the total in minor units of the store's reporting currency.
        source: import source or ``None``.
        external_ref: reference in ``source`` or ``None`` (never without a source).
        id_high: upper 64 bits of each row's UUID.
        id_low: lower 64 bits.
    """

    customer: ObjectArray
    occurred_us: Int64Array
    kind: Int8Array
    channel: Int8Array
    currency: ObjectArray
    total_minor: Int64Array
    reporting_minor: Int64Array
    source: ObjectArray
    external_ref: ObjectArray
    id_high: UInt64Array
    id_low: UInt64Array

    def __len__(self) -> int:
        return len(self.occurred_us)

    def take(self, rows: npt.NDArray[Any]) -> TransactionBatch:
        """The rows selected by a boolean mask or an index array."""
        return TransactionBatch(**{f.name: getattr(self, f.name)[rows] for f in _TX_FIELDS})

    def records(self, reporting_currency: str) -> Iterator[Transaction]:
        """The rows as :class:`~crmcore.Transaction` objects (for stores without a bulk path)."""
        kinds = {code: kind for kind, code in TRANSACTION_KIND_CODES.items()}
        by_code = {code: channel for channel, code in SALES_CHANNEL_CODES.items()}
        ids = uuids(self.id_high, self.id_low)
        for i in range(len(self)):
            currency = str(self.currency[i])
            total = Money.from_minor_units(int(self.total_minor[i]), currency)
            reporting = (
                total
                if currency == reporting_currency
                else Money.from_minor_units(int(self.reporting_minor[i]), reporting_currency)
            )
            yield trusted(
                Transaction,
                customer=CrmNumber(str(self.customer[i])),
                occurred_at=from_us(int(self.occurred_us[i])),
                kind=kinds[int(self.kind[i])],
                total=total,
                channel=by_code[int(self.channel[i])],
                lines=(),
                source=self.source[i],
                external_ref=self.external_ref[i],
                reporting_total=reporting,
                id=ids[i],
            )


_TX_FIELDS = attrs.fields(TransactionBatch)


@attrs.frozen(eq=False)
class InteractionBatch:
    """Validated interactions, one array per field (all of the same length).

    Attributes:
        customer: CRM number text of each row's (existing) customer.
        occurred_us: instants, microseconds since the epoch (UTC).
        channel: :data:`~crmcore.analytics.columns.CHANNEL_CODES`.
        direction: :data:`DIRECTION_CODES`.
        kind: :data:`~crmcore.analytics.columns.INTERACTION_KIND_CODES`.
        subject, notes, outcome, agent: optional text (``None`` or stripped text).
        follow_up_us: follow-up due instant, ``NONE_MIN`` when there is none.
        source: import source or ``None``.
        external_ref: reference in ``source`` or ``None`` (never without a source).
        id_high: upper 64 bits of each row's UUID.
        id_low: lower 64 bits.
    """

    customer: ObjectArray
    occurred_us: Int64Array
    channel: Int8Array
    direction: Int8Array
    kind: Int8Array
    subject: ObjectArray
    notes: ObjectArray
    outcome: ObjectArray
    agent: ObjectArray
    follow_up_us: Int64Array
    source: ObjectArray
    external_ref: ObjectArray
    id_high: UInt64Array
    id_low: UInt64Array

    def __len__(self) -> int:
        return len(self.occurred_us)

    def take(self, rows: npt.NDArray[Any]) -> InteractionBatch:
        """The rows selected by a boolean mask or an index array."""
        return InteractionBatch(**{f.name: getattr(self, f.name)[rows] for f in _IX_FIELDS})

    def records(self) -> Iterator[Interaction]:
        """The rows as :class:`~crmcore.Interaction` objects (for stores without a bulk path)."""
        channels = {code: c for c, code in CHANNEL_CODES.items()}
        kinds = {code: k for k, code in INTERACTION_KIND_CODES.items()}
        directions = {code: d for d, code in DIRECTION_CODES.items()}
        ids = uuids(self.id_high, self.id_low)
        for i in range(len(self)):
            follow = int(self.follow_up_us[i])
            yield trusted(
                Interaction,
                customer=CrmNumber(str(self.customer[i])),
                occurred_at=from_us(int(self.occurred_us[i])),
                channel=channels[int(self.channel[i])],
                direction=directions[int(self.direction[i])],
                kind=kinds[int(self.kind[i])],
                subject=self.subject[i],
                notes=self.notes[i],
                outcome=self.outcome[i],
                agent=self.agent[i],
                follow_up_due=None if follow == NONE_MIN else from_us(follow),
                source=self.source[i],
                external_ref=self.external_ref[i],
                id=ids[i],
            )


_IX_FIELDS = attrs.fields(InteractionBatch)
