"""The analytics use cases on the in-memory store: RFM, segment runs, lifecycle, refresh."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from crmcore import (
    Crm,
    FixedClock,
    InMemoryStore,
    LifecycleStage,
    Money,
    SalesChannel,
    Segment,
    Transaction,
    TransactionKind,
)
from crmcore.analytics import RfmPolicy, ThresholdScale
from crmcore.analytics._lifecycle import LifecyclePolicy
from crmcore.analytics._value import (
    BgNbdParameters,
    churn_risk,
    historical_value,
    probability_alive,
)
from crmcore.errors import ConfigurationError, DuplicateError
from crmcore.events import SegmentEntered, SegmentExited, StageChanged
from crmcore.services import Analytics

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def buy(crm: Crm, number, days_ago: float, amount: int = 10, kind=TransactionKind.PURCHASE):
    crm.record_transaction(
        Transaction(
            customer=number,
            occurred_at=NOW - dt.timedelta(days=days_ago),
            kind=kind,
            total=Money(Decimal(amount), "USD"),
            channel=SalesChannel.ONLINE,
        )
    )


@pytest.fixture
def crm() -> Crm:
    return Crm(InMemoryStore(), clock=FixedClock(NOW))


def test_rfm_keeps_customers_without_purchases_apart(crm):
    lead = crm.register("Lead")
    buyer = crm.register("Buyer")
    buy(crm, buyer.number, 3)
    result = Analytics(crm).rfm(NOW)
    assert result.n == 1
    assert result.explain(lead.number).scored is False
    assert result.explain(lead.number).segment is None
    # Shared ties: nobody is strictly worse than a lone customer, so rank_min = 1 -> score 1.
    explained = result.explain(buyer.number)
    assert (explained.r, explained.f, explained.m, explained.segment) == (1, 1, 1, "Lost")
    assert result.counts()["unscored"] == 1


def test_refunds_reduce_monetary_but_are_not_purchases(crm):
    c = crm.register("C")
    buy(crm, c.number, 10, 100)
    buy(crm, c.number, 5, 30, TransactionKind.REFUND)
    explained = Analytics(crm).rfm(NOW).explain(c.number)
    assert (explained.frequency, explained.monetary, explained.recency_days) == (1, 7000, 10)


def test_threshold_policy_reports_its_bounds(crm):
    c = crm.register("C")
    buy(crm, c.number, 40)
    policy = RfmPolicy(recency=ThresholdScale((30, 90, 180, 365)))
    explained = Analytics(crm).rfm(NOW, policy).explain(c.number)
    assert explained.r == 4
    assert explained.cut_points["r"].method == "threshold"
    assert explained.cut_points["r"].cuts == (30, 90, 180, 365)


def test_a_map_of_the_wrong_shape_is_rejected():
    with pytest.raises(ConfigurationError, match="segment map"):
        RfmPolicy(k=4)


def test_segment_runs_save_memberships_and_emit_entered_and_exited(crm):
    a, b = crm.register("A", tags=["vip"]), crm.register("B")
    with crm.store.unit_of_work() as uow:
        uow.segments.save(Segment("vip-buyers", '"vip" in tags and frequency >= 1'))
        uow.commit()
    events = []
    crm.subscribe(events.append)
    analytics = Analytics(crm)
    buy(crm, a.number, 2)
    first = analytics.run_segment("vip-buyers", NOW)
    assert first.entered == {a.number} and first.exited == frozenset()
    assert [type(e) for e in events if not hasattr(e, "transaction_id")] == [SegmentEntered]
    customer = crm.get(a.number)
    customer.tags = frozenset()
    crm.update(customer)
    second = analytics.run_segment("vip-buyers", NOW + DAY)
    assert second.exited == {a.number} and second.previous_as_of == NOW
    assert isinstance(events[-1], SegmentExited) and events[-1].customer == a.number
    with crm.store.unit_of_work() as uow:
        latest = uow.segments.latest_membership("vip-buyers")
    assert latest is not None and latest.members == frozenset()
    with pytest.raises(DuplicateError):
        analytics.run_segment("vip-buyers", NOW + DAY)
    assert b.number not in first.membership.members


def test_reclassify_walks_allowed_paths_and_records_reasons(crm):
    lapsed = crm.register("Lapsed")
    buy(crm, lapsed.number, 400)
    steady = crm.register("Steady")
    for days in (5, 20, 35):
        buy(crm, steady.number, days)
    events = []
    crm.subscribe(events.append)
    moves = {m.customer: m for m in Analytics(crm).reclassify(LifecyclePolicy(), NOW)}
    assert [c.to_stage for c in moves[lapsed.number].changes] == [
        LifecycleStage.NEW,
        LifecycleStage.CHURNED,
    ]
    assert "400 days" in moves[lapsed.number].changes[1].reason
    assert [c.to_stage for c in moves[steady.number].changes] == [
        LifecycleStage.NEW,
        LifecycleStage.ACTIVE,
    ]
    assert sum(isinstance(e, StageChanged) for e in events) == 4
    assert crm.get(lapsed.number).stage is LifecycleStage.CHURNED


def test_a_churned_customer_who_buys_twice_is_reactivated_then_active(crm):
    c = crm.register("C")
    buy(crm, c.number, 500)
    analytics = Analytics(crm)
    analytics.reclassify(as_of=NOW)
    later = NOW + 10 * DAY
    crm.clock = FixedClock(later)
    buy(crm, c.number, -5)
    buy(crm, c.number, -8)
    moves = analytics.reclassify(as_of=later)
    assert [ch.to_stage for ch in moves[0].changes] == [
        LifecycleStage.REACTIVATED,
        LifecycleStage.ACTIVE,
    ]
    assert moves[0].changes[0].reason == "purchase after churn"


def test_refresh_scores_one_customer_against_the_last_cut_points(crm):
    numbers = [crm.register(f"C{i}").number for i in range(10)]
    for i, number in enumerate(numbers):
        buy(crm, number, 10 * i + 1, 10 + i)
    with crm.store.unit_of_work() as uow:
        uow.segments.save(Segment("recent", "recency_days <= 3"))
        uow.commit()
    analytics = Analytics(crm)
    before = analytics.rfm(NOW)
    slow = numbers[-1]
    assert before.explain(slow).r == 1
    buy(crm, slow, 0.5, 1000)
    refreshed = analytics.refresh(slow, NOW, policy=LifecyclePolicy())
    assert refreshed.rfm is not None
    assert (refreshed.rfm.r, refreshed.rfm.f) == (5, 5)
    assert refreshed.segments == {"recent": True}
    assert [c.to_stage for c in refreshed.stage_changes] == [
        LifecycleStage.NEW,
        LifecycleStage.ACTIVE,
    ]
    # The same customer in a full rerun scores the same against unchanged cut points.
    full = analytics.rfm(NOW)
    assert full.explain(slow).r == refreshed.rfm.r


def test_historical_snapshots_ignore_later_transactions(crm):
    c = crm.register("C")
    buy(crm, c.number, 30, 10)
    buy(crm, c.number, 1, 20)
    analytics = Analytics(crm)
    past = analytics.snapshot(NOW - 10 * DAY, ["frequency", "monetary", "recency_days"])
    assert (past.frequency[0], past.monetary[0], past.recency_days[0]) == (1, 1000, 20)


def test_value_and_churn_formulas(crm):
    c = crm.register("C")
    for days in (100, 70, 40):
        buy(crm, c.number, days, 30)
    metrics = Analytics(crm).snapshot(NOW)
    # typical gap 30 days, 40 days since the last purchase: overdue 4/3 -> risk (4/3-1)/3.
    assert churn_risk(metrics)[0] == pytest.approx((40 / 30 - 1) / 3)
    value = historical_value(metrics)
    assert int(value["net"][0]) == 9000 and value["average_order"][0] == pytest.approx(3000)
    alive = probability_alive(metrics, BgNbdParameters(r=0.24, alpha=4.41, a=0.79, b=2.43))
    x, t_x, big_t = 2, 60 / 7, 100 / 7
    expected = 1 / (1 + 0.79 / (2.43 + x - 1) * ((4.41 + big_t) / (4.41 + t_x)) ** (0.24 + x))
    assert alive[0] == pytest.approx(expected)
    assert np.isnan(
        probability_alive(Analytics(crm).snapshot(NOW - 200 * DAY), BgNbdParameters(1, 1, 1, 1))[0]
    )
