"""The third rule compiler: a segment rule as a SQLAlchemy WHERE clause over a :class:`Frame`.

Semantics are those of the numpy mask and the single-customer predicate
(``crmcore.analytics._evaluate``), to the last customer:

* every condition is two-valued: a comparison on a missing value is FALSE, never NULL
  (``col IS NOT NULL AND col op :v``), so ``NOT`` is plain negation, as in Python;
* values are bound parameters only; a rule is never spliced into SQL text;
* day counts (``recency_days``, ``tenure_days`` = ``floor((as_of - t) / 1 day)``) are
  compared by turning the condition into exact bounds on the integer microsecond column
  (``recency_days <= v`` is ``last_purchase_us > as_of - (v + 1) days``): no division in
  SQL, exact on every dialect, and index-friendly;
* text is compared exactly: ``=``/``IN`` (MariaDB through a NO PAD binary collation, so
  trailing spaces count), ``startswith``/``contains`` as LIKE with ``%``, ``_`` and the
  escape character escaped (PostgreSQL, MariaDB) or ``substr``/``instr`` (SQLite, whose
  LIKE ignores ASCII case);
* ``"vip" in tags`` is ``EXISTS`` on ``customer_tags``;
* ``consented(purpose, channel)`` is ``EXISTS`` of an unexpired grant in ``consents`` that
  applies (channel-less, or on the channel), is not after ``as_of``, and that ``NOT EXISTS``
  a later applicable decision (later ``at_us``, or the same with a higher ``seq``: appended
  later) supersedes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from crmcore._epoch import MICROS_PER_DAY
from crmcore.adapters.sqlalchemy._frame import Frame, exact_text
from crmcore.analytics._fields import FIELDS, FieldKind
from crmcore.analytics._parse import parse_rule
from crmcore.analytics._rules import (
    Ago,
    And,
    At,
    Between,
    Compare,
    Consented,
    HasTag,
    InList,
    IsNull,
    Match,
    Not,
    Or,
    Rule,
    Value,
)
from crmcore.analytics.columns import CHANNEL_COUNT_COLUMNS
from crmcore.domain import InteractionChannel

__all__ = ["compile_where", "raw_needed"]

_LIMIT: Final = 1 << 62
"""Bounds are clamped to +-2**62: far beyond any stored instant (|us| < 2.6e17), so a clamped
bound gives every stored value the same answer, and parameters stay within BIGINT."""

_DAYS: Final = {"recency_days": "last_purchase_us", "tenure_days": "created_us"}
_INSTANTS: Final = {
    "first_purchase_at": "first_purchase_us",
    "last_purchase_at": "last_purchase_us",
    "last_interaction_at": "last_interaction_us",
    "created_at": "created_us",
}
_PLAIN: Final = {
    "frequency": "purchase_count",
    "refunds": "refund_count",
    "interactions": "interaction_count",
    "complaints": "complaint_count",
    "birth_year": "birth_year",
    **{f"interactions_{c.value}": CHANNEL_COUNT_COLUMNS[c] for c in InteractionChannel},
}
_TEXT: Final = {
    "stage": "stage",
    "gender": "gender",
    "owner": "owner",
    "country": "country",
    "crm_number": "number",
}
_RAW: Final[dict[str, tuple[str, ...]]] = {
    **{name: (column,) for name, column in _DAYS.items()},
    **{name: (column,) for name, column in _INSTANTS.items()},
    **{name: (column,) for name, column in _PLAIN.items()},
    **{name: (column,) for name, column in _TEXT.items()},
    "monetary": ("purchase_minor", "refund_minor"),
    "tags": (),
    "consents": (),
}


def raw_needed(fields: frozenset[str] | set[str]) -> set[str]:
    """The frame's raw columns that rules over ``fields`` read."""
    out: set[str] = set()
    for name in fields:
        out.update(_RAW[name])
    return out


def _fits(value: int) -> bool:
    return -_LIMIT <= value <= _LIMIT


def _clamp(value: int) -> int:
    return max(-_LIMIT, min(_LIMIT, value))


def _param(value: int) -> ColumnElement[Any]:
    return literal(_clamp(value), BigInteger)


def _resolve(value: Value, as_of_us: int) -> int | str:
    if isinstance(value, At | Ago):
        return value.resolve(as_of_us)
    return value


def _int(value: Value, as_of_us: int) -> int:
    resolved = _resolve(value, as_of_us)
    assert isinstance(resolved, int)
    return resolved


def compile_where(rule: Rule | str, frame: Frame) -> ColumnElement[bool]:
    """The WHERE condition selecting the frame's customers that match ``rule``.

    Args:
        rule: a :class:`~crmcore.analytics.Rule` or rule text.
        frame: built with at least :func:`raw_needed` of ``rule.fields()``.

    Returns:
        A two-valued boolean expression (never NULL) with every value bound.

    Raises:
        RuleSyntaxError: malformed rule text.
    """
    return _Compiler(frame).rule(parse_rule(rule))


_FLAT: Final = 64
"""Operands of one flat ``AND``/``OR`` (see :func:`_balanced`)."""


def _balanced(
    combine: Callable[..., ColumnElement[bool]], parts: list[ColumnElement[bool]]
) -> ColumnElement[bool]:
    """``combine(*parts)`` as a balanced tree of parenthesised groups of at most
    :data:`_FLAT` operands: a database parses ``a OR b OR c ...`` into a tree as deep as the
    list is long, and SQLite refuses expressions deeper than 1000 ("Expression tree is too
    large"), so a rule of a few thousand alternatives would fail there."""
    if len(parts) <= _FLAT:
        return combine(*parts)
    size = -(-len(parts) // _FLAT)
    # ``(group) IS TRUE`` (the same truth: every part is two-valued) keeps the group's
    # parentheses; SQLAlchemy flattens a nested OR, grouped or not, into its parent OR.
    groups = [
        _balanced(combine, parts[i : i + size]).is_(true()) for i in range(0, len(parts), size)
    ]
    return combine(*groups)


class _Compiler:
    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.as_of_us = frame.as_of_us

    def _consented(self, node: Consented) -> ColumnElement[bool]:
        table = self.frame.tables.consents
        decision, later = table.alias("consent_decision"), table.alias("consent_later")
        as_of = _param(self.as_of_us)
        purpose = literal(node.purpose, String())
        channel = None if node.channel is None else literal(node.channel, String())

        def relevant(t: Any) -> ColumnElement[bool]:
            # The decisions that apply to the channel asked about, up to the instant.
            applies = t.c.channel.is_(None)
            if channel is not None:
                applies = or_(applies, exact_text(self.frame, t.c.channel) == channel)
            return and_(exact_text(self.frame, t.c.purpose) == purpose, applies, t.c.at_us <= as_of)

        superseded = exists(
            select(later.c.id).where(
                later.c.customer == decision.c.customer,
                relevant(later),
                or_(
                    later.c.at_us > decision.c.at_us,
                    and_(later.c.at_us == decision.c.at_us, later.c.seq > decision.c.seq),
                ),
            )
        )
        return exists(
            select(decision.c.id).where(
                decision.c.customer == self.frame.number,
                relevant(decision),
                decision.c.decision == literal("granted", String()),
                or_(decision.c.expires_us.is_(None), decision.c.expires_us > as_of),
                not_(superseded),
            )
        )

    def rule(self, node: Rule) -> ColumnElement[bool]:
        if isinstance(node, And):
            return _balanced(and_, [self.rule(item) for item in node.items])
        if isinstance(node, Or):
            return _balanced(or_, [self.rule(item) for item in node.items])
        if isinstance(node, Not):
            return not_(self.rule(node.item))
        if isinstance(node, HasTag):
            t = self.frame.tables.customer_tags
            value = literal(node.tag, String())
            return exists(
                select(t.c.customer).where(
                    t.c.customer == self.frame.number, exact_text(self.frame, t.c.tag) == value
                )
            )
        if isinstance(node, Consented):
            return self._consented(node)
        name: str = node.field  # type: ignore[attr-defined]
        if isinstance(node, IsNull):
            column = self._nullable_source(name)
            return column.is_not(None) if node.negated else column.is_(None)
        kind = FIELDS[name].kind
        if kind is FieldKind.TEXT:
            return self._text(node, name)
        if name in _DAYS:
            return self._days(node, self.frame.column(_DAYS[name]))
        column = self._number_column(name)
        guard = self._guard(name, column)
        return guard(self._numeric(node, column))

    # -- helpers ---------------------------------------------------------------------------

    def _nullable_source(self, name: str) -> ColumnElement[Any]:
        if name in _DAYS:
            return self.frame.column(_DAYS[name])
        if name in _TEXT:
            return self.frame.column(_TEXT[name])
        return self._number_column(name)

    def _number_column(self, name: str) -> ColumnElement[Any]:
        if name == "monetary":
            return self.frame.column("purchase_minor") - self.frame.column("refund_minor")
        if name in _INSTANTS:
            return self.frame.column(_INSTANTS[name])
        return self.frame.column(_PLAIN[name])

    def _guard(
        self, name: str, column: ColumnElement[Any]
    ) -> Callable[[ColumnElement[bool]], ColumnElement[bool]]:
        if not FIELDS[name].nullable:
            return lambda condition: condition
        return lambda condition: and_(column.is_not(None), condition)

    def _numeric(self, node: Rule, column: ColumnElement[Any]) -> ColumnElement[bool]:
        as_of = self.as_of_us
        if isinstance(node, Compare):
            value = _int(node.value, as_of)
            return _compare(column, node.op, value)
        if isinstance(node, Between):
            low, high = _int(node.low, as_of), _int(node.high, as_of)
            return and_(_compare(column, ">=", low), _compare(column, "<=", high))
        if isinstance(node, InList):
            values = sorted({v for v in (_int(v, as_of) for v in node.values) if _fits(v)})
            if not values:
                return true() if node.negated else false()
            hit = column.in_([_param(v) for v in values])
            return not_(hit) if node.negated else hit
        raise AssertionError(f"unhandled rule node {node!r}")  # pragma: no cover

    def _days(self, node: Rule, column: ColumnElement[Any]) -> ColumnElement[bool]:
        """``floor((as_of - column) / day) op v`` as bounds on ``column`` (NULL: false)."""
        as_of = self.as_of_us

        def at_most(v: int) -> ColumnElement[bool]:  # days <= v
            return column > _param(as_of - (v + 1) * MICROS_PER_DAY)

        def at_least(v: int) -> ColumnElement[bool]:  # days >= v
            return column <= _param(as_of - v * MICROS_PER_DAY)

        def equal(v: int) -> ColumnElement[bool]:
            return and_(at_least(v), at_most(v))

        condition: ColumnElement[bool]
        if isinstance(node, Compare):
            v = _int(node.value, as_of)
            if node.op == "<=":
                condition = at_most(v)
            elif node.op == "<":
                condition = at_most(v - 1)
            elif node.op == ">=":
                condition = at_least(v)
            elif node.op == ">":
                condition = at_least(v + 1)
            elif node.op == "==":
                condition = equal(v)
            else:
                condition = not_(equal(v))
        elif isinstance(node, Between):
            condition = and_(at_least(_int(node.low, as_of)), at_most(_int(node.high, as_of)))
        elif isinstance(node, InList):
            values = sorted({_int(v, as_of) for v in node.values})
            hit = _balanced(or_, [false(), *(equal(v) for v in values)])
            condition = not_(hit) if node.negated else hit
        else:  # pragma: no cover
            raise AssertionError(f"unhandled rule node {node!r}")
        return and_(column.is_not(None), condition)

    def _text(self, node: Rule, name: str) -> ColumnElement[bool]:
        frame = self.frame
        stored = frame.column(_TEXT[name])
        column = exact_text(frame, stored)
        condition: ColumnElement[bool]
        if isinstance(node, Compare):
            value = literal(node.value, String())
            condition = column == value if node.op == "==" else column != value
        elif isinstance(node, InList):
            values = sorted({str(v) for v in node.values})
            if not values:
                condition = true() if node.negated else false()
            else:
                hit = column.in_([literal(v, String()) for v in values])
                condition = not_(hit) if node.negated else hit
        elif isinstance(node, Match):
            condition = self._match(stored, node)
        else:  # pragma: no cover
            raise AssertionError(f"unhandled text rule {node!r}")
        return and_(stored.is_not(None), condition)

    def _match(self, column: ColumnElement[Any], node: Match) -> ColumnElement[bool]:
        text = literal(node.text, String())
        if self.frame.dialect == "sqlite":
            # SQLite's LIKE folds ASCII case; substr/instr compare exactly (by character).
            if node.kind == "startswith":
                return func.substr(column, 1, func.length(text)) == text
            return func.instr(column, text) > 0
        if node.kind == "startswith":
            return column.startswith(node.text, autoescape=True)
        return column.contains(node.text, autoescape=True)


def _compare(column: ColumnElement[Any], op: str, value: int) -> ColumnElement[bool]:
    if not _fits(value):
        # Beyond every stored value: the answer is the same for all of them.
        above = value > 0
        if op in ("<", "<="):
            return true() if above else false()
        if op in (">", ">="):
            return false() if above else true()
        return false() if op == "==" else true()
    param = _param(value)
    if op == "==":
        return column == param
    if op == "!=":
        return column != param
    if op == "<":
        return column < param
    if op == "<=":
        return column <= param
    if op == ">":
        return column > param
    return column >= param
