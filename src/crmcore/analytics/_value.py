"""Churn risk, BG/NBD probability alive, historical value and engagement (formulas in
``docs/analytics.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore._epoch import MICROS_PER_DAY
from crmcore.analytics._metrics import CustomerMetrics, Int64Array
from crmcore.domain import InteractionChannel
from crmcore.errors import ValidationError

__all__ = [
    "VALUE_FIELDS",
    "BgNbdParameters",
    "FloatArray",
    "churn_risk",
    "engagement",
    "historical_value",
    "probability_alive",
]

FloatArray = npt.NDArray[np.float64]
VALUE_FIELDS: Final = frozenset(
    {"recency_days", "frequency", "monetary", "first_purchase_at", "last_purchase_at"}
)


def _span_days(metrics: CustomerMetrics) -> FloatArray:
    span = metrics.column("last_purchase_at") - metrics.column("first_purchase_at")
    return np.where(metrics.missing("recency_days"), 0, span) / MICROS_PER_DAY


def churn_risk(
    metrics: CustomerMetrics, *, default_gap_days: float = 90.0, min_purchases: int = 3
) -> FloatArray:
    """Rule-based churn risk: how overdue the next purchase is, clipped to 0..1.

    ``overdue = recency_days / expected_gap`` where the expected gap is the customer's own
    typical gap ``(last - first) / (frequency - 1)`` days when ``frequency >= min_purchases``
    (and the gap is positive), else ``default_gap_days``; ``risk = clip((overdue - 1) / 3,
    0, 1)``: 0 up to one expected gap, 1 at four gaps or more. NaN for customers without a
    purchase.
    """
    if default_gap_days <= 0:
        raise ValidationError("default_gap_days", default_gap_days, "must be positive")
    recency = metrics.column("recency_days").astype(np.float64)
    frequency = metrics.column("frequency")
    own = _span_days(metrics) / np.maximum(frequency - 1, 1)
    expected = np.where((frequency >= min_purchases) & (own > 0), own, default_gap_days)
    risk = np.clip((recency / expected - 1.0) / 3.0, 0.0, 1.0)
    risk[metrics.missing("recency_days")] = np.nan
    return risk


@attrs.frozen
class BgNbdParameters:
    """Fitted BG/NBD parameters (Fader, Hardie & Lee 2005) and their time unit.

    Args:
        r, alpha: gamma heterogeneity of the purchase rate.
        a, b: beta heterogeneity of the dropout probability.
        unit_days: the time unit the parameters were fitted in (7: weeks).
    """

    r: float
    alpha: float
    a: float
    b: float
    unit_days: float = 7.0

    def __attrs_post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b", "unit_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValidationError(name, value, "must be a positive number")


def probability_alive(metrics: CustomerMetrics, parameters: BgNbdParameters) -> FloatArray:
    """BG/NBD probability that each customer is still "alive" as of the snapshot.

    With ``x`` repeat purchases (``frequency - 1``), ``t_x`` the time from first to last
    purchase and ``T`` the time from first purchase to ``as_of`` (in ``unit_days``)::

        P(alive | x, t_x, T) = 1 / (1 + [x > 0] * a / (b + x - 1)
                                        * ((alpha + T) / (alpha + t_x)) ** (r + x))

    (Fader, Hardie & Lee, "Counting Your Customers the Easy Way", Marketing Science 24(2),
    2005, eq. (13); Fader & Hardie, "Computing P(alive) using the BG/NBD model", 2008).
    NaN for customers without a purchase.
    """
    p = parameters
    frequency = metrics.column("frequency")
    bought = ~metrics.missing("recency_days")
    first = metrics.column("first_purchase_at")
    unit = p.unit_days * MICROS_PER_DAY
    x = np.maximum(frequency - 1, 0).astype(np.float64)
    t_x = _span_days(metrics) * MICROS_PER_DAY / unit
    big_t = np.where(bought, metrics.as_of_us - first, 0) / unit
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ratio = np.exp((p.r + x) * (np.log(p.alpha + big_t) - np.log(p.alpha + t_x)))
        odds = np.where(x > 0, p.a / (p.b + x - 1) * ratio, 0.0)
        alive = 1.0 / (1.0 + odds)
    alive[~bought] = np.nan
    return alive


def historical_value(metrics: CustomerMetrics) -> dict[str, FloatArray | Int64Array]:
    """Historical value per customer.

    Returns:
        ``net`` (= monetary, purchases minus refunds, minor units, int64),
        ``average_order`` (net / frequency, NaN without purchases) and ``per_year`` (net per
        365 days since the first purchase, at least one day; NaN without purchases).
    """
    net = metrics.column("monetary")
    frequency = metrics.column("frequency")
    bought = ~metrics.missing("recency_days")
    first = metrics.column("first_purchase_at")
    with np.errstate(divide="ignore", invalid="ignore"):
        average = np.where(bought, net / np.maximum(frequency, 1), np.nan)
        days = np.maximum(np.where(bought, metrics.as_of_us - first, 0) / MICROS_PER_DAY, 1.0)
        per_year = np.where(bought, net / days * 365.0, np.nan)
    return {"net": net, "average_order": average, "per_year": per_year}


def engagement(
    size: int,
    as_of_us: int,
    rows: Int64Array,
    occurred_us: Int64Array,
    channels: Int64Array,
    *,
    half_life_days: float = 30.0,
    weights: Mapping[InteractionChannel, float] | None = None,
) -> FloatArray:
    """Recency-weighted interactions: ``sum(weight[channel] * 0.5 ** (age_days / half_life))``.

    Args:
        size: number of customers (rows of the result).
        as_of_us: the snapshot instant; later interactions are ignored.
        rows: the customer row of each interaction.
        occurred_us: when each interaction happened.
        channels: channel code of each interaction (``InteractionChannel`` declaration order).
        half_life_days: age at which an interaction counts half.
        weights: per-channel weight (default 1 for every channel).

    Returns:
        One score per customer (0 without interactions).
    """
    if half_life_days <= 0:
        raise ValidationError("half_life_days", half_life_days, "must be positive")
    table = np.ones(len(InteractionChannel), dtype=np.float64)
    for i, channel in enumerate(InteractionChannel):
        if weights is not None:
            table[i] = float(weights.get(channel, 0.0))
    keep = (occurred_us <= as_of_us) & (rows >= 0)
    age = (as_of_us - occurred_us[keep]) / MICROS_PER_DAY
    contribution = table[channels[keep]] * np.exp2(-age / half_life_days)
    out = np.bincount(rows[keep], weights=contribution, minlength=size)[:size]
    return out.astype(np.float64)
