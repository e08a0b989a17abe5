"""Snapshots equal a from-scratch recomputation; the rule compilers agree on random stores.

One random store per example (built from ``crmcore.testing.strategies``) and many rules per
example (drawn from ``strategies.rules()``), so the 10,000-rule agreement check stays fast.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from tests.helpers import rows_by_number

from crmcore import Crm, FixedClock, InMemoryStore, InteractionKind, TransactionKind
from crmcore._epoch import MICROS_PER_DAY, to_us
from crmcore.analytics import (
    FIELDS,
    RFM_FIELDS,
    And,
    Between,
    Compare,
    F,
    InList,
    IsNull,
    Match,
    Not,
    Or,
    RfmPolicy,
    Rule,
    ago,
    compile_predicate,
    evaluate,
    field,
    parse_rule,
    score_rfm,
    tag,
)
from crmcore.analytics._consents import entry_of
from crmcore.errors import RuleSyntaxError
from crmcore.testing import strategies

LOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HIGH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPECIAL_TEXT = [
    "' ; -- % _ \\",
    "%",
    "_",
    "\\",
    "a%",
    "a_b",
    "agent-1",
    "agent",
    "key-accounts",
    "\U0001f600",
    "x\U0001f600y",
    "'",
    '"',
    "--",
    ";",
    "A",
    "a",
    "O'Brien; DROP TABLE customers; --",
]
TAGS = ["vip", "gold", "b2b", "früh", "%", "a_b"]


@st.composite
def stores(draw: st.DrawFn) -> tuple[InMemoryStore, dt.datetime]:
    """A small random store and an as-of instant inside its history."""
    customers = draw(
        st.lists(
            strategies.customers(min_created=LOW, max_created=HIGH),
            min_size=1,
            max_size=10,
            # One customer per CRM number and per import key (stores refuse a second).
            unique_by=(lambda c: c.number, lambda c: (c.source, c.external_id or c.number.value)),
        )
    )
    store = InMemoryStore()
    crm = Crm(store, clock=FixedClock(HIGH))
    with store.unit_of_work() as uow:
        for customer in customers:
            customer.owner = draw(st.none() | st.sampled_from(SPECIAL_TEXT))
            customer.tags = frozenset(draw(st.lists(st.sampled_from(TAGS), max_size=3)))
            uow.customers.add(customer)
        uow.commit()
    numbers = st.sampled_from([c.number for c in customers])
    for tx in draw(
        st.lists(
            strategies.transactions(
                numbers, currency="USD", min_occurred=LOW, max_occurred=HIGH, with_lines=False
            ),
            max_size=25,
        )
    ):
        crm.record_transaction(tx)
    for interaction in draw(
        st.lists(strategies.interactions(numbers, min_occurred=LOW, max_occurred=HIGH), max_size=15)
    ):
        crm.record_interaction(interaction)
    as_of = draw(
        st.sampled_from([HIGH + dt.timedelta(days=1)])
        | strategies.aware_datetimes(min_value=LOW, max_value=HIGH)
    )
    return store, as_of


def reference_rows(store: InMemoryStore, as_of: dt.datetime) -> dict[str, dict[str, Any]]:
    """Every field of every customer recomputed from domain objects (the slow, obvious way)."""
    out: dict[str, dict[str, Any]] = {}
    with store.unit_of_work() as uow:
        for number in uow.customers.numbers():
            c = uow.customers.get(number)
            txs = [t for t in uow.transactions.for_customer(number) if t.occurred_at <= as_of]
            ixs = [i for i in uow.interactions.for_customer(number) if i.occurred_at <= as_of]
            buys = [t for t in txs if t.kind is TransactionKind.PURCHASE]
            refunds = [t for t in txs if t.kind is TransactionKind.REFUND]
            last = max((t.occurred_at for t in buys), default=None)
            row: dict[str, Any] = {
                "crm_number": number.value,
                "frequency": len(buys),
                "refunds": len(refunds),
                "monetary": sum(t.reporting_total.minor_units for t in buys)
                - sum(t.reporting_total.minor_units for t in refunds),
                "first_purchase_at": min((t.occurred_at for t in buys), default=None),
                "last_purchase_at": last,
                "recency_days": None
                if last is None
                else (to_us(as_of) - to_us(last)) // MICROS_PER_DAY,
                "tenure_days": (to_us(as_of) - to_us(c.created_at)) // MICROS_PER_DAY,
                "interactions": len(ixs),
                "complaints": sum(i.kind is InteractionKind.COMPLAINT for i in ixs),
                "last_interaction_at": max((i.occurred_at for i in ixs), default=None),
                "stage": c.stage.value,
                "created_at": c.created_at,
                "tags": c.tags,
                "gender": None if c.gender is None else c.gender.value,
                "birth_year": None if c.birth_date is None else c.birth_date.year,
                "owner": c.owner,
                "country": c.addresses[0].country if c.addresses else None,
                "consents": tuple(entry_of(r) for r in uow.consents.history(number)),
            }
            for name in FIELDS:
                if name.startswith("interactions_"):
                    channel = name.removeprefix("interactions_")
                    row[name] = sum(i.channel.value == channel for i in ixs)
            out[number.value] = row
    return out


@settings(max_examples=60)
@given(stores())
def test_snapshot_equals_a_recomputation_from_the_objects(case):
    store, as_of = case
    metrics = store.metrics_source().snapshot(as_of)
    assert rows_by_number(metrics) == reference_rows(store, as_of)


@settings(max_examples=30)
@given(stores())
def test_single_customer_rows_equal_snapshot_rows(case):
    store, as_of = case
    source = store.metrics_source()
    rows = rows_by_number(source.snapshot(as_of))
    with store.unit_of_work() as uow:
        numbers = list(uow.customers.numbers())
    for number in numbers:
        assert source.customer_row(number, as_of) == rows[number.value]


@settings(max_examples=20)
@given(stores(), st.sampled_from(sorted(FIELDS)))
def test_a_narrow_snapshot_holds_the_same_values(case, name):
    store, as_of = case
    source = store.metrics_source()
    full = rows_by_number(source.snapshot(as_of))
    narrow = rows_by_number(source.snapshot(as_of, [name]))
    for number, row in narrow.items():
        assert row[name] == full[number][name]


def test_erased_customers_leave_the_snapshot():
    store = InMemoryStore()
    crm = Crm(store, clock=FixedClock(HIGH))
    ann, bob = crm.register("Ann"), crm.register("Bob")
    crm.erase(ann.number)
    metrics = store.metrics_source().snapshot(HIGH)
    assert metrics.numbers().tolist() == [bob.number]


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["retag", "erase", "retag-rolled-back", "erase-rolled-back"]),
            st.integers(0, 5),
            st.frozensets(st.sampled_from(TAGS), max_size=3),
        ),
        max_size=12,
    )
)
def test_snapshot_tags_follow_updates_erasures_and_rollbacks(ops):
    # The store keeps a tag -> rows index for snapshots; it must follow every write and
    # every rollback exactly as the Customer objects do.
    store = InMemoryStore()
    crm = Crm(store, clock=FixedClock(HIGH))
    numbers = [crm.register(f"C{i}", tags=sorted(TAGS[i % 3 : i % 3 + 2])).number for i in range(6)]
    for op, which, tags in ops:
        number = numbers[which]
        with store.unit_of_work() as uow:
            if uow.customers.find(number) is None:
                continue
            if op.startswith("retag"):
                customer = uow.customers.get(number)
                customer.tags = tags
                uow.customers.update(customer)
            else:
                uow.customers.erase(number)
            if not op.endswith("rolled-back"):
                uow.commit()
    expected = {number: row["tags"] for number, row in reference_rows(store, HIGH).items()}
    for fields in (None, ["tags"], ["tags", "frequency"]):
        metrics = store.metrics_source().snapshot(HIGH, fields)
        got = {n.value: metrics.tags.of_row(i) for i, n in enumerate(metrics.numbers())}
        assert got == expected


@settings(max_examples=80)
@given(stores(), st.integers(2, 7), st.sampled_from(["shared", "ordinal"]))
def test_scoring_one_unchanged_customer_gives_back_its_batch_scores(case, k, ties):
    # The incremental path (Analytics.refresh) scores one customer against the last run's
    # cut points; for a customer whose values did not change it must reproduce the batch
    # scores exactly, ordinal ties (CRM-number tie-break, empty groups when n < k) included.
    store, as_of = case
    metrics = store.metrics_source().snapshot(as_of, RFM_FIELDS)
    result = score_rfm(metrics, RfmPolicy(k=k, ties=ties, segment_map=None))
    for i, number in enumerate(metrics.numbers()):
        if not result.scored[i]:
            continue
        one = result.score_one(
            int(metrics.recency_days[i]),
            int(metrics.frequency[i]),
            int(metrics.monetary[i]),
            customer=number,
        )
        assert (one.r, one.f, one.m) == (result.r[i], result.f[i], result.m[i])


# -- rules ---------------------------------------------------------------------------------------

RULES = strategies.rules(tag_names=st.sampled_from(TAGS), min_instant=LOW, max_instant=HIGH)
RULES_PER_STORE = 400


@settings(max_examples=25)
@given(stores(), st.lists(RULES, min_size=RULES_PER_STORE, max_size=RULES_PER_STORE))
def test_the_rule_compilers_agree_on_10000_rules(case, rules):
    store, as_of = case
    source = store.metrics_source()
    metrics = source.snapshot(as_of)
    numbers = metrics.numbers()
    rows = [metrics.row(i) for i in range(len(metrics))]
    single = [source.customer_row(n, as_of) for n in numbers]
    for rule in rules:
        text = str(rule)
        assert parse_rule(text) == rule, text
        mask = evaluate(rule, metrics)
        predicate = compile_predicate(text, as_of)
        expected = [predicate(row) for row in rows]
        assert mask.tolist() == expected, text
        assert [predicate(row) for row in single] == expected, text


@given(strategies.rules(fields=["owner", "frequency"], max_depth=0))
def test_generated_rules_keep_to_their_fields_and_depth(rule):
    assert isinstance(rule, Compare | Between | InList | IsNull | Match)
    assert rule.fields() <= {"owner", "frequency"}


@given(strategies.rules(max_depth=1))
def test_generated_rules_nest_no_deeper_than_asked(rule):
    def depth(node: Rule) -> int:
        if isinstance(node, And | Or):
            return 1 + max(depth(item) for item in node.items)
        if isinstance(node, Not):
            return 1 + depth(node.item)
        return 0

    assert depth(rule) <= 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fields": []},
        {"fields": ["nope"]},
        {"max_depth": -1},
        {"max_depth": True},
        {"texts": ["a"]},
        {"min_instant": dt.datetime(2024, 1, 1)},
        {"min_instant": HIGH, "max_instant": LOW},
    ],
)
def test_the_rules_strategy_validates_its_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        strategies.rules(**kwargs).example()


def test_the_documented_example_selects_as_expected():
    store = InMemoryStore()
    crm = Crm(store, clock=FixedClock(HIGH))
    vip = crm.register("Vee", tags=["vip"])
    crm.register("Plain")
    metrics = store.metrics_source().snapshot(HIGH)
    mask = evaluate('"vip" in tags and stage != "churned" and recency_days is None', metrics)
    assert metrics.numbers()[mask].tolist() == [vip.number]


def test_missing_values_make_comparisons_false_and_not_flips_them():
    store = InMemoryStore()
    crm = Crm(store, clock=FixedClock(HIGH))
    crm.register("No purchases")
    metrics = store.metrics_source().snapshot(HIGH)
    for text in [
        "recency_days < 5",
        "recency_days != 5",
        "recency_days not in [5]",
        "owner != 'x'",
    ]:
        assert evaluate(text, metrics).tolist() == [False]
        assert evaluate(f"not ({text})", metrics).tolist() == [True]
    assert evaluate("recency_days is None and owner is None", metrics).tolist() == [True]


def test_text_matching_is_literal():
    store = InMemoryStore()
    crm = Crm(store, clock=FixedClock(HIGH))
    crm.register("A", owner="a%b")
    crm.register("B", owner="axb")
    metrics = store.metrics_source().snapshot(HIGH, ["owner"])
    assert evaluate("owner.startswith('a%')", metrics).tolist() == [True, False]
    assert evaluate("'%' in owner", metrics).tolist() == [True, False]
    assert evaluate("owner.contains('_')", metrics).tolist() == [False, False]


def test_rules_of_the_builder_equal_parsed_rules():
    built = (
        (F.recency_days <= 30) & (field("frequency") >= 3) & tag("vip") & ~(F.stage == "churned")
    )
    text = 'recency_days <= 30 and frequency >= 3 and "vip" in tags and not stage == "churned"'
    assert built == parse_rule(text)
    assert parse_rule(str(built)) == built
    assert F.owner.is_null() | F.owner.startswith("a%") == parse_rule(
        "owner is None or owner.startswith('a%')"
    )
    assert F.frequency.between(1, 3) == parse_rule("between(frequency, 1, 3)")
    assert F.frequency.not_in([1, 2]) == parse_rule("frequency not in [1, 2]")
    relative = F.last_purchase_at >= ago(days=30)
    assert str(relative) == "last_purchase_at >= now() - days(30)"
    assert relative == parse_rule("last_purchase_at >= now() - days(30)")


@pytest.mark.parametrize(
    "text",
    [
        "created_at > datetime('9999-12-31T23:59:59+00:00') + days(1000000)",
        "created_at > datetime('0001-01-01T00:00:00+14:00')",
    ],
)
def test_instants_outside_the_datetime_range_are_syntax_errors(text: str) -> None:
    with pytest.raises(RuleSyntaxError, match="out of range"):
        parse_rule(text)
