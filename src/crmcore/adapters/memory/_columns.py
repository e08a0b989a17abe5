"""Growable numpy columns: per-customer aggregates and append-only event logs.

The in-memory store keeps these beside its objects so analytics read contiguous int64 arrays
(one row per customer) instead of walking Python objects, and so "the customer's aggregate
after one more transaction" is an O(1) update of a few array cells.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from crmcore._epoch import NONE_MAX, NONE_MIN

Int64Array = npt.NDArray[np.int64]

AGGREGATE_COLUMNS: Final = (
    "purchase_count",
    "refund_count",
    "purchase_minor",
    "refund_minor",
    "first_purchase_us",
    "last_purchase_us",
    "interaction_count",
    "complaint_count",
    "last_interaction_us",
    "stage",
    "created_us",
    "alive",
)
_INITIAL: Final = {
    "first_purchase_us": NONE_MAX,
    "last_purchase_us": NONE_MIN,
    "last_interaction_us": NONE_MIN,
}


class ColumnTable:
    """Named int64 columns of equal length with amortised O(1) append."""

    def __init__(self, names: tuple[str, ...], defaults: dict[str, int] | None = None) -> None:
        self.names = names
        self.defaults = dict.fromkeys(names, 0) | (defaults or {})
        self.size = 0
        self._capacity = 1024
        self.columns: dict[str, Int64Array] = {
            name: np.full(self._capacity, self.defaults[name], dtype=np.int64) for name in names
        }

    def _reserve(self, extra: int) -> None:
        needed = self.size + extra
        if needed <= self._capacity:
            return
        capacity = self._capacity
        while capacity < needed:
            capacity *= 2
        for name in self.names:
            grown = np.full(capacity, self.defaults[name], dtype=np.int64)
            grown[: self.size] = self.columns[name][: self.size]
            self.columns[name] = grown
        self._capacity = capacity

    def append(self, **values: int) -> int:
        """Append one row (missing columns take their default); return its index."""
        self._reserve(1)
        row = self.size
        for name, value in values.items():
            self.columns[name][row] = value
        self.size += 1
        return row

    def append_many(self, values: dict[str, Int64Array]) -> range:
        """Append rows column-wise (all arrays the same length); return their indices."""
        count = len(next(iter(values.values()))) if values else 0
        self._reserve(count)
        start = self.size
        for name, column in values.items():
            self.columns[name][start : start + count] = column
        self.size += count
        return range(start, start + count)

    def truncate(self, size: int) -> None:
        """Drop rows from ``size`` on (used to undo appends), restoring defaults."""
        for name in self.names:
            self.columns[name][size : self.size] = self.defaults[name]
        self.size = size

    def row(self, index: int) -> dict[str, int]:
        return {name: int(self.columns[name][index]) for name in self.names}

    def set_row(self, index: int, values: dict[str, int]) -> None:
        for name, value in values.items():
            self.columns[name][index] = value

    def view(self, name: str) -> Int64Array:
        """The live prefix of one column (a view, not a copy)."""
        return self.columns[name][: self.size]


def new_aggregate_table() -> ColumnTable:
    return ColumnTable(AGGREGATE_COLUMNS, dict(_INITIAL))


TRANSACTION_LOG_COLUMNS: Final = ("row", "occurred_us", "kind", "reporting_minor", "channel")
INTERACTION_LOG_COLUMNS: Final = ("row", "occurred_us", "kind", "channel")
