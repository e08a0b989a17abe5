"""RFM: recency, frequency and monetary scores and named segments over a snapshot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import attrs
import numpy as np

from crmcore.analytics._metrics import BoolArray, CustomerMetrics, Int64Array, ObjectArray
from crmcore.analytics._scores import (
    Direction,
    ScoreArray,
    ThresholdScale,
    Ties,
    cut_ranks,
    ordinal_order,
    ordinal_scores,
    shared_scores,
)
from crmcore.analytics._segmap import DEFAULT_SEGMENT_MAP, SegmentMap
from crmcore.domain import CrmNumber
from crmcore.errors import ConfigurationError, NotFound, ValidationError

__all__ = ["RFM_FIELDS", "CutPoints", "RfmPolicy", "RfmResult", "RfmScore", "score_rfm"]

RFM_FIELDS: Final = frozenset({"recency_days", "frequency", "monetary"})
DIMENSIONS: Final[tuple[tuple[str, str, Direction], ...]] = (
    ("r", "recency_days", "lower"),
    ("f", "frequency", "higher"),
    ("m", "monetary", "higher"),
)


def _ties(value: object) -> Ties:
    if value == "shared":
        return "shared"
    if value == "ordinal":
        return "ordinal"
    raise ValidationError("ties", value, "must be 'shared' or 'ordinal'")


def _scale(value: object) -> ThresholdScale | None:
    if value is None or isinstance(value, ThresholdScale):
        return value
    if isinstance(value, tuple | list):
        return ThresholdScale(tuple(int(v) for v in value))
    raise ValidationError("scale", value, "must be a ThresholdScale, a tuple of bounds or None")


@attrs.frozen
class RfmPolicy:
    """How RFM scores are computed.

    Args:
        k: levels of the quantile scores (default 5; 5 is best).
        ties: ``"shared"`` (equal values share a score) or ``"ordinal"`` (equal-size
            groups, ties broken by CRM number ascending).
        recency, frequency, monetary: a :class:`ThresholdScale` (or its bounds) to use fixed
            cut points for that dimension instead of quantiles.
        segment_map: names for score triples (default :data:`DEFAULT_SEGMENT_MAP`;
            ``None``: no names). Its shape must match the levels of the three scores.
    """

    k: int = 5
    ties: Ties = attrs.field(default="shared", converter=_ties)
    recency: ThresholdScale | None = attrs.field(default=None, converter=_scale)
    frequency: ThresholdScale | None = attrs.field(default=None, converter=_scale)
    monetary: ThresholdScale | None = attrs.field(default=None, converter=_scale)
    segment_map: SegmentMap | None = DEFAULT_SEGMENT_MAP

    def __attrs_post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 2 <= self.k <= 100:
            raise ValidationError("k", self.k, "must be an integer from 2 to 100")
        if self.segment_map is not None and self.segment_map.shape != self.shape:
            raise ConfigurationError(
                f"segment map is over scores {self.segment_map.shape} but the policy scores "
                f"{self.shape}; pass a matching segment_map or segment_map=None"
            )

    def scale(self, dimension: str) -> ThresholdScale | None:
        """The threshold scale of ``"r"``, ``"f"`` or ``"m"`` (``None``: quantiles)."""
        return {"r": self.recency, "f": self.frequency, "m": self.monetary}[dimension]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Levels of (R, F, M)."""
        levels = [self.k if (s := self.scale(d)) is None else s.k for d, _, _ in DIMENSIONS]
        return (levels[0], levels[1], levels[2])


@attrs.frozen
class CutPoints:
    """The cut points a dimension was actually scored with.

    Attributes:
        field: the snapshot field (``recency_days``, ``frequency``, ``monetary``).
        method: ``"quantile-shared"``, ``"quantile-ordinal"`` or ``"threshold"``.
        direction: ``"lower"`` (fewer is better) or ``"higher"``.
        cuts: cut values ``s = 1..k-1``. Quantile-shared: score = 1 + number of cuts the
            value strictly beats. Threshold: score = 1 + number of bounds reached.
            Quantile-ordinal: the value of the first customer of group ``s + 1`` (of the
            best customer when that group is empty, n < k).
        k: number of levels.
        cut_numbers: quantile-ordinal only: the CRM number of the first customer of group
            ``s + 1``, or ``None`` when that group is empty. With ``cuts`` it is the full
            ordering key (value, CRM number) a single customer is compared with.
    """

    field: str
    method: str
    direction: Direction
    cuts: tuple[int, ...]
    k: int
    cut_numbers: tuple[str | None, ...] = ()

    def score(self, value: int, number: str | None = None) -> int:
        """Score one value against these cut points (the incremental path).

        Under ``quantile-ordinal`` a customer reaches group ``s + 1`` when its (value, CRM
        number) key is at or past that group's first customer's key, exactly as in the
        batch ordering, so an unchanged customer gets its batch score back. Without
        ``number`` (or cut numbers) a value equal to a cut is placed in the better group.
        """
        if self.method == "threshold":
            return ThresholdScale(tuple(self.cuts)).score_one(value, self.direction)
        if self.method == "quantile-ordinal":
            sign = 1 if self.direction == "higher" else -1
            known = len(self.cut_numbers) == len(self.cuts)
            holders = self.cut_numbers if known else (None,) * len(self.cuts)
            level = 1
            for cut, holder in zip(self.cuts, holders, strict=True):
                if known and holder is None:
                    continue  # an empty group: nobody reaches it
                if number is not None and holder is not None:
                    level += (sign * value, number) >= (sign * cut, holder)
                else:
                    level += sign * value >= sign * cut
            return level
        if self.direction == "higher":
            return 1 + sum(value > c for c in self.cuts)
        return 1 + sum(value < c for c in self.cuts)


@attrs.frozen
class RfmScore:
    """One customer's RFM result, with what produced it."""

    customer: CrmNumber | None
    as_of: dt.datetime
    recency_days: int | None
    frequency: int
    monetary: int
    r: int | None
    f: int | None
    m: int | None
    segment: str | None
    policy: RfmPolicy
    cut_points: Mapping[str, CutPoints]

    @property
    def scored(self) -> bool:
        """False for a customer without purchases (kept apart, not "worst")."""
        return self.r is not None


class RfmResult:
    """RFM scores of every customer of a snapshot.

    Arrays are in the snapshot's row order. Unscored customers (no purchase as of
    ``as_of``) have score 0 in ``r``/``f``/``m`` and segment code -1.

    Attributes:
        metrics: the snapshot scored.
        policy: the policy used.
        scored: mask of scored customers; ``n`` is their number.
        r, f, m: int8 scores (0: unscored).
        segment_codes: int8 index into ``segment_names`` (-1: unscored or no map).
        cut_points: per dimension (``"r"``, ``"f"``, ``"m"``) the cut points used.
    """

    def __init__(
        self,
        metrics: CustomerMetrics,
        policy: RfmPolicy,
        scored: BoolArray,
        scores: Mapping[str, ScoreArray],
        cut_points: Mapping[str, CutPoints],
    ) -> None:
        self.metrics = metrics
        self.policy = policy
        self.scored = scored
        self.n = int(np.count_nonzero(scored))
        self.r, self.f, self.m = scores["r"], scores["f"], scores["m"]
        self.cut_points = dict(cut_points)
        if policy.segment_map is not None:
            self.segment_codes = policy.segment_map.codes(self.r, self.f, self.m)
            self.segment_names = policy.segment_map.names
        else:
            self.segment_codes = np.full(len(scored), -1, dtype=np.int8)
            self.segment_names = ()

    @property
    def as_of(self) -> dt.datetime:
        return self.metrics.as_of

    def __len__(self) -> int:
        return self.metrics.size

    def __repr__(self) -> str:
        return (
            f"RfmResult(as_of={self.as_of.isoformat()}, customers={len(self)}, scored={self.n}, "
            f"k={self.policy.k}, ties={self.policy.ties!r})"
        )

    def segments(self) -> ObjectArray:
        """Segment name per row (``None`` for unscored customers)."""
        lookup = np.array([*self.segment_names, None], dtype=object)
        return lookup[self.segment_codes]

    def counts(self) -> dict[str, int]:
        """Customers per segment name, and the unscored ones under ``"unscored"``."""
        tally = np.bincount(
            self.segment_codes.astype(np.int64) + 1, minlength=1 + len(self.segment_names)
        )
        out = {name: int(tally[i + 1]) for i, name in enumerate(self.segment_names)}
        out["unscored"] = int(len(self) - self.n)
        return out

    def row_of(self, number: CrmNumber) -> int:
        """The row of a customer.

        Raises:
            NotFound: the customer is not in the snapshot.
        """
        hits = np.flatnonzero(self.metrics.numbers() == number)
        if len(hits) == 0:
            raise NotFound("customer", number)
        return int(hits[0])

    def explain(self, number: CrmNumber) -> RfmScore:
        """One customer's inputs, scores, segment, and the cut points and policy behind them."""
        row = self.row_of(number)
        scored = bool(self.scored[row])
        code = int(self.segment_codes[row])
        return RfmScore(
            customer=number,
            as_of=self.as_of,
            recency_days=int(self.metrics.recency_days[row]) if scored else None,
            frequency=int(self.metrics.frequency[row]),
            monetary=int(self.metrics.monetary[row]),
            r=int(self.r[row]) if scored else None,
            f=int(self.f[row]) if scored else None,
            m=int(self.m[row]) if scored else None,
            segment=self.segment_names[code] if code >= 0 else None,
            policy=self.policy,
            cut_points=self.cut_points,
        )

    def score_one(
        self,
        recency_days: int | None,
        frequency: int,
        monetary: int,
        *,
        customer: CrmNumber | None = None,
        as_of: dt.datetime | None = None,
    ) -> RfmScore:
        """Score one customer's current values against this result's cut points.

        This is the incremental path: O(k) for the changed customer, nobody else is
        rescored. ``recency_days`` ``None`` (no purchase) means unscored.
        """
        scored = recency_days is not None
        r = f = m = None
        segment = None
        if recency_days is not None:
            key = None if customer is None else customer.value
            r = self.cut_points["r"].score(recency_days, key)
            f = self.cut_points["f"].score(frequency, key)
            m = self.cut_points["m"].score(monetary, key)
            if self.policy.segment_map is not None:
                segment = self.policy.segment_map.name(r, f, m)
        return RfmScore(
            customer=customer,
            as_of=as_of or self.as_of,
            recency_days=recency_days if scored else None,
            frequency=frequency,
            monetary=monetary,
            r=r,
            f=f,
            m=m,
            segment=segment,
            policy=self.policy,
            cut_points=self.cut_points,
        )

    def to_pandas(self) -> Any:
        """A pandas DataFrame: crm_number, inputs, r, f, m, segment (``dataframes`` extra)."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "crm_number": [n.value for n in self.metrics.numbers()],
                "recency_days": pd.Series(self.metrics.recency_days, dtype="Int64").mask(
                    ~self.scored
                ),
                "frequency": self.metrics.frequency,
                "monetary": self.metrics.monetary,
                "r": self.r,
                "f": self.f,
                "m": self.m,
                "segment": self.segments(),
            }
        )
        return frame


def score_rfm(metrics: CustomerMetrics, policy: RfmPolicy | None = None) -> RfmResult:
    """Score every customer of a snapshot (vectorised; no per-customer Python).

    Args:
        metrics: a snapshot holding ``recency_days``, ``frequency`` and ``monetary``.
        policy: how to score (default :class:`RfmPolicy`).

    Returns:
        The scores, segments and cut points.

    Raises:
        ConfigurationError: the snapshot lacks one of the three fields.
    """
    policy = policy or RfmPolicy()
    scored = metrics.scored
    every = bool(scored.all())
    scores: dict[str, ScoreArray] = {}
    cut_points: dict[str, CutPoints] = {}
    order: Int64Array | None = None
    for dim, name, direction in DIMENSIONS:
        cut_numbers: tuple[str | None, ...] = ()
        column = metrics.column(name)
        values = column if every else column[scored]
        scale = policy.scale(dim)
        if scale is not None:
            part = scale.scores(values, direction)
            cuts: tuple[int, ...] = scale.bounds
            method, k = "threshold", scale.k
        elif policy.ties == "shared":
            part, cut_array = shared_scores(values, policy.k, direction)
            cuts, method, k = tuple(cut_array.tolist()), "quantile-shared", policy.k
        else:
            if order is None:
                full_order = metrics.number_order()
                order = full_order if every else full_order[scored]
            ranked = ordinal_order(values, direction, order)
            part, cut_array = ordinal_scores(values, policy.k, direction, order, ranked)
            cuts, method, k = tuple(cut_array.tolist()), "quantile-ordinal", policy.k
            held = metrics.numbers() if every else metrics.numbers()[scored]
            n = len(values)
            positions = cut_ranks(n, k) if n else []
            cut_numbers = tuple(None if p >= n else held[ranked[p]].value for p in positions)
        if every:
            scores[dim] = part
        else:
            full = np.zeros(metrics.size, dtype=np.int8)
            full[scored] = part
            scores[dim] = full
        cut_points[dim] = CutPoints(name, method, direction, cuts, k, cut_numbers)
    return RfmResult(metrics, policy, scored, scores, cut_points)
