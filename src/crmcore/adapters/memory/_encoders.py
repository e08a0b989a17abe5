"""How transactions and interactions are encoded into their histories' numpy logs.

The enumerations are stored as the integer codes declared once in
:mod:`crmcore.analytics.columns`, which is also where the analytics reading these logs
(:mod:`crmcore.adapters.memory._metrics`) take them from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np

from crmcore._epoch import to_us
from crmcore.adapters.memory._columns import Int64Array
from crmcore.analytics.columns import (
    CHANNEL_CODES,
    INTERACTION_KIND_CODES,
    SALES_CHANNEL_CODES,
    TRANSACTION_KIND_CODES,
)
from crmcore.domain import Interaction, Transaction, TransactionKind

__all__ = [
    "INTERACTION_ENCODER",
    "PURCHASE_CODE",
    "REFUND_CODE",
    "TRANSACTION_ENCODER",
    "InteractionEncoder",
    "TransactionEncoder",
]

# Plain dicts of the shared codes: looked up once per record written.
_CHANNEL: Final = dict(CHANNEL_CODES)
_INTERACTION_KIND: Final = dict(INTERACTION_KIND_CODES)
_SALES_CHANNEL: Final = dict(SALES_CHANNEL_CODES)
_TRANSACTION_KIND: Final = dict(TRANSACTION_KIND_CODES)
PURCHASE_CODE: Final = TRANSACTION_KIND_CODES[TransactionKind.PURCHASE]
REFUND_CODE: Final = TRANSACTION_KIND_CODES[TransactionKind.REFUND]


class TransactionEncoder:
    """Log columns ``row, occurred_us, kind, reporting_minor, channel`` of a transaction.

    ``reporting_minor`` is the reporting total in minor units: the store checks it is set
    before a transaction reaches the encoder.
    """

    columns: Final = ("row", "occurred_us", "kind", "reporting_minor", "channel")

    def encode(self, record: Transaction, row: int) -> dict[str, int]:
        """See :meth:`crmcore.adapters.memory._history.ColumnEncoder.encode`."""
        reporting = record.reporting_total
        assert reporting is not None  # checked by the repository
        return {
            "row": row,
            "occurred_us": to_us(record.occurred_at),
            "kind": _TRANSACTION_KIND[record.kind],
            "reporting_minor": reporting.minor_units,
            "channel": _SALES_CHANNEL[record.channel],
        }

    def encode_many(
        self, records: Sequence[Transaction], rows: Int64Array
    ) -> dict[str, Int64Array]:
        """See :meth:`crmcore.adapters.memory._history.ColumnEncoder.encode_many`."""
        n = len(records)
        return {
            "row": rows,
            "occurred_us": np.fromiter((to_us(t.occurred_at) for t in records), np.int64, n),
            "kind": np.fromiter((_TRANSACTION_KIND[t.kind] for t in records), np.int64, n),
            "reporting_minor": np.fromiter(_reporting_minor(records), np.int64, n),
            "channel": np.fromiter((_SALES_CHANNEL[t.channel] for t in records), np.int64, n),
        }


def _reporting_minor(transactions: Sequence[Transaction]) -> Iterator[int]:
    for transaction in transactions:
        assert transaction.reporting_total is not None  # checked by the repository
        yield transaction.reporting_total.minor_units


class InteractionEncoder:
    """Log columns ``row, occurred_us, kind, channel`` of an interaction."""

    columns: Final = ("row", "occurred_us", "kind", "channel")

    def encode(self, record: Interaction, row: int) -> dict[str, int]:
        """See :meth:`crmcore.adapters.memory._history.ColumnEncoder.encode`."""
        return {
            "row": row,
            "occurred_us": to_us(record.occurred_at),
            "kind": _INTERACTION_KIND[record.kind],
            "channel": _CHANNEL[record.channel],
        }

    def encode_many(
        self, records: Sequence[Interaction], rows: Int64Array
    ) -> dict[str, Int64Array]:
        """See :meth:`crmcore.adapters.memory._history.ColumnEncoder.encode_many`."""
        n = len(records)
        return {
            "row": rows,
            "occurred_us": np.fromiter((to_us(i.occurred_at) for i in records), np.int64, n),
            "kind": np.fromiter((_INTERACTION_KIND[i.kind] for i in records), np.int64, n),
            "channel": np.fromiter((_CHANNEL[i.channel] for i in records), np.int64, n),
        }


TRANSACTION_ENCODER: Final = TransactionEncoder()
INTERACTION_ENCODER: Final = InteractionEncoder()
