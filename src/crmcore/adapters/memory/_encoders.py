"""How transactions and interactions become columns of their histories, and back.

The enumerations are stored as the integer codes declared once in
:mod:`crmcore.analytics.columns`, which is also where the analytics reading these logs
(:mod:`crmcore.adapters.memory._metrics`) take them from. Each encoder names its own numeric
columns (beside the history's ``row``, ``occurred_us``, id, source and text columns), its
free-text fields, and encodes one record, many records or a validated column batch; reading
back, it builds the domain objects of some rows from their columns.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import attrs
import numpy as np

from crmcore._epoch import NONE_MIN, from_us, to_us
from crmcore.adapters.memory._columns import Int64Array
from crmcore.analytics.columns import (
    CHANNEL_CODES,
    INTERACTION_KIND_CODES,
    SALES_CHANNEL_CODES,
    TRANSACTION_KIND_CODES,
)
from crmcore.domain import Interaction, Money, Transaction, TransactionKind
from crmcore.domain._checks import trusted_factory
from crmcore.domain.money import CURRENCY_EXPONENTS
from crmcore.ports.batches import DIRECTION_CODES, InteractionBatch, TransactionBatch

__all__ = [
    "INTERACTION_ENCODER",
    "PURCHASE_CODE",
    "REFUND_CODE",
    "TRANSACTION_ENCODER",
    "Common",
    "Encoded",
    "InteractionEncoder",
    "TransactionEncoder",
    "uuid_of",
]

# Plain dicts of the shared codes: looked up once per record written.
_CHANNEL: Final = dict(CHANNEL_CODES)
_INTERACTION_KIND: Final = dict(INTERACTION_KIND_CODES)
_SALES_CHANNEL: Final = dict(SALES_CHANNEL_CODES)
_TRANSACTION_KIND: Final = dict(TRANSACTION_KIND_CODES)
_DIRECTION: Final = dict(DIRECTION_CODES)
_CHANNEL_OF: Final = {code: c for c, code in CHANNEL_CODES.items()}
_INTERACTION_KIND_OF: Final = {code: k for k, code in INTERACTION_KIND_CODES.items()}
_SALES_CHANNEL_OF: Final = {code: c for c, code in SALES_CHANNEL_CODES.items()}
_TRANSACTION_KIND_OF: Final = {code: k for k, code in TRANSACTION_KIND_CODES.items()}
_DIRECTION_OF: Final = {code: d for d, code in DIRECTION_CODES.items()}
PURCHASE_CODE: Final = TRANSACTION_KIND_CODES[TransactionKind.PURCHASE]
REFUND_CODE: Final = TRANSACTION_KIND_CODES[TransactionKind.REFUND]


@attrs.define
class Encoded:
    """Rows to store, column-wise, before their customers' rows are known.

    Attributes:
        numbers: the encoder's numeric columns and ``occurred_us``.
        texts: the encoder's free-text fields (``None`` or text), by name.
        id_high, id_low: the ids' 64-bit halves.
        source, external_ref: ``None`` or text.
        extras: what the columns do not hold, by position (a transaction's lines).
    """

    numbers: dict[str, Int64Array]
    texts: dict[str, Any]
    id_high: Any
    id_low: Any
    source: Any
    external_ref: Any
    extras: dict[int, object] = attrs.Factory(dict)


@attrs.define
class Common:
    """The fields every record has, for some rows being read back (lists, one per row)."""

    customer: list[Any]
    occurred_us: list[int]
    source: list[str | None]
    external_ref: list[str | None]
    id: list[Any]
    texts: dict[str, list[str | None]]
    extras: list[Any]


_new_money: Final = trusted_factory(Money, ("amount", "currency"))
_new_transaction: Final = trusted_factory(
    Transaction,
    (
        "customer",
        "occurred_at",
        "kind",
        "total",
        "channel",
        "lines",
        "source",
        "external_ref",
        "reporting_total",
        "id",
    ),
)
_new_interaction: Final = trusted_factory(
    Interaction,
    (
        "customer",
        "occurred_at",
        "channel",
        "direction",
        "kind",
        "subject",
        "notes",
        "outcome",
        "agent",
        "follow_up_due",
        "source",
        "external_ref",
        "id",
    ),
)


@functools.lru_cache(maxsize=8192)
def _money(minor: int, currency: str) -> Money:
    # Money is immutable: equal amounts read back may share one object. The amount is built
    # as Money's validation would leave it (exactly the currency's places), without it: the
    # store wrote these minor units from a validated Money.
    return _new_money(Decimal(minor).scaleb(-CURRENCY_EXPONENTS[currency]), currency)


def uuid_of(value: int) -> uuid.UUID:
    """The UUID of a 128-bit integer read from the log, as unpickling builds one (the
    constructor's argument checks are most of its cost, and the value came from a UUID)."""
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", uuid.SafeUUID.unknown)
    return made


def _ids(records: Sequence[Transaction] | Sequence[Interaction]) -> tuple[Any, Any]:
    ints = [r.id.int for r in records]
    high = np.fromiter((i >> 64 for i in ints), np.uint64, len(ints))
    low = np.fromiter((i & 0xFFFFFFFFFFFFFFFF for i in ints), np.uint64, len(ints))
    return high, low


class TransactionEncoder:
    """Columns ``kind, reporting_minor, channel, total_minor, currency`` of a transaction.

    ``reporting_minor`` is the reporting total in minor units: the store checks it is set
    before a transaction reaches the encoder. ``currency`` is a code of the history's
    ``currency`` dictionary.
    """

    columns: Final = ("kind", "reporting_minor", "channel", "total_minor", "currency")
    dtypes: Final = {"kind": np.int8, "channel": np.int8, "currency": np.int16}
    texts: Final = ()

    def encode(self, record: Transaction, codes: Any) -> tuple[int, ...]:
        """One record's ``occurred_us`` and numeric values in :attr:`columns` order (``codes``
        is the history, for its dictionaries)."""
        reporting = record.reporting_total
        assert reporting is not None  # checked by the repository
        total = record.total
        minor = total.minor_units
        return (
            to_us(record.occurred_at),
            _TRANSACTION_KIND[record.kind],
            # The services set the reporting total to the total itself when the currencies
            # agree: converting the same Decimal twice is a measurable share of a write.
            minor if reporting is total else reporting.minor_units,
            _SALES_CHANNEL[record.channel],
            minor,
            codes.dictionary("currency").code(total.currency),
        )

    def text_values(self, record: Transaction) -> tuple[str | None, ...]:
        return ()

    def extras_of(self, record: Transaction) -> object | None:
        return record.lines or None

    def encode_many(self, records: Sequence[Transaction], codes: Any) -> Encoded:
        n = len(records)
        currency = codes.dictionary("currency")
        reporting = [t.reporting_total for t in records]
        high, low = _ids(records)
        return Encoded(
            numbers={
                "occurred_us": np.fromiter((to_us(t.occurred_at) for t in records), np.int64, n),
                "kind": np.fromiter((_TRANSACTION_KIND[t.kind] for t in records), np.int8, n),
                "reporting_minor": np.fromiter(
                    (m.minor_units for m in reporting if m is not None), np.int64, n
                ),
                "channel": np.fromiter((_SALES_CHANNEL[t.channel] for t in records), np.int8, n),
                "total_minor": np.fromiter((t.total.minor_units for t in records), np.int64, n),
                "currency": currency.code_many([t.total.currency for t in records]).astype(
                    np.int16
                ),
            },
            texts={},
            id_high=high,
            id_low=low,
            source=[t.source for t in records],
            external_ref=[t.external_ref for t in records],
            extras={i: t.lines for i, t in enumerate(records) if t.lines},
        )

    def encode_batch(self, batch: TransactionBatch, codes: Any) -> Encoded:
        return Encoded(
            numbers={
                "occurred_us": batch.occurred_us.astype(np.int64),
                "kind": batch.kind.astype(np.int8),
                "reporting_minor": batch.reporting_minor.astype(np.int64),
                "channel": batch.channel.astype(np.int8),
                "total_minor": batch.total_minor.astype(np.int64),
                "currency": codes.dictionary("currency").code_many(batch.currency).astype(np.int16),
            },
            texts={},
            id_high=batch.id_high.astype(np.uint64),
            id_low=batch.id_low.astype(np.uint64),
            source=batch.source,
            external_ref=batch.external_ref,
        )

    def build(
        self, columns: dict[str, list[int]], common: Common, codes: Any, reporting: str
    ) -> list[Transaction]:
        """The transactions of some rows (``columns``: this encoder's columns as lists)."""
        names = codes.dictionary("currency").names
        out = []
        for i, customer in enumerate(common.customer):
            currency = names[columns["currency"][i]]
            minor, reporting_minor = columns["total_minor"][i], columns["reporting_minor"][i]
            total = _money(minor, currency)
            out.append(
                _new_transaction(
                    customer,
                    from_us(common.occurred_us[i]),
                    _TRANSACTION_KIND_OF[columns["kind"][i]],
                    total,
                    _SALES_CHANNEL_OF[columns["channel"][i]],
                    common.extras[i] or (),
                    common.source[i],
                    common.external_ref[i],
                    total
                    if currency == reporting and minor == reporting_minor
                    else _money(reporting_minor, reporting),
                    common.id[i],
                )
            )
        return out


_INTERACTION_TEXTS: Final = ("subject", "notes", "outcome", "agent")


class InteractionEncoder:
    """Columns ``kind, channel, direction, follow_up_us`` and texts ``subject, notes,
    outcome, agent`` of an interaction (``follow_up_us`` is ``NONE_MIN`` for none)."""

    columns: Final = ("kind", "channel", "direction", "follow_up_us")
    dtypes: Final = {"kind": np.int8, "channel": np.int8, "direction": np.int8}
    texts: Final = _INTERACTION_TEXTS

    def encode(self, record: Interaction, codes: Any) -> tuple[int, ...]:
        """One record's ``occurred_us`` and numeric values in :attr:`columns` order."""
        follow = record.follow_up_due
        return (
            to_us(record.occurred_at),
            _INTERACTION_KIND[record.kind],
            _CHANNEL[record.channel],
            _DIRECTION[record.direction],
            NONE_MIN if follow is None else to_us(follow),
        )

    def text_values(self, record: Interaction) -> tuple[str | None, ...]:
        return (record.subject, record.notes, record.outcome, record.agent)

    def extras_of(self, record: Interaction) -> object | None:
        return None

    def encode_many(self, records: Sequence[Interaction], codes: Any) -> Encoded:
        n = len(records)
        high, low = _ids(records)
        follow = (i.follow_up_due for i in records)
        return Encoded(
            numbers={
                "occurred_us": np.fromiter((to_us(i.occurred_at) for i in records), np.int64, n),
                "kind": np.fromiter((_INTERACTION_KIND[i.kind] for i in records), np.int8, n),
                "channel": np.fromiter((_CHANNEL[i.channel] for i in records), np.int8, n),
                "direction": np.fromiter((_DIRECTION[i.direction] for i in records), np.int8, n),
                "follow_up_us": np.fromiter(
                    (NONE_MIN if f is None else to_us(f) for f in follow), np.int64, n
                ),
            },
            texts={name: [getattr(i, name) for i in records] for name in _INTERACTION_TEXTS},
            id_high=high,
            id_low=low,
            source=[i.source for i in records],
            external_ref=[i.external_ref for i in records],
        )

    def encode_batch(self, batch: InteractionBatch, codes: Any) -> Encoded:
        return Encoded(
            numbers={
                "occurred_us": batch.occurred_us.astype(np.int64),
                "kind": batch.kind.astype(np.int8),
                "channel": batch.channel.astype(np.int8),
                "direction": batch.direction.astype(np.int8),
                "follow_up_us": batch.follow_up_us.astype(np.int64),
            },
            texts={name: getattr(batch, name) for name in _INTERACTION_TEXTS},
            id_high=batch.id_high.astype(np.uint64),
            id_low=batch.id_low.astype(np.uint64),
            source=batch.source,
            external_ref=batch.external_ref,
        )

    def build(
        self, columns: dict[str, list[int]], common: Common, codes: Any, reporting: str
    ) -> list[Interaction]:
        """The interactions of some rows (``columns``: this encoder's columns as lists)."""
        texts = common.texts
        out = []
        for i, customer in enumerate(common.customer):
            follow = columns["follow_up_us"][i]
            out.append(
                _new_interaction(
                    customer,
                    from_us(common.occurred_us[i]),
                    _CHANNEL_OF[columns["channel"][i]],
                    _DIRECTION_OF[columns["direction"][i]],
                    _INTERACTION_KIND_OF[columns["kind"][i]],
                    texts["subject"][i],
                    texts["notes"][i],
                    texts["outcome"][i],
                    texts["agent"][i],
                    None if follow == NONE_MIN else from_us(follow),
                    common.source[i],
                    common.external_ref[i],
                    common.id[i],
                )
            )
        return out


TRANSACTION_ENCODER: Final = TransactionEncoder()
INTERACTION_ENCODER: Final = InteractionEncoder()
