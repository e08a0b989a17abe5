"""Quantile and threshold scores 1..k over one integer column (DESIGN §4).

Under ``ties="shared"`` a customer's score is ``1 + floor(k * (rank_min - 1) / n)`` with
``rank_min = 1 + #(strictly worse values)``. Writing ``c = rank_min - 1``,
``score >= s + 1  <=>  k*c/n >= s  <=>  c >= ceil(s*n/k) =: m_s``, and "at least ``m_s``
values are strictly worse" holds exactly when the value is strictly better than the
``m_s``-th worst value. So the score is ``1 +`` the number of the ``k - 1`` cut values
``cut_s = (m_s-th worst value)`` that the value strictly beats: ``k - 1`` order statistics
(``np.partition``, O(n)), never a sort.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import attrs
import numpy as np
import numpy.typing as npt

from crmcore.analytics._metrics import Int64Array
from crmcore.errors import ValidationError

__all__ = [
    "Direction",
    "ScoreArray",
    "ThresholdScale",
    "Ties",
    "cut_ranks",
    "ordinal_order",
    "ordinal_scores",
    "scores_from_cuts",
    "shared_cuts",
    "shared_scores",
]

Ties = Literal["shared", "ordinal"]
Direction = Literal["higher", "lower"]
"""Which values are better: ``"higher"`` (frequency, monetary) or ``"lower"`` (recency)."""
ScoreArray = npt.NDArray[np.int8]

_COUNTING_LIMIT: Final = 1 << 22
"""Value ranges up to this width find order statistics by counting instead of selection."""


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 100:
        raise ValidationError("k", k, "must be an integer from 2 to 100")
    return k


def cut_ranks(n: int, k: int) -> list[int]:
    """The 1-based ranks ``m_s = ceil(s*n/k)``, s = 1..k-1, of the shared-ties cut values."""
    return [(s * n + k - 1) // k for s in range(1, k)]


def _order_statistics(values: Int64Array, ranks: Sequence[int]) -> Int64Array:
    """The ``ranks``-th smallest values (1-based), in O(n)."""
    low, high = int(values.min()), int(values.max())
    if high - low <= _COUNTING_LIMIT:
        # Small value ranges (day counts, purchase counts): count, accumulate, look up.
        counts = np.bincount(values - low)
        cumulative = np.cumsum(counts)
        found = np.searchsorted(cumulative, np.asarray(ranks), side="left")
        return (found + low).astype(np.int64)
    kth = [r - 1 for r in ranks]
    return np.partition(values, kth)[kth].astype(np.int64)


def shared_cuts(values: Int64Array, k: int, direction: Direction) -> Int64Array:
    """The cut values of the shared-ties quantile score, in natural units, s = 1..k-1.

    For ``direction="higher"`` cut ``s`` is the ``m_s``-th smallest value; for ``"lower"``
    (fewer is better) the ``m_s``-th largest. A value scores ``1 +`` the number of cuts it
    strictly beats (exceeds for "higher", is below for "lower").

    Args:
        values: the scored customers' values (non-empty).
        k: number of score levels.
        direction: which values are better.

    Returns:
        ``k - 1`` cut values.
    """
    k = _check_k(k)
    n = len(values)
    ranks = cut_ranks(n, k)
    if direction == "lower":
        ranks = [n - m + 1 for m in ranks]
    return _order_statistics(values, ranks)


def scores_from_cuts(values: Int64Array, cuts: Int64Array, direction: Direction) -> ScoreArray:
    """Score values against cut points: ``1 +`` the number of cuts strictly beaten."""
    scores = np.ones(len(values), dtype=np.int8)
    for cut in cuts.tolist():
        beaten = values > cut if direction == "higher" else values < cut
        np.add(scores, beaten, out=scores, casting="unsafe")
    return scores


def shared_scores(
    values: Int64Array, k: int, direction: Direction
) -> tuple[ScoreArray, Int64Array]:
    """Quantile scores 1..k with shared ties (equal values, equal scores).

    Equals ``1 + floor(k * (rank_min - 1) / n)`` where ``rank_min`` is 1 + the number of
    strictly worse values (see the module docstring for the proof).

    Args:
        values: one value per scored customer.
        k: number of levels (5 is best).
        direction: which values are better.

    Returns:
        ``(scores, cuts)``.
    """
    k = _check_k(k)
    if len(values) == 0:
        return np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int64)
    cuts = shared_cuts(values, k, direction)
    return scores_from_cuts(values, cuts, direction), cuts


def ordinal_order(values: Int64Array, direction: Direction, number_order: Int64Array) -> Int64Array:
    """Indices of ``values`` in ordinal order: value worst -> best, then CRM number ascending."""
    worst_first = values if direction == "higher" else -values
    return np.lexsort((number_order, worst_first))


def ordinal_scores(
    values: Int64Array,
    k: int,
    direction: Direction,
    number_order: Int64Array,
    order: Int64Array | None = None,
) -> tuple[ScoreArray, Int64Array]:
    """Quantile scores 1..k in equal-size groups; ties broken by CRM number ascending.

    ``score = 1 + floor(k * (row_number - 1) / n)`` over (value worst -> best, CRM number).
    Group sizes differ by at most one.

    Args:
        values: one value per scored customer.
        k: number of levels.
        direction: which values are better.
        number_order: rank of each customer's CRM number (ascending), same length.
        order: :func:`ordinal_order` of these values, if the caller has it already.

    Returns:
        ``(scores, cuts)`` where cut ``s`` is the value of the first customer in group
        ``s + 1`` (what a later single customer is compared with).
    """
    k = _check_k(k)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int64)
    if order is None:
        order = ordinal_order(values, direction, number_order)
    scores = np.empty(n, dtype=np.int8)
    scores[order] = 1 + (k * np.arange(n, dtype=np.int64)) // n
    # Group s + 1 starts at position ceil(s*n/k); an empty group (n < k) borrows the best.
    starts = [min((s * n + k - 1) // k, n - 1) for s in range(1, k)]
    cuts = values[order[starts]].astype(np.int64)
    return scores, cuts


def _bounds(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(values)


@attrs.frozen
class ThresholdScale:
    """Fixed business cut points instead of quantiles.

    With ``bounds = (b1 < b2 < ... < b_{k-1})`` the score is ``1 +`` the number of bounds
    the value reaches: for ``direction="higher"`` bounds with ``value >= b``; for
    ``"lower"`` bounds with ``value <= b``. Example: recency bounds ``(30, 90, 180, 365)``
    give 5 for at most 30 days, 4 for 31-90, ..., 1 beyond 365.

    Args:
        bounds: strictly increasing integers (in the field's units: days, purchases, minor
            units of money).
    """

    bounds: tuple[int, ...] = attrs.field(converter=_bounds)

    def __attrs_post_init__(self) -> None:
        if not self.bounds:
            raise ValidationError("bounds", self.bounds, "needs at least one bound")
        for value in self.bounds:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError("bounds", self.bounds, "bounds are integers")
        if any(b >= a for a, b in zip(self.bounds[1:], self.bounds, strict=False)):
            raise ValidationError("bounds", self.bounds, "must be strictly increasing")

    @property
    def k(self) -> int:
        """Number of score levels (one more than the bounds)."""
        return len(self.bounds) + 1

    def scores(self, values: Int64Array, direction: Direction) -> ScoreArray:
        """Score an array of values."""
        bounds = np.asarray(self.bounds, dtype=np.int64)
        if direction == "higher":
            return (1 + np.searchsorted(bounds, values, side="right")).astype(np.int8)
        return (1 + len(bounds) - np.searchsorted(bounds, values, side="left")).astype(np.int8)

    def score_one(self, value: int, direction: Direction) -> int:
        """Score one value."""
        if direction == "higher":
            return 1 + sum(value >= b for b in self.bounds)
        return 1 + sum(value <= b for b in self.bounds)
