"""Lifecycle policy: which stage the purchase history says a customer should be in, and why.

Classification is vectorised over a snapshot to find the few customers whose stage should
change (the candidates); the exact path for each candidate is then planned from its own
values and history, one step per allowed transition of :data:`crmcore.domain.TRANSITIONS`.
"""

from __future__ import annotations

from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore._epoch import MICROS_PER_DAY
from crmcore.analytics._metrics import BoolArray, CustomerMetrics, Int64Array
from crmcore.analytics.columns import STAGE_CODES
from crmcore.domain import TRANSITIONS, LifecycleStage
from crmcore.errors import InvalidTransition, ValidationError

__all__ = ["HEALTH", "LIFECYCLE_FIELDS", "LifecyclePolicy", "Step"]

LIFECYCLE_FIELDS: Final = frozenset(
    {"stage", "frequency", "recency_days", "first_purchase_at", "last_purchase_at"}
)
HEALTH: Final = ("none", "healthy", "at_risk", "churned")
"""Health codes: 0 no purchase, 1 healthy, 2 at risk, 3 churned."""

_S = LifecycleStage
Step = tuple[LifecycleStage, str]


def _positive(field: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError(field, value, "must be a positive number")


@attrs.frozen
class LifecyclePolicy:
    """Thresholds that move customers between lifecycle stages.

    A purchasing customer's *health* as of ``as_of``:

    * **churned** if ``recency_days >= churned_days``, or, with a typical gap known,
      ``recency_days >= gap_floor_days`` and ``recency_days > churned_gap_multiple * gap``;
    * else **at risk** if ``recency_days >= at_risk_days``, or, with a typical gap known,
      ``recency_days >= gap_floor_days`` and ``recency_days > at_risk_gap_multiple * gap``;
    * else **healthy**.

    The typical gap is ``(last_purchase_at - first_purchase_at) / (frequency - 1)`` in days,
    known when ``frequency >= min_purchases_for_gap``.

    Stage moves: lead/prospect with a purchase -> new ("first purchase"); new -> active
    after ``active_after_purchases`` purchases while healthy; new/active/reactivated ->
    at_risk or churned by health; at_risk -> active when healthy again (it bought); churned
    -> reactivated on a purchase after the churn, then -> active once
    ``active_after_purchases`` purchases followed the churn. Customers without purchases are
    never moved by the policy.

    Args:
        at_risk_days: days without purchase that make a customer at risk.
        churned_days: days without purchase that make a customer churned.
        at_risk_gap_multiple: at risk beyond this many typical gaps (``None``: off).
        churned_gap_multiple: churned beyond this many typical gaps (``None``: off).
        gap_floor_days: gap-based rules apply only from this many days without purchase.
        min_purchases_for_gap: purchases needed before the typical gap is trusted.
        active_after_purchases: purchases that make a new (or reactivated) customer active.
    """

    at_risk_days: int = 90
    churned_days: int = 365
    at_risk_gap_multiple: float | None = 2.0
    churned_gap_multiple: float | None = 4.0
    gap_floor_days: int = 30
    min_purchases_for_gap: int = 3
    active_after_purchases: int = 2

    def __attrs_post_init__(self) -> None:
        _positive("at_risk_days", self.at_risk_days)
        _positive("churned_days", self.churned_days)
        _positive("at_risk_gap_multiple", self.at_risk_gap_multiple, allow_none=True)
        _positive("churned_gap_multiple", self.churned_gap_multiple, allow_none=True)
        _positive("gap_floor_days", self.gap_floor_days)
        _positive("active_after_purchases", self.active_after_purchases)
        if self.churned_days < self.at_risk_days:
            raise ValidationError("churned_days", self.churned_days, "is below at_risk_days")
        if (
            self.at_risk_gap_multiple is not None
            and self.churned_gap_multiple is not None
            and self.churned_gap_multiple < self.at_risk_gap_multiple
        ):
            raise ValidationError(
                "churned_gap_multiple", self.churned_gap_multiple, "is below at_risk_gap_multiple"
            )
        if self.min_purchases_for_gap < 2:
            raise ValidationError(
                "min_purchases_for_gap", self.min_purchases_for_gap, "must be at least 2"
            )

    # -- health ------------------------------------------------------------------------------

    def health(self, metrics: CustomerMetrics) -> npt.NDArray[np.int8]:
        """Health code per snapshot row (see :data:`HEALTH`), vectorised."""
        recency = metrics.column("recency_days")
        frequency = metrics.column("frequency")
        bought = ~metrics.missing("recency_days")
        span_days = (
            metrics.column("last_purchase_at") - metrics.column("first_purchase_at")
        ) / MICROS_PER_DAY
        known = bought & (frequency >= self.min_purchases_for_gap)
        gaps = np.where(known, span_days / np.maximum(frequency - 1, 1), 0.0)
        floor = recency >= self.gap_floor_days

        def beyond(multiple: float | None) -> BoolArray:
            if multiple is None:
                return np.zeros(len(recency), dtype=np.bool_)
            return known & floor & (recency > multiple * gaps)

        churned = bought & ((recency >= self.churned_days) | beyond(self.churned_gap_multiple))
        at_risk = bought & ((recency >= self.at_risk_days) | beyond(self.at_risk_gap_multiple))
        out = np.where(bought, 1, 0).astype(np.int8)
        out[at_risk] = 2
        out[churned] = 3
        return out

    def health_one(self, recency_days: int | None, frequency: int, span_us: int) -> tuple[int, str]:
        """Health code and its reason for one customer (same arithmetic as :meth:`health`).

        Args:
            recency_days: days since the last purchase (``None``: no purchase).
            frequency: number of purchases.
            span_us: last minus first purchase, in microseconds.
        """
        if recency_days is None:
            return 0, "no purchase"
        gap = None
        if frequency >= self.min_purchases_for_gap:
            gap = (span_us / MICROS_PER_DAY) / max(frequency - 1, 1)
        floor = recency_days >= self.gap_floor_days
        for code, days, multiple in (
            (3, self.churned_days, self.churned_gap_multiple),
            (2, self.at_risk_days, self.at_risk_gap_multiple),
        ):
            if recency_days >= days:
                return code, f"no purchase for {recency_days} days (limit {days})"
            if gap is not None and multiple is not None and floor and recency_days > multiple * gap:
                return code, (
                    f"no purchase for {recency_days} days, over {multiple:g} times the "
                    f"typical gap of {gap:.1f} days"
                )
        return 1, f"last purchase {recency_days} days ago"

    def candidates(self, metrics: CustomerMetrics) -> BoolArray:
        """Rows whose stage the policy may change (a superset; :meth:`plan` decides)."""
        health = self.health(metrics)
        stage = metrics.text("stage").codes
        frequency = metrics.column("frequency")

        def at(s: LifecycleStage) -> BoolArray:
            return stage == STAGE_CODES[s]  # type: ignore[no-any-return]

        bad = health >= 2
        good = health == 1
        enough = frequency >= self.active_after_purchases
        return (  # type: ignore[no-any-return]
            ((at(_S.LEAD) | at(_S.PROSPECT)) & (health > 0))
            | (at(_S.NEW) & (bad | (good & enough)))
            | (at(_S.ACTIVE) & bad)
            | (at(_S.AT_RISK) & (good | (health == 3)))
            | (at(_S.CHURNED) & good)
            | (at(_S.REACTIVATED) & (bad | (good & enough)))
        )

    # -- planning ----------------------------------------------------------------------------

    def plan(
        self,
        stage: LifecycleStage,
        health: int,
        reason: str,
        frequency: int,
        purchases_since_churn: int,
    ) -> list[Step]:
        """The stage changes for one customer, in order, each allowed by the table.

        Args:
            stage: the current stage.
            health: the health code (:meth:`health_one`).
            reason: the health reason.
            frequency: purchases in total.
            purchases_since_churn: purchases after the customer's latest move to churned
                (only used for churned and reactivated customers).

        Returns:
            ``[(to_stage, reason), ...]``, empty when nothing changes.

        Raises:
            InvalidTransition: a planned step the transition table forbids (a policy bug).
        """
        steps: list[Step] = []
        current = stage
        if health == 0:
            return steps
        if current in (_S.LEAD, _S.PROSPECT):
            steps.append((_S.NEW, "first purchase"))
            current = _S.NEW
        target: LifecycleStage | None = None
        why = reason
        if health == 3 and current is not _S.CHURNED:
            target = _S.CHURNED
        elif health == 2 and current in (_S.NEW, _S.ACTIVE, _S.REACTIVATED):
            target = _S.AT_RISK
        elif health == 1:
            if current is _S.NEW and frequency >= self.active_after_purchases:
                target, why = _S.ACTIVE, f"{frequency} purchases"
            elif current is _S.AT_RISK:
                target, why = _S.ACTIVE, f"purchased again ({reason})"
            elif current is _S.CHURNED and purchases_since_churn > 0:
                steps.append((_S.REACTIVATED, "purchase after churn"))
                current = _S.REACTIVATED
            if current is _S.REACTIVATED and purchases_since_churn >= self.active_after_purchases:
                target, why = _S.ACTIVE, f"{purchases_since_churn} purchases since churn"
        if target is not None and target is not current:
            steps.append((target, why))
        previous = stage
        for to_stage, _ in steps:
            if to_stage not in TRANSITIONS[previous]:
                raise InvalidTransition(previous, to_stage)
            previous = to_stage
        return steps


def span_us(metrics: CustomerMetrics) -> Int64Array:
    """Last minus first purchase in microseconds (0 without purchases)."""
    span = metrics.column("last_purchase_at") - metrics.column("first_purchase_at")
    return np.where(metrics.missing("recency_days"), 0, span)
