"""Analytics use cases: score, segment, reclassify, and refresh one customer incrementally.

Snapshots come from the store's :class:`~crmcore.analytics.MetricsSource` (its
``metrics_source()``), are taken outside any unit of work, and the writes that follow (segment
runs, stage changes) happen in one unit of work each, publishing their events after commit.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final, Literal, cast

import attrs
import numpy as np

from crmcore._epoch import to_us
from crmcore.analytics import (
    LIFECYCLE_FIELDS,
    RFM_FIELDS,
    CustomerMetrics,
    LifecyclePolicy,
    RfmPolicy,
    RfmResult,
    RfmScore,
    Rule,
    compile_predicate,
    evaluate,
    parse_rule,
    score_rfm,
)
from crmcore.analytics.ports import MetricsSource, RfmScorer, RuleSelector, SavedRules
from crmcore.domain import (
    AuditAction,
    AuditEntity,
    CrmNumber,
    Customer,
    LifecycleStage,
    Segment,
    SegmentEntered,
    SegmentExited,
    SegmentMembership,
    StageChange,
    TransactionKind,
)
from crmcore.domain._checks import aware_utc
from crmcore.errors import ConfigurationError
from crmcore.ports import UnitOfWork
from crmcore.services._context import stage_changed
from crmcore.services._crm import Crm
from crmcore.services._predictive import Predictions

__all__ = ["Analytics", "CustomerRefresh", "SegmentRun", "StageMove"]

_CUSTOMERS: Final = AuditEntity.CUSTOMER


@attrs.frozen
class SegmentRun:
    """One evaluation of a saved segment.

    Attributes:
        membership: the saved snapshot ``(segment, as_of, members)``.
        entered: customers in this run but not in the previous one.
        exited: customers in the previous run but not in this one.
        previous_as_of: when the previous run was (``None``: first run).
    """

    membership: SegmentMembership
    entered: frozenset[CrmNumber]
    exited: frozenset[CrmNumber]
    previous_as_of: dt.datetime | None


@attrs.frozen
class StageMove:
    """The lifecycle changes applied to one customer by a reclassification."""

    customer: CrmNumber
    changes: tuple[StageChange, ...]


@attrs.frozen
class CustomerRefresh:
    """One customer's metrics, scores, segment matches and stage after a change.

    Attributes:
        customer: the customer.
        metrics: field -> value as of ``as_of``.
        rfm: scores against the last full run's cut points (``None`` before any run).
        segments: saved segment name -> whether the customer matches it now.
        stage_changes: lifecycle changes applied (empty when none was needed or no policy).
    """

    customer: CrmNumber
    as_of: dt.datetime
    metrics: dict[str, Any]
    rfm: RfmScore | None
    segments: dict[str, bool]
    stage_changes: tuple[StageChange, ...]


class Analytics(Predictions):
    """Scoring and segmentation use cases over one :class:`~crmcore.Crm`.

    Example::

        analytics = Analytics(crm)
        result = analytics.rfm()                      # scores + named segments
        run = analytics.run_segment("vip-lapsed")     # saved, with entered/exited

    Args:
        crm: the facade (its store, clock and event subscribers are used).
        source: where snapshots come from (default: ``crm.store.metrics_source()``).
    """

    def __init__(self, crm: Crm, source: MetricsSource | None = None) -> None:
        self.crm = crm
        self.context = crm.context
        self.source = source if source is not None else crm.store.metrics_source()
        self.last_rfm: RfmResult | None = None

    def __repr__(self) -> str:
        return f"Analytics(crm={self.crm!r})"

    def _as_of(self, as_of: dt.datetime | None) -> dt.datetime:
        return self.context.now() if as_of is None else aware_utc("as_of", as_of)

    # -- snapshots and scores ---------------------------------------------------------------

    def snapshot(
        self, as_of: dt.datetime | None = None, fields: Collection[str] | None = None
    ) -> CustomerMetrics:
        """The metrics of every customer as of ``as_of`` (default: now).

        Args:
            as_of: aware instant; later transactions and interactions do not count.
            fields: fields to compute (``None``: all; fewer is faster).
        """
        self.context.authorize(AuditAction.SNAPSHOT, _CUSTOMERS)
        metrics = self._snapshot(as_of, fields)
        self._audited(AuditAction.SNAPSHOT, len(metrics))
        return metrics

    def _snapshot(
        self, as_of: dt.datetime | None, fields: Collection[str] | None
    ) -> CustomerMetrics:
        return self.source.snapshot(self._as_of(as_of), fields)

    def _audited(self, action: AuditAction, rows: int) -> None:
        """Audit a bulk read in a unit of its own (it changed nothing to share one with)."""
        with self.context.unit() as uow:
            self.context.audit(uow, action, _CUSTOMERS, rows=rows)

    def rfm(
        self,
        as_of: dt.datetime | None = None,
        policy: RfmPolicy | None = None,
        *,
        engine: Literal["numpy", "sql"] = "numpy",
    ) -> RfmResult:
        """RFM scores and named segments of every customer as of ``as_of`` (default: now).

        The result is kept as :attr:`last_rfm`; :meth:`refresh` scores single customers
        against its cut points.

        Args:
            as_of: aware instant (default: now).
            policy: how to score (default :class:`~crmcore.analytics.RfmPolicy`).
            engine: ``"numpy"`` (default): the three columns are fetched (one columnar
                query on SQL stores) and scored with order statistics. ``"sql"``: the
                store's database computes the scores with window functions (SQL stores
                only); the result is identical.

        Raises:
            ConfigurationError: ``engine="sql"`` on a source that cannot score itself, or
                an unknown engine.
        """
        self.context.authorize(AuditAction.SCORE, _CUSTOMERS)
        if engine == "sql":
            if not isinstance(self.source, RfmScorer):
                raise ConfigurationError(
                    f"{type(self.source).__name__} cannot score in the database; "
                    "use engine='numpy' (SQL stores support engine='sql')"
                )
            result = self.source.score_rfm(self._as_of(as_of), policy)
            self.last_rfm = result
            self._audited(AuditAction.SCORE, len(result))
            return result
        if engine != "numpy":
            raise ConfigurationError(f"engine must be 'numpy' or 'sql', got {engine!r}")
        result = score_rfm(self._snapshot(as_of, RFM_FIELDS), policy)
        self.last_rfm = result
        self._audited(AuditAction.SCORE, len(result))
        return result

    def evaluate(self, rule: Rule | str, as_of: dt.datetime | None = None) -> frozenset[CrmNumber]:
        """The customers matching ``rule`` as of ``as_of`` (nothing is saved).

        Raises:
            RuleSyntaxError: malformed rule.
        """
        parsed = parse_rule(rule)
        self.context.authorize(AuditAction.EVALUATE, _CUSTOMERS)
        if isinstance(self.source, RuleSelector):
            members = self.source.members({"rule": parsed}, self._as_of(as_of))["rule"]
        else:
            metrics = self._snapshot(as_of, parsed.fields())
            members = frozenset(metrics.numbers()[evaluate(parsed, metrics)].tolist())
        self._audited(AuditAction.EVALUATE, len(members))
        return members

    # -- segment definitions -------------------------------------------------------------------

    def define_segment(self, name: str, rule: Rule | str, description: str = "") -> Segment:
        """Save a segment (or replace the rule and description of one of that name).

        The rule is checked first, so a malformed rule saves nothing. Earlier runs of a
        replaced segment are kept: the next :meth:`run_segment` reports who entered and who
        left relative to the last run under the old rule.

        Args:
            name: the segment's name.
            rule: rule text or a rule built in Python (stored as its text form).
            description: free text for people.

        Raises:
            RuleSyntaxError: the rule does not parse.
            ValidationError: a bad name or description.
        """
        parsed = parse_rule(rule)  # refuse a bad rule before anything is saved
        text = rule if isinstance(rule, str) else str(parsed)
        segment = Segment(name, text, description)
        self.context.authorize(AuditAction.DEFINE_SEGMENT, AuditEntity.SEGMENT)
        with self.context.unit() as uow:
            uow.segments.save(segment)
            self.context.audit(uow, AuditAction.DEFINE_SEGMENT, AuditEntity.SEGMENT)
        return segment

    def delete_segment(self, name: str) -> None:
        """Delete a saved segment and its membership runs.

        Raises:
            NotFound: no segment of that name.
        """
        self.context.authorize(AuditAction.DELETE_SEGMENT, AuditEntity.SEGMENT)
        with self.context.unit() as uow:
            uow.segments.delete(name)
            self.context.audit(uow, AuditAction.DELETE_SEGMENT, AuditEntity.SEGMENT)

    def segment(self, name: str) -> Segment:
        """The saved segment of that name.

        Raises:
            NotFound: no segment of that name.
        """
        with self.context.reading() as uow:
            return uow.segments.get(name)

    def segments(self) -> list[Segment]:
        """Every saved segment, by name."""
        with self.context.reading() as uow:
            return list(uow.segments.list())

    # -- segment runs ------------------------------------------------------------------------

    def run_segment(self, name: str, as_of: dt.datetime | None = None) -> SegmentRun:
        """Evaluate a saved segment, save its membership, emit entered/exited events.

        Raises:
            NotFound: no segment of that name.
            DuplicateError: the segment already has a run at exactly ``as_of``.
        """
        return self.run_segments([name], as_of)[0]

    def run_segments(
        self, names: Iterable[str] | None = None, as_of: dt.datetime | None = None
    ) -> list[SegmentRun]:
        """Evaluate several saved segments (default: all) over one snapshot, in one unit of work.

        Returns:
            One :class:`SegmentRun` per segment, in the order given (or by name).
        """
        when = self._as_of(as_of)
        self.context.authorize(AuditAction.RUN_SEGMENT, AuditEntity.SEGMENT)
        with self.context.reading() as uow:
            segments = (
                list(uow.segments.list()) if names is None else [uow.segments.get(n) for n in names]
            )
        rules = {s.name: parse_rule(s.rule) for s in segments}
        members = self._members(rules, when)
        with self.context.unit() as uow:
            return self._save_runs(uow, segments, members, when)

    def define_and_run_segment(
        self, name: str, rule: Rule | str, as_of: dt.datetime | None = None, description: str = ""
    ) -> SegmentRun:
        """Save a segment's rule and run it, atomically.

        Either both the definition and the run are saved, or neither is: a refused run (a
        run of that segment at exactly ``as_of`` already exists) leaves an earlier rule
        unchanged.

        Raises:
            RuleSyntaxError: the rule does not parse (nothing is read or saved).
            DuplicateError: the segment already has a run at exactly ``as_of``.
        """
        parsed = parse_rule(rule)
        segment = Segment(name, rule if isinstance(rule, str) else str(parsed), description)
        when = self._as_of(as_of)
        self.context.authorize(AuditAction.DEFINE_SEGMENT, AuditEntity.SEGMENT)
        self.context.authorize(AuditAction.RUN_SEGMENT, AuditEntity.SEGMENT)
        members = self._members({name: parsed}, when)
        with self.context.unit() as uow:
            uow.segments.save(segment)
            self.context.audit(uow, AuditAction.DEFINE_SEGMENT, AuditEntity.SEGMENT)
            return self._save_runs(uow, [segment], members, when)[0]

    def _save_runs(
        self,
        uow: UnitOfWork,
        segments: list[Segment],
        members: Mapping[str, frozenset[CrmNumber]],
        when: dt.datetime,
    ) -> list[SegmentRun]:
        """Save one run per segment and queue its entered/exited events."""
        now = self.context.now()
        runs: list[SegmentRun] = []
        for segment in segments:
            previous = uow.segments.latest_membership(segment.name, before=when)
            membership = SegmentMembership(segment.name, when, members[segment.name])
            uow.segments.save_membership(membership)
            entered, exited = membership.diff(previous)
            for number in sorted(entered):
                uow.add_event(SegmentEntered(at=now, segment=segment.name, customer=number))
            for number in sorted(exited):
                uow.add_event(SegmentExited(at=now, segment=segment.name, customer=number))
            runs.append(
                SegmentRun(
                    membership, entered, exited, None if previous is None else previous.as_of
                )
            )
        # One entry per call, counting the members saved (who is in a segment is a list
        # of CRM numbers, kept in the runs themselves).
        self.context.audit(
            uow,
            AuditAction.RUN_SEGMENT,
            AuditEntity.SEGMENT,
            rows=sum(len(run.membership.members) for run in runs),
        )
        return runs

    def latest_run(self, name: str, before: dt.datetime | None = None) -> SegmentMembership | None:
        """The segment's latest saved run (strictly before ``before``, if given).

        Raises:
            NotFound: no segment of that name.
        """
        with self.context.reading() as uow:
            uow.segments.get(name)
            return uow.segments.latest_membership(name, before=before)

    def _members(
        self, rules: dict[str, Rule], when: dt.datetime
    ) -> dict[str, frozenset[CrmNumber]]:
        """Members per rule: selected by the store itself when it can (SQL: WHERE clauses),
        else by numpy masks over one snapshot holding every field the rules read."""
        if isinstance(self.source, RuleSelector):
            return self.source.members(rules, when)
        needed: set[str] = set()
        for rule in rules.values():
            needed |= rule.fields()
        metrics = self._snapshot(when, needed)
        numbers = metrics.numbers()
        return {
            name: frozenset(numbers[evaluate(rule, metrics)].tolist())
            for name, rule in rules.items()
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def reclassify(
        self, policy: LifecyclePolicy | None = None, as_of: dt.datetime | None = None
    ) -> list[StageMove]:
        """Move every customer to the stage its purchase history calls for, in one unit of work.

        Candidates are found vectorised; each is then planned from its own values and
        history, changed step by step through allowed transitions with a reason, and a
        :class:`~crmcore.StageChanged` event is emitted per step.

        Returns:
            The customers moved, with their changes.
        """
        policy = policy or LifecyclePolicy()
        when = self._as_of(as_of)
        self.context.authorize(AuditAction.RECLASSIFY, _CUSTOMERS)
        metrics = self._snapshot(when, LIFECYCLE_FIELDS)
        rows = np.flatnonzero(policy.candidates(metrics)).tolist()
        numbers = metrics.numbers()
        moves: list[StageMove] = []
        now = self.context.now()
        with self.context.unit() as uow:
            for row in rows:
                changes = self._apply_policy(uow, numbers[row], policy, when, now, metrics.row(row))
                if changes:
                    moves.append(StageMove(numbers[row], changes))
            self.context.audit(uow, AuditAction.RECLASSIFY, _CUSTOMERS, rows=len(moves))
        return moves

    def _apply_policy(
        self,
        uow: UnitOfWork,
        number: CrmNumber,
        policy: LifecyclePolicy,
        as_of: dt.datetime,
        now: dt.datetime,
        values: dict[str, Any],
    ) -> tuple[StageChange, ...]:
        customer = uow.customers.get(number)
        recency = values["recency_days"]
        span = 0
        if recency is not None:
            span = to_us(values["last_purchase_at"]) - to_us(values["first_purchase_at"])
        health, reason = policy.health_one(recency, values["frequency"], span)
        since = 0
        if customer.stage in (LifecycleStage.CHURNED, LifecycleStage.REACTIVATED):
            since = _purchases_since_churn(uow, customer, as_of)
        steps = policy.plan(customer.stage, health, reason, values["frequency"], since)
        if not steps:
            return ()
        at = max(now, customer.stage_history[-1].at) if customer.stage_history else now
        changes = tuple(customer.change_stage(to, at, why) for to, why in steps)
        customer.updated_at = max(now, customer.created_at, customer.updated_at)
        uow.customers.update(customer)
        for change in changes:
            uow.add_event(stage_changed(number, change, now))
        return changes

    # -- incremental ---------------------------------------------------------------------------

    def refresh(
        self,
        number: CrmNumber | str,
        as_of: dt.datetime | None = None,
        *,
        policy: LifecyclePolicy | None = None,
        segments: Iterable[str] | None = None,
    ) -> CustomerRefresh:
        """Refresh one customer after a change, without recomputing anyone else.

        Reads the customer's metrics row (O(1) from maintained aggregates), scores it
        against :attr:`last_rfm`'s cut points, tests the saved segments' rules on it, and,
        with a ``policy``, applies its lifecycle changes (emitting StageChanged). Segment
        memberships are not saved here: the next :meth:`run_segments` records them and
        emits the entered/exited events against the previous saved run.

        Args:
            number: the customer.
            as_of: default now.
            policy: lifecycle policy to apply (``None``: stage untouched).
            segments: names of saved segments to test (default: all saved segments).
        """
        key = self.context.number(number)
        when = self._as_of(as_of)
        self.context.authorize(AuditAction.REFRESH, _CUSTOMERS, key)
        source = self.source
        if segments is None and _reads_saved_rules(type(source)):
            rules = tuple(cast(SavedRules, source).saved_rules())  # one read, no unit of work
        else:
            with self.context.reading() as uow:
                saved = (
                    list(uow.segments.list())
                    if segments is None
                    else [uow.segments.get(n) for n in segments]
                )
            rules = tuple((s.name, s.rule) for s in saved)
        needed, predicates = _refresh_plan(rules, when)
        values = self.source.customer_row(key, when, needed)
        score = None
        if self.last_rfm is not None:
            score = self.last_rfm.score_one(
                values["recency_days"],
                values["frequency"],
                values["monetary"],
                customer=key,
                as_of=when,
            )
        matches = {name: predicate(values) for name, predicate in predicates}
        changes: tuple[StageChange, ...] = ()
        now = self.context.now()
        with self.context.unit() as uow:
            if policy is not None:
                changes = self._apply_policy(uow, key, policy, when, now, values)
            fields = ("stage", "stage_history") if changes else ()
            self.context.audit(uow, AuditAction.REFRESH, _CUSTOMERS, key, fields=fields)
        return CustomerRefresh(key, when, values, score, matches, changes)


@functools.cache
def _reads_saved_rules(kind: type) -> bool:
    # Once per source class: a runtime-checkable isinstance() costs microseconds per call.
    return issubclass(kind, SavedRules)


@functools.lru_cache(maxsize=64)
def _refresh_plan(
    rules: tuple[tuple[str, str], ...], as_of: dt.datetime
) -> tuple[frozenset[str], tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...]]:
    """The fields a refresh reads and each saved segment's predicate, for one set of saved
    rules at one instant (a stream of refreshes at one ``as_of`` builds it once)."""
    needed = set(RFM_FIELDS | LIFECYCLE_FIELDS)
    predicates = []
    for name, text in rules:
        fields, predicate = _compiled_rule(text, as_of)
        needed |= fields
        predicates.append((name, predicate))
    return frozenset(needed), tuple(predicates)


@functools.lru_cache(maxsize=1024)
def _compiled_rule(
    text: str, as_of: dt.datetime
) -> tuple[frozenset[str], Callable[[Mapping[str, Any]], bool]]:
    """Parse and compile a saved rule once per (text, as_of): its fields and predicate.

    Rules are immutable and a compiled predicate depends only on its text and the instant
    its durations count from, so :meth:`Analytics.refresh` (one customer after each new
    transaction) reuses them instead of parsing ten rules per event.
    """
    rule = parse_rule(text)
    return frozenset(rule.fields()), compile_predicate(rule, as_of)


def _purchases_since_churn(uow: UnitOfWork, customer: Customer, as_of: dt.datetime) -> int:
    # Registered as churned without a recorded change: count purchases since registration.
    churned_at = customer.created_at
    for change in reversed(customer.stage_history):
        if change.to_stage is LifecycleStage.CHURNED:
            churned_at = change.at
            break
    transactions = uow.transactions.for_customer(customer.number)
    return sum(
        1
        for tx in transactions
        if tx.kind is TransactionKind.PURCHASE
        and tx.occurred_at > churned_at
        and tx.occurred_at <= as_of
    )
