"""Public hypothesis strategies for crmcore's types, for crmcore's tests and yours.

Named as plurals of their type, taking ``min_*``/``max_*`` bounds and strategies as
arguments, returning ``SearchStrategy[T]``, in hypothesis' own style::

    from hypothesis import given
    from crmcore.testing.strategies import customers, transactions

    @given(customers())
    def test_every_customer_has_a_display_name(customer):
        assert customer.name.display

Everything generated is valid by construction (it passes the domain's validation) and varied:
unicode names, several currencies with their own minor units, refunds, optional fields present
or absent, timestamps in many UTC offsets (normalised to UTC by the domain).

This module is the one way in: it defines the rule strategies and re-exports the value
strategies (``_value_strategies``) and the record strategies (``_record_strategies``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from crmcore._epoch import MICROS_PER_DAY, to_us
from crmcore.analytics import (
    FIELDS,
    Ago,
    And,
    At,
    Between,
    Compare,
    Consented,
    FieldKind,
    HasTag,
    InList,
    IsNull,
    Match,
    Not,
    Or,
    Rule,
)
from crmcore.testing._record_strategies import (
    consent_records,
    customers,
    interactions,
    transactions,
)
from crmcore.testing._value_strategies import COMMON_CURRENCIES as COMMON_CURRENCIES
from crmcore.testing._value_strategies import (
    DEFAULT_MAX_TIME,
    DEFAULT_MIN_TIME,
    _check_bounds,
    aware_datetimes,
    crm_numbers,
    currencies,
    email_addresses,
    money,
    person_names,
    phone_numbers,
    tags,
)

__all__ = [
    "aware_datetimes",
    "consent_records",
    "crm_numbers",
    "currencies",
    "customers",
    "email_addresses",
    "interactions",
    "money",
    "person_names",
    "phone_numbers",
    "rules",
    "tags",
    "transactions",
]

# -- segment rules -----------------------------------------------------------------------------

RULE_TEXTS: Sequence[str] = (
    "",
    "a",
    "A",
    "agent",
    "agent ",
    "Agent",
    "agent-1",
    "key-accounts",
    "%",
    "_",
    "\\",
    "a%",
    "a_b",
    "'",
    '"',
    "--",
    ";",
    "' ; -- % _ \\",
    "O'Brien; DROP TABLE customers; --",
    "\U0001f600",
    "x\U0001f600y",
)
"""Text literals :func:`rules` favours: SQL wildcards, quotes, escapes, case and space
variants, astral characters (the ones a rule compiler gets wrong first)."""

_RULE_INTS = (0, 1, 2, 3, 5, 7, 10, 14, 30, 100, 365, 1000, 5000, -1, 1990, 2000)
_INT64 = (-(2**63), 2**63 - 1)
_OPS = ("==", "!=", "<", "<=", ">", ">=")


def _rule_values(
    name: str,
    texts: st.SearchStrategy[str],
    instants: tuple[int, int],
) -> st.SearchStrategy[int | str | At | Ago]:
    """Literals a rule may compare field ``name`` with."""
    spec = FIELDS[name]
    if spec.kind is FieldKind.INT:
        return st.one_of(st.sampled_from(_RULE_INTS), st.sampled_from(_INT64), st.integers(*_INT64))
    if spec.kind is FieldKind.INSTANT:
        days_ago = st.builds(
            lambda days, nudge: Ago(days * MICROS_PER_DAY + nudge),
            st.integers(-3, 800),
            st.sampled_from((0, 1, -1)),
        )
        far = st.sampled_from((Ago(10**17), Ago(-(10**17))))
        return st.one_of(days_ago, st.integers(*instants).map(At), far)
    if spec.choices:
        return st.sampled_from(spec.choices)
    if name == "crm_number":
        return st.sampled_from(("C", "C0", "C00000000")) | texts
    return texts


_CONSENT_CHANNELS = (None, "email", "sms", "phone")


def _leaves(
    names: Sequence[str],
    texts: st.SearchStrategy[str],
    tag_names: st.SearchStrategy[str],
    instants: tuple[int, int],
    consent_purposes: st.SearchStrategy[str],
) -> st.SearchStrategy[Rule]:
    def for_field(name: str) -> st.SearchStrategy[Rule]:
        spec = FIELDS[name]
        if spec.kind is FieldKind.TAGS:
            return tag_names.map(HasTag)
        if spec.kind is FieldKind.CONSENTS:
            return st.builds(Consented, consent_purposes, st.sampled_from(_CONSENT_CHANNELS))
        values = _rule_values(name, texts, instants)
        value_lists = st.lists(values, max_size=3)
        is_null = st.builds(IsNull, st.just(name), st.booleans())
        if spec.kind is FieldKind.TEXT:
            options = [
                st.builds(Compare, st.just(name), st.sampled_from(("==", "!=")), values),
                st.builds(InList, st.just(name), value_lists, st.booleans()),
                is_null,
            ]
            if not spec.choices:
                kinds = st.sampled_from(("startswith", "contains"))
                options.append(st.builds(Match, st.just(name), kinds, texts))
            return st.one_of(options)
        # Bounds in order (as of the latest instant), so a range is rarely empty.
        late = instants[1]
        between = st.tuples(values, values).map(
            lambda pair: Between(
                name, *sorted(pair, key=lambda v: v.resolve(late) if isinstance(v, At | Ago) else v)
            )
        )
        options = [st.builds(Compare, st.just(name), st.sampled_from(_OPS), values), between]
        if spec.kind is FieldKind.INT:
            options.append(st.builds(InList, st.just(name), value_lists, st.booleans()))
        options.append(is_null)
        return st.one_of(options)

    return st.one_of([for_field(name) for name in names])


def rules(
    *,
    fields: Collection[str] | None = None,
    max_depth: int = 3,
    texts: st.SearchStrategy[str] | None = None,
    tag_names: st.SearchStrategy[str] | None = None,
    min_instant: dt.datetime = DEFAULT_MIN_TIME,
    max_instant: dt.datetime = DEFAULT_MAX_TIME,
    consent_purposes: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Rule]:
    """Segment rules (:class:`~crmcore.analytics.Rule` trees) over snapshot fields.

    Leaves are every kind of condition the rule language has (comparisons, ranges, lists,
    ``is None``, literal text matches, tags, ``consented(...)``) with values chosen to find
    compiler bugs: 64-bit extremes, instants relative to ``now()`` and far outside any data,
    text with SQL wildcards and quotes (:data:`RULE_TEXTS`). Compound rules (``not``,
    ``and``, ``or``) nest up to ``max_depth``. Rules shrink towards a single leaf on the
    first field.

    Args:
        fields: names from :data:`~crmcore.analytics.FIELDS` the leaves test (default: all).
        max_depth: how deep ``not``/``and``/``or`` may nest (0: leaves only).
        texts: text literals (default: :data:`RULE_TEXTS` or any short text).
        tag_names: tags tested with ``"x" in tags`` (default: :func:`tags` and case and
            space variants of common tags).
        min_instant, max_instant: aware bounds of fixed instants (``datetime(...)``).
        consent_purposes: purposes ``consented(...)`` asks for (default: ``marketing``,
            ``loyalty.club`` and ``newsletter``), on every channel or one of a few.

    Returns:
        A strategy of rules that :func:`~crmcore.analytics.parse_rule` reads back from
        ``str(rule)``.
    """
    names = sorted(FIELDS) if fields is None else sorted(set(fields))
    if not names:
        raise InvalidArgument("fields must not be empty")
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise InvalidArgument(f"unknown fields {unknown!r}; see crmcore.analytics.FIELDS")
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 0:
        raise InvalidArgument(f"max_depth={max_depth!r} must be a whole number >= 0")
    for label, strategy in (("texts", texts), ("tag_names", tag_names)):
        if strategy is not None and not isinstance(strategy, st.SearchStrategy):
            raise InvalidArgument(f"{label}={strategy!r} must be a strategy")
    for label, bound in (("min_instant", min_instant), ("max_instant", max_instant)):
        if bound.tzinfo is None:
            raise InvalidArgument(f"{label} must be timezone-aware, got {bound!r}")
    _check_bounds("instant", min_instant, max_instant)
    no_nul = st.text(max_size=20).filter(lambda s: "\x00" not in s)
    text_values = texts if texts is not None else st.sampled_from(RULE_TEXTS) | no_nul
    tag_values = (
        tag_names
        if tag_names is not None
        else st.sampled_from(("vip", "VIP", "vip ", "gold", "%", "a_b")) | tags()
    )
    if consent_purposes is not None and not isinstance(consent_purposes, st.SearchStrategy):
        raise InvalidArgument(f"consent_purposes={consent_purposes!r} must be a strategy")
    purposes = (
        consent_purposes
        if consent_purposes is not None
        else st.sampled_from(("marketing", "loyalty.club", "newsletter"))
    )
    leaves = _leaves(
        names, text_values, tag_values, (to_us(min_instant), to_us(max_instant)), purposes
    )

    def nested(depth: int) -> st.SearchStrategy[Rule]:
        if depth == 0:
            return leaves
        inner = nested(depth - 1)
        operands = st.lists(inner, min_size=2, max_size=3)
        compound: st.SearchStrategy[Rule] = st.one_of(
            inner.map(Not), operands.map(And), operands.map(Or)
        )
        return leaves | compound

    return nested(max_depth)
