"""The range of a running total, and the check every store makes before folding into one.

Running totals (``purchase_minor``, ``refund_minor`` and the counts) are 64-bit integers in
every store: numpy ``int64`` columns in memory, ``BIGINT`` in SQL. A fold that would take
one past ``2**63 - 1`` must be refused *before* anything is written: numpy would wrap to a
negative total and SQLite would silently store a floating-point number. The stores call
:func:`overflowing_groups` on what they are about to add and raise :func:`total_overflow`.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from crmcore.errors import ValidationError

__all__ = ["INT64_MAX", "overflowing_groups", "total_overflow"]

INT64_MAX: Final = 2**63 - 1
"""The largest running total a store keeps (``BIGINT``, ``int64``)."""

# Below this bound a float64 estimate of a sum of non-negative terms cannot reach INT64_MAX
# (its relative error is far below 2**-40), so only groups above it are summed exactly.
_NEAR: Final = float(2**62)


def total_overflow(column: str, customer: object, adding: int) -> ValidationError:
    """The error refusing to add ``adding`` to ``customer``'s running total ``column``."""
    return ValidationError(
        column,
        adding,
        f"adding it to customer {customer}'s {column} would exceed the largest storable "
        f"running total ({INT64_MAX}); nothing was stored",
    )


def overflowing_groups(groups: Any, values: Any, size: int, stored: Any = None) -> Any:
    """Indexes of the groups whose ``stored`` total plus the sum of their ``values`` leaves
    the range of a running total; empty if none does.

    Args:
        groups: each value's group, ``0 <= group < size`` (an integer numpy array).
        values: the non-negative amounts to add (an integer numpy array, like ``groups``).
        size: the number of groups.
        stored: each group's current total (``size`` integers; default zeros).
    """
    values = np.asarray(values)
    base = np.zeros(size) if stored is None else np.asarray(stored, dtype=np.float64)
    estimate = base + np.bincount(
        np.asarray(groups, dtype=np.int64), weights=values.astype(np.float64), minlength=size
    )
    near = np.flatnonzero(estimate >= _NEAR)
    if near.size == 0:
        return near
    group_of = np.asarray(groups)
    over = []
    for group in near.tolist():
        exact = (0 if stored is None else int(stored[group])) + sum(
            int(v) for v in values[group_of == group].tolist()
        )
        if exact > INT64_MAX:
            over.append(group)
    return np.asarray(over, dtype=np.int64)
