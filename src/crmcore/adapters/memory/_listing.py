"""Each customer's history rows: a lazily rebuilt CSR index plus a scan of the newest rows.

:class:`CustomerListing` answers "which history rows belong to aggregate row ``r``" without a
list per customer: ``order`` holds the rows indexed so far grouped by customer (stable, so in
insertion order within a customer), ``starts`` where each customer's group begins. Rows
appended since are found by scanning the log's tail; once the tail is long enough (relative
to the index) a read folds it in: the tail sorted by customer, merged with the index by a
stable sort of two sorted runs.

Keys can change under the index (an erased customer's rows are blanked to ``-1`` and
restored on rollback), so readers keep only the rows whose log row still is the customer's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["CustomerListing"]

IntArray = npt.NDArray[np.int64]
_EMPTY = np.zeros(0, dtype=np.int64)


class CustomerListing:
    """The CSR index of a history's rows by customer (see the module docstring).

    Attributes:
        built: how many log rows the index covers (rows ``>= built`` are the tail).
        order: the covered rows grouped by customer (int32).
        starts: ``starts[k] : starts[k + 1]`` in ``order`` are key ``k``'s rows, where the key
            of a row is its customer's aggregate row plus one (0: blanked when indexed).
    """

    def __init__(self) -> None:
        self.built = 0
        self.order: npt.NDArray[np.int32]
        self.starts: IntArray
        self._reset()

    def _reset(self) -> None:
        self.built = 0
        self.order = np.zeros(0, dtype=np.int32)
        self.starts = np.zeros(1, dtype=np.int64)

    def forget_from(self, size: int) -> None:
        """The log was truncated to ``size`` rows: drop the index if it covered more."""
        if self.built > size:
            self._reset()

    def rows_of(self, owner: IntArray, size: int, row: int) -> IntArray:
        """Log rows (of the first ``size``) filed under aggregate row ``row``: candidates the
        caller filters on the current ``owner`` column."""
        if size - self.built > 256 + self.built // 64:
            self._fold(owner, size)
        key = row + 1
        starts = self.starts
        indexed = (
            self.order[starts[key] : starts[key + 1]].astype(np.int64)
            if key + 1 < len(starts)
            else _EMPTY
        )
        tail = (owner[self.built : size] == row).nonzero()[0] + self.built
        return np.concatenate((indexed, tail)) if tail.size else indexed

    def _fold(self, owner: IntArray, size: int) -> None:
        built = self.built
        tail_keys = owner[built:size] + 1
        tail_order = np.argsort(tail_keys, kind="stable")
        groups = len(self.starts) - 1
        keys = np.concatenate(
            (
                np.repeat(np.arange(groups, dtype=np.int64), np.diff(self.starts)),
                tail_keys[tail_order],
            )
        )
        rows = np.concatenate((self.order.astype(np.int64), tail_order + built))
        merged = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=groups)
        self.order = rows[merged].astype(np.int32)
        self.starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.built = size
