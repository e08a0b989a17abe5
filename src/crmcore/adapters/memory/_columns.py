"""Growable numpy columns: per-customer aggregates and append-only event logs.

The in-memory store keeps these beside its objects so analytics read contiguous int64 arrays
(one row per customer) instead of walking Python objects, and so "the customer's aggregate
after one more transaction" is an O(1) update of a few array cells.

The aggregate columns are those every store maintains
(:data:`crmcore.analytics.columns.AGGREGATE_COLUMNS`, with their defaults), plus one of this
store's own: ``alive`` (1 for a live customer, 0 once erased: rows are never reused).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crmcore.analytics.columns import AGGREGATE_COLUMNS, COLUMN_DEFAULTS

__all__ = [
    "ALIVE",
    "STORE_COLUMNS",
    "ColumnTable",
    "Int64Array",
    "new_aggregate_table",
]

Int64Array = npt.NDArray[np.int64]

ALIVE: Final = "alive"
"""The memory store's own aggregate column: 1 while the customer exists, 0 once erased."""
STORE_COLUMNS: Final = (*AGGREGATE_COLUMNS, ALIVE)
"""The aggregate table's columns: the shared raw columns, then ``alive``."""


class ColumnTable:
    """Named numeric columns of equal length with amortised O(1) append.

    Columns are int64 unless ``dtypes`` says otherwise. A column whose default is 0 grows
    with ``np.zeros`` (the operating system maps its unused tail lazily, so spare capacity
    costs no resident memory).

    Attributes:
        names: the column names, in order.
        defaults: each column's value in a fresh (or truncated) row.
        size: how many rows are live.
        columns: the backing arrays (longer than ``size``; see :meth:`view`).
    """

    def __init__(
        self,
        names: tuple[str, ...],
        defaults: Mapping[str, int] | None = None,
        dtypes: Mapping[str, Any] | None = None,
    ) -> None:
        self.names = names
        self.defaults = dict.fromkeys(names, 0) | dict(defaults or {})
        self.dtypes: dict[str, Any] = dict.fromkeys(names, np.int64) | dict(dtypes or {})
        self.size = 0
        self._capacity = 1024
        self.columns: dict[str, Int64Array] = {
            name: self._fresh(name, self._capacity) for name in names
        }
        # The arrays in ``names`` order, for appending one row without a lookup by name.
        self._arrays = [self.columns[name] for name in names]

    def _fresh(self, name: str, capacity: int) -> Int64Array:
        default = self.defaults[name]
        if default == 0:
            return np.zeros(capacity, dtype=self.dtypes[name])
        return np.full(capacity, default, dtype=self.dtypes[name])

    def _reserve(self, extra: int) -> None:
        needed = self.size + extra
        if needed <= self._capacity:
            return
        capacity = self._capacity
        while capacity < needed:
            capacity *= 2
        for name in self.names:
            grown = self._fresh(name, capacity)
            grown[: self.size] = self.columns[name][: self.size]
            self.columns[name] = grown
        self._arrays = [self.columns[name] for name in self.names]
        self._capacity = capacity

    def append(self, values: Mapping[str, int]) -> int:
        """Append one row (missing columns take their default); return its index."""
        self._reserve(1)
        row = self.size
        columns = self.columns
        for name, value in values.items():
            columns[name][row] = value
        self.size += 1
        return row

    def append_row(self, values: tuple[int, ...]) -> int:
        """Append one row given as a value for every column, in :attr:`names` order; return
        its index (the per-record path: no dict and no lookup by name)."""
        row = self.size
        if row == self._capacity:
            self._reserve(1)
        for column, value in zip(self._arrays, values, strict=True):
            column[row] = value
        self.size = row + 1
        return row

    def append_many(self, values: Mapping[str, Int64Array]) -> range:
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
        """One row as a dict of Python ints."""
        return {name: int(self.columns[name][index]) for name in self.names}

    def set_row(self, index: int, values: Mapping[str, int]) -> None:
        """Overwrite some cells of one row."""
        for name, value in values.items():
            self.columns[name][index] = value

    def view(self, name: str) -> Int64Array:
        """The live prefix of one column (a view, not a copy)."""
        return self.columns[name][: self.size]

    def blank_where(self, name: str, value: int) -> dict[str, Int64Array]:
        """Blank the rows whose ``name`` column equals ``value`` (that column becomes -1, the
        others 0) and return what :meth:`restore` needs to put them back."""
        hits = (self.view(name) == value).nonzero()[0]
        saved: dict[str, Int64Array] = {"index": hits}
        for column in self.names:
            saved[column] = self.columns[column][hits].copy()
            self.columns[column][hits] = -1 if column == name else 0
        return saved

    def restore(self, saved: Mapping[str, Int64Array]) -> None:
        """Undo :meth:`blank_where`."""
        hits = saved["index"]
        for name in self.names:
            self.columns[name][hits] = saved[name]


def new_aggregate_table() -> ColumnTable:
    """An empty per-customer aggregate table (:data:`STORE_COLUMNS`)."""
    return ColumnTable(STORE_COLUMNS, COLUMN_DEFAULTS)
