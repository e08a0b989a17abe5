"""Analytics' view of a store: snapshots, single rows, rule members and RFM scores.

A store's ``metrics_source()`` (a :class:`~crmcore.analytics.MetricsSource`) must give
snapshots equal to the fold of the history it stores; when it also selects rule members or
scores RFM itself (the optional ``RuleSelector`` and ``RfmScorer`` capabilities of
``crmcore.analytics.ports``, which SQL stores offer), it must agree with numpy to the last
customer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Iterator
from typing import Any, Final, Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore.analytics import (
    FIELDS,
    RFM_FIELDS,
    CustomerMetrics,
    MetricsSource,
    RfmPolicy,
    Rule,
    ThresholdScale,
    compile_predicate,
    evaluate,
    score_rfm,
)
from crmcore.analytics.ports import RfmScorer, RuleSelector, SavedRules
from crmcore.clock import FixedClock
from crmcore.domain import CrmNumber, Money, Segment, Transaction, TransactionKind
from crmcore.errors import ErasedError, NotFound
from crmcore.ports import Store
from crmcore.services import Analytics, Crm
from crmcore.testing import strategies as cst
from crmcore.testing.contract._support import (
    HISTORY_HIGH,
    HISTORY_LOW,
    HISTORY_TAGS,
    PROPERTY_SETTINGS,
    History,
    StoreFixture,
    fill_history,
    histories,
    reference_rows,
)

__all__ = ["RULES_PER_STORE", "RULE_STORES", "MetricsSourceContract"]

RULES_PER_STORE: Final = int(os.environ.get("CRMCORE_SQL_RULES_PER_STORE", "120"))
"""Generated rules checked per generated store, on average: ``CRMCORE_SQL_RULES_PER_STORE``
(default 120; crmcore's CI sets 840)."""
RULE_STORES: Final = 12
"""Generated stores' worth of rules the rule case checks: ``RULE_STORES * RULES_PER_STORE``
rules per store class in all (1,440 by default, 10,080 in crmcore's CI)."""
_RULE_BATCH: Final = min(RULES_PER_STORE, 120)
# Hypothesis draws at most a few hundred rules per example (its input size limit), so large
# budgets run more examples of 120 rules each instead of more rules per example.
_RULE_EXAMPLES: Final = max(1, math.ceil(RULE_STORES * RULES_PER_STORE / _RULE_BATCH))

HIGH = HISTORY_HIGH


def _by_number(metrics: CustomerMetrics) -> dict[str, dict[str, Any]]:
    return {n.value: metrics.row(i) for i, n in enumerate(metrics.numbers())}


@st.composite
def _policies(draw: st.DrawFn) -> RfmPolicy:
    k = draw(st.integers(2, 7))
    ties = draw(st.sampled_from(["shared", "ordinal"]))
    frequency = draw(st.none() | st.just(ThresholdScale((2, 4, 8))))
    if k == 5 and frequency is None:
        return RfmPolicy(k=k, ties=ties)
    return RfmPolicy(k=k, ties=ties, frequency=frequency, segment_map=None)


def _source(store: Store) -> MetricsSource:
    return store.metrics_source()


class MetricsSourceContract(StoreFixture):
    """What a store's ``metrics_source()`` must do, as pytest test methods.

    Apply it like :class:`~crmcore.testing.contract.StoreContract` to a store that has a
    ``metrics_source()`` method. The property cases record a generated history in an empty
    store for every example: by default each example makes its own store with
    :meth:`make_store` (and closes it); a store that is slow to create can instead override
    :meth:`empty_store` to delete its rows, and the case's store is reused.

    The rule case checks ``RULE_STORES * RULES_PER_STORE`` generated rules
    (:func:`crmcore.testing.strategies.rules`) per store class: 1,440 by default; the
    environment variable ``CRMCORE_SQL_RULES_PER_STORE`` raises :data:`RULES_PER_STORE`.
    """

    ROWS_IN_NUMBER_ORDER = False
    """Set to True if snapshots list customers in CRM-number order (crmcore's SQL stores
    do; the in-memory store lists them in the order they were added), to check that too."""

    def _check_order(self, metrics: CustomerMetrics, expected: dict[str, Any]) -> None:
        listed = [n.value for n in metrics.numbers()]
        assert sorted(listed) == sorted(expected)
        if self.ROWS_IN_NUMBER_ORDER:
            assert listed == sorted(expected)

    def empty_store(self, store: Store) -> bool:
        """Delete everything ``store`` holds and return True, or return False (the default)
        to have every example make a new store instead."""
        return False

    @contextlib.contextmanager
    def _empty(self, store: Store) -> Iterator[Store]:
        if self.empty_store(store):
            yield store
            return
        fresh = self.make_store()
        try:
            yield fresh
        finally:
            self.close_store(fresh)

    def _draw_history(self, data: st.DataObject, store: Store) -> History:
        return data.draw(histories(store.reporting_currency), label="history")

    # -- snapshots ---------------------------------------------------------------------------

    @settings(PROPERTY_SETTINGS, max_examples=20)
    @given(data=st.data())
    def test_snapshots_equal_the_fold_of_the_stored_history(
        self, store: Store, data: st.DataObject
    ) -> None:
        history = self._draw_history(data, store)
        one_field = data.draw(st.sampled_from(sorted(FIELDS)), label="one field")
        with self._empty(store) as empty:
            fill_history(empty, history)
            as_of = history.as_of
            expected = reference_rows(empty, as_of)
            source = _source(empty)
            got = source.snapshot(as_of)
            assert _by_number(got) == expected
            self._check_order(got, expected)
            narrow = source.snapshot(as_of, ["recency_days", "owner", "tags"])
            assert narrow.fields == {"crm_number", "recency_days", "owner", "tags"}
            for number, row in _by_number(narrow).items():
                assert row == {k: expected[number][k] for k in row}
            # Without the per-channel counts a store may read one customer's row from its
            # maintained aggregates (the refresh after a new event); all of them: the history.
            maintained = sorted(f for f in FIELDS if not f.startswith("interactions_"))
            for number, row in expected.items():
                assert source.customer_row(CrmNumber(number), as_of) == row
                narrow_row = source.customer_row(CrmNumber(number), as_of, maintained)
                assert narrow_row == {k: row[k] for k in maintained}
            # Without text profile fields and the consent ledger PostgreSQL packs the
            # snapshot server-side (_pgpack).
            numeric = sorted(set(FIELDS) - {"gender", "owner", "country", "consents"})
            subsets = (RFM_FIELDS, ["frequency", "tags", "stage", "birth_year"], numeric)
            for fields in (*subsets, [one_field]):
                packed = source.snapshot(as_of, fields)
                self._check_order(packed, expected)
                for number, row in _by_number(packed).items():
                    assert row == {k: expected[number][k] for k in row}

    def test_customer_row_of_a_missing_or_erased_customer_raises(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(HIGH))
        kept = crm.register("Ann").number
        gone = crm.register("Bob").number
        crm.erase(gone)
        source = _source(store)
        assert source.customer_row(kept, HIGH, ["frequency"]) == {"frequency": 0}
        with pytest.raises(ErasedError):
            source.customer_row(gone, HIGH)
        with pytest.raises(NotFound):
            source.customer_row(store.scheme.format(999_999), HIGH)
        assert list(source.snapshot(HIGH, ["frequency"]).numbers()) == [kept]

    def test_refresh_tests_every_saved_segment(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(HIGH))
        ann = crm.register("Ann", tags=["vip"]).number
        analytics = Analytics(crm)
        analytics.define_segment("vips", '"vip" in tags')
        analytics.define_segment("buyers", "frequency >= 1")
        with store.unit_of_work() as uow:
            saved = [(s.name, s.effective_rule) for s in uow.segments.list()]
        source = _source(store)
        if isinstance(source, SavedRules):
            assert source.saved_rules() == saved
        refreshed = analytics.refresh(ann, HIGH)
        assert refreshed.segments == {"vips": True, "buyers": False}
        analytics.delete_segment("vips")
        assert analytics.refresh(ann, HIGH).segments == {"buyers": False}

    # -- rules -------------------------------------------------------------------------------

    @settings(PROPERTY_SETTINGS, max_examples=_RULE_EXAMPLES)
    @given(
        data=st.data(),
        rules=st.lists(
            cst.rules(
                tag_names=st.sampled_from([*HISTORY_TAGS, "VIP", "vip "]),
                min_instant=HISTORY_LOW,
                max_instant=HISTORY_HIGH,
            ),
            min_size=_RULE_BATCH,
            max_size=_RULE_BATCH,
        ),
    )
    def test_rule_members_equal_the_numpy_mask_and_the_predicate(
        self, store: Store, data: st.DataObject, rules: list[Rule]
    ) -> None:
        history = self._draw_history(data, store)
        with self._empty(store) as empty:
            fill_history(empty, history)
            as_of = history.as_of
            source = _source(empty)
            metrics = source.snapshot(as_of)
            numbers = metrics.numbers()
            rows = [metrics.row(i) for i in range(len(metrics))]
            single = [source.customer_row(n, as_of) for n in numbers]
            named = {f"r{i}": rule for i, rule in enumerate(rules)}
            selected = source.members(named, as_of) if isinstance(source, RuleSelector) else None
            for name, rule in named.items():
                mask = evaluate(rule, metrics)
                predicate = compile_predicate(rule, as_of)
                assert [predicate(row) for row in rows] == mask.tolist(), str(rule)
                assert [predicate(row) for row in single] == mask.tolist(), str(rule)
                if selected is not None:
                    assert selected[name] == frozenset(numbers[mask].tolist()), str(rule)

    def test_documented_null_and_literal_semantics(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(HIGH))
        ann = crm.register("Ann", tags=["vip"], owner="50%_off").number
        bob = crm.register("Bob", owner="50xyoff").number
        cat = crm.register("Cat").number
        analytics = Analytics(crm)
        assert analytics.evaluate('owner.contains("%_")') == {ann}
        assert analytics.evaluate('owner.startswith("50%")') == {ann}
        assert analytics.evaluate('owner != "50%_off"') == {bob}
        assert analytics.evaluate('owner not in ["x"]') == {ann, bob}
        assert analytics.evaluate("not recency_days <= 30") == {ann, bob, cat}
        assert analytics.evaluate("recency_days <= 30 or recency_days > 30") == frozenset()
        assert analytics.evaluate('"vip" in tags and owner is not None') == {ann}
        assert analytics.evaluate('"VIP" in tags') == frozenset()

    def test_a_segment_requiring_consent_never_holds_a_customer_without_it(
        self, store: Store
    ) -> None:
        crm = Crm(store, clock=FixedClock(HIGH))
        hour = dt.timedelta(hours=1)
        t0 = HIGH - 10 * hour
        names = ("none", "email", "every", "withdrawn", "sms", "expired", "spam")
        who = {name: crm.register(name, tags=["vip"]).number for name in names}
        crm.grant_consent(who["email"], "marketing", "email", at=t0)
        crm.grant_consent(who["every"], "marketing", at=t0)
        crm.grant_consent(who["withdrawn"], "marketing", at=t0)
        crm.withdraw_consent(who["withdrawn"], "marketing", "email", at=t0 + hour)
        crm.grant_consent(who["sms"], "marketing", "sms", at=t0)
        crm.grant_consent(who["expired"], "marketing", "email", at=t0, expires_at=t0 + hour)
        crm.grant_consent(who["spam"], "newsletter", "email", at=t0)
        analytics = Analytics(crm)
        segment = analytics.define_segment(
            "mailing", '"vip" in tags', requires_consent=("marketing", "email")
        )
        assert analytics.segment("mailing") == segment
        assert segment.requires_consent == ("marketing", "email")
        consenting = {who["email"], who["every"]}
        first = analytics.run_segment("mailing", t0 + 2 * hour)
        assert first.membership.members == consenting
        assert analytics.evaluate(segment.effective_rule, t0 + 2 * hour) == consenting
        for name, number in who.items():
            refreshed = analytics.refresh(number, HIGH)
            assert refreshed.segments["mailing"] is (number in consenting), name
        # Withdrawing is enough: the next run drops the customer, and reports it left.
        crm.withdraw_consent(who["every"], "marketing", at=t0 + 3 * hour)
        second = analytics.run_segment("mailing", t0 + 4 * hour)
        assert second.membership.members == {who["email"]}
        assert second.exited == {who["every"]}
        assert analytics.refresh(who["every"], HIGH).segments["mailing"] is False
        every_channel = analytics.define_and_run_segment(
            "all-channels", '"vip" in tags', t0 + 4 * hour, requires_consent=("marketing",)
        )
        # Only the every-channel decision counts (an e-mail withdrawal leaves it granted).
        assert every_channel.membership.members == {who["withdrawn"]}
        crm.grant_consent(who["none"], "marketing", at=t0 + 5 * hour)
        latest = analytics.run_segment("all-channels", HIGH).membership.members
        assert latest == {who["withdrawn"], who["none"]}

    def test_segment_runs_select_members_through_the_stores_source(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(HIGH))
        ann = crm.register("Ann", tags=["vip"]).number
        crm.register("Bob")
        with store.unit_of_work() as uow:
            uow.segments.save(Segment(name="vips", rule='"vip" in tags'))
            uow.commit()
        analytics = Analytics(crm)
        assert isinstance(analytics.source, type(_source(store)))
        (run,) = analytics.run_segments(["vips"], HIGH)
        assert run.membership.members == {ann}
        assert run.entered == {ann}

    # -- RFM ---------------------------------------------------------------------------------

    @settings(PROPERTY_SETTINGS, max_examples=20)
    @given(data=st.data())
    def test_rfm_scores_equal_the_numpy_scores(self, store: Store, data: st.DataObject) -> None:
        history = self._draw_history(data, store)
        policy = data.draw(_policies(), label="policy")
        with self._empty(store) as empty:
            crm = fill_history(empty, history)
            as_of = history.as_of
            source = _source(empty)
            expected = score_rfm(source.snapshot(as_of, RFM_FIELDS), policy)
            results = [Analytics(crm).rfm(as_of, policy)]
            if isinstance(source, RfmScorer):
                results.append(Analytics(crm).rfm(as_of, policy, engine="sql"))
                results.append(source.score_rfm(as_of, policy))
            order = {n.value: i for i, n in enumerate(expected.metrics.numbers())}
            for result in results:
                rows = np.array([order[n.value] for n in result.metrics.numbers()], dtype=np.int64)
                assert len(rows) == len(expected)
                for dim in ("r", "f", "m"):
                    got = getattr(result, dim).tolist()
                    assert got == getattr(expected, dim)[rows].tolist(), dim
                assert result.segment_codes.tolist() == expected.segment_codes[rows].tolist()
                assert result.scored.tolist() == expected.scored[rows].tolist()
                assert result.cut_points == expected.cut_points

    def test_rfm_ties_and_refunds_by_hand(self, store: Store) -> None:
        crm = Crm(store, clock=FixedClock(HIGH))
        people = [crm.register(name).number for name in ("A", "B", "C", "D", "E")]
        crm.register("Lead")
        day = dt.timedelta(days=1)
        currency = store.reporting_currency
        for i, number in enumerate(people):
            crm.record_transaction(
                Transaction(
                    customer=number,
                    occurred_at=HIGH - day * (i // 2),
                    kind=TransactionKind.PURCHASE,
                    total=Money.from_minor_units(1000, currency),
                )
            )
        crm.record_transaction(
            Transaction(
                customer=people[0],
                occurred_at=HIGH,
                kind=TransactionKind.REFUND,
                total=Money.from_minor_units(1500, currency),
            )
        )
        source = _source(store)
        engine: Literal["numpy", "sql"] = "sql" if isinstance(source, RfmScorer) else "numpy"
        for ties in ("shared", "ordinal"):
            policy = RfmPolicy(ties=ties)
            in_db = Analytics(crm).rfm(HIGH, policy, engine=engine)
            reference = score_rfm(source.snapshot(HIGH, RFM_FIELDS), policy)
            assert in_db.r.tolist() == reference.r.tolist()
            assert in_db.m.tolist() == reference.m.tolist()
            assert in_db.cut_points == reference.cut_points
            assert in_db.counts()["unscored"] == 1
        assert int(in_db.metrics.monetary[0]) == -500
