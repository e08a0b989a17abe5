"""Two of the three rule compilers: a numpy mask over a snapshot, a predicate for one customer.

(The third, a SQLAlchemy WHERE clause, lives with the SQL adapter.) All three implement the
same semantics: a comparison on a missing value is false, ``not`` is plain negation, text
matches literally and case-sensitively.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np

from crmcore._epoch import to_us
from crmcore.analytics._consents import entries_granted
from crmcore.analytics._fields import FIELDS, FieldKind
from crmcore.analytics._metrics import BoolArray, CustomerMetrics, Int64Array
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
from crmcore.domain import InteractionChannel
from crmcore.domain._checks import aware_utc

__all__ = ["Predicate", "compile_predicate", "evaluate"]

Predicate = Callable[[Mapping[str, Any]], bool]
_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _resolve(value: Value, as_of_us: int) -> int | str:
    if isinstance(value, At | Ago):
        return value.resolve(as_of_us)
    return value


def _number(value: Value, as_of_us: int) -> int:
    resolved = _resolve(value, as_of_us)
    assert isinstance(resolved, int)
    return resolved


def evaluate(rule: Rule | str, metrics: CustomerMetrics) -> BoolArray:
    """The mask of the snapshot's customers matching ``rule`` (vectorised).

    Args:
        rule: a :class:`Rule` or rule text.
        metrics: a snapshot holding every field the rule reads (``rule.fields()``).

    Returns:
        A boolean array, one entry per snapshot row.

    Raises:
        RuleSyntaxError: malformed rule text.
        ConfigurationError: the snapshot lacks a field the rule reads.
    """
    return _mask(parse_rule(rule), metrics)


def _valid(metrics: CustomerMetrics, name: str) -> BoolArray | None:
    return ~metrics.missing(name) if FIELDS[name].nullable else None


def _with_valid(mask: BoolArray, valid: BoolArray | None) -> BoolArray:
    return mask if valid is None else mask & valid


def _mask(node: Rule, metrics: CustomerMetrics) -> BoolArray:
    as_of_us = metrics.as_of_us
    if isinstance(node, And | Or):
        combine = np.logical_and if isinstance(node, And) else np.logical_or
        out = _mask(node.items[0], metrics)
        for item in node.items[1:]:
            out = combine(out, _mask(item, metrics))
        return out
    if isinstance(node, Not):
        return ~_mask(node.item, metrics)
    if isinstance(node, HasTag):
        return metrics.tags.mask(node.tag)
    if isinstance(node, Consented):
        channel = None if node.channel is None else InteractionChannel(node.channel)
        return metrics.consents.mask(node.purpose, channel, as_of_us)
    if isinstance(node, IsNull):
        if FIELDS[node.field].kind is FieldKind.TEXT:
            absent = metrics.text(node.field).codes < 0
        else:
            absent = metrics.missing(node.field).copy()
        return ~absent if node.negated else absent
    kind = FIELDS[node.field].kind  # type: ignore[attr-defined]
    if kind is FieldKind.TEXT:
        return _text_mask(node, metrics)
    column: Int64Array = metrics.column(node.field)  # type: ignore[attr-defined]
    valid = _valid(metrics, node.field)  # type: ignore[attr-defined]
    if isinstance(node, Compare):
        value = _resolve(node.value, as_of_us)
        return _with_valid(_OPS[node.op](column, value), valid)
    if isinstance(node, Between):
        low, high = _number(node.low, as_of_us), _number(node.high, as_of_us)
        return _with_valid((column >= low) & (column <= high), valid)
    if isinstance(node, InList):
        values = np.asarray([_resolve(v, as_of_us) for v in node.values], dtype=np.int64)
        hit = np.isin(column, values)
        return _with_valid(~hit if node.negated else hit, valid)
    raise AssertionError(f"unhandled rule node {node!r}")  # pragma: no cover


def _text_mask(node: Rule, metrics: CustomerMetrics) -> BoolArray:
    column = metrics.text(node.field)  # type: ignore[attr-defined]
    if isinstance(node, Compare):
        target = node.value
        if node.op == "==":
            return column.where(lambda s: s == target)
        return column.where(lambda s: s != target)
    if isinstance(node, InList):
        wanted = frozenset(node.values)
        if node.negated:
            return column.where(lambda s: s not in wanted)
        return column.where(lambda s: s in wanted)
    if isinstance(node, Match):
        text = node.text
        if node.kind == "startswith":
            return column.where(lambda s: s.startswith(text))
        return column.where(lambda s: text in s)
    raise AssertionError(f"unhandled text rule {node!r}")  # pragma: no cover


def compile_predicate(rule: Rule | str, as_of: dt.datetime) -> Predicate:
    """A predicate over one customer's field values (the third compiler).

    Args:
        rule: a :class:`Rule` or rule text.
        as_of: the instant relative times (``now() - days(30)``) are resolved against.

    Returns:
        ``predicate(row) -> bool`` where ``row`` maps field names to Python values as
        :meth:`CustomerMetrics.row` and ``MetricsSource.customer_row`` give them
        (``None`` when missing, instants as aware datetimes, tags as a set, consents as
        the ledger's entries in history order).
    """
    return _predicate(parse_rule(rule), to_us(aware_utc("as_of", as_of)))


def _instant(value: Any) -> Any:
    return to_us(value) if isinstance(value, dt.datetime) else value


def _all(parts: tuple[Predicate, ...]) -> Predicate:
    # Closures over a fixed arity, not all() over a generator: a refresh tests ten rules per
    # event, and the generator's frame costs more than the comparisons themselves.
    if len(parts) == 2:
        first, second = parts
        return lambda row: first(row) and second(row)

    def every(row: Mapping[str, Any]) -> bool:
        for part in parts:  # noqa: SIM110 - see above
            if not part(row):
                return False
        return True

    return every


def _any(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda row: first(row) or second(row)

    def some(row: Mapping[str, Any]) -> bool:
        for part in parts:  # noqa: SIM110 - see _all
            if part(row):
                return True
        return False

    return some


def _predicate(node: Rule, as_of_us: int) -> Predicate:
    if isinstance(node, And):
        return _all(tuple(_predicate(item, as_of_us) for item in node.items))
    if isinstance(node, Or):
        return _any(tuple(_predicate(item, as_of_us) for item in node.items))
    if isinstance(node, Not):
        inner = _predicate(node.item, as_of_us)
        return lambda row: not inner(row)
    if isinstance(node, HasTag):
        wanted_tag = node.tag
        return lambda row: wanted_tag in row["tags"]
    if isinstance(node, Consented):
        purpose, channel = node.purpose, node.channel
        return lambda row: entries_granted(row["consents"], purpose, channel, as_of_us)
    name = node.field  # type: ignore[attr-defined]
    if isinstance(node, IsNull):
        negated = node.negated
        return lambda row: (row[name] is None) != negated
    instant = FIELDS[name].kind is FieldKind.INSTANT  # rows hold instants as datetimes
    if isinstance(node, Compare):
        compare, value = _OPS[node.op], _resolve(node.value, as_of_us)
        if instant:
            return lambda row: (v := _instant(row[name])) is not None and bool(compare(v, value))
        return lambda row: (v := row[name]) is not None and bool(compare(v, value))
    if isinstance(node, Between):
        low, high = _resolve(node.low, as_of_us), _resolve(node.high, as_of_us)
        if instant:
            return lambda row: (v := _instant(row[name])) is not None and low <= v <= high
        return lambda row: (v := row[name]) is not None and low <= v <= high
    if isinstance(node, InList):
        values = frozenset(_resolve(v, as_of_us) for v in node.values)
        if node.negated:
            return lambda row: (v := row[name]) is not None and v not in values
        return lambda row: (v := row[name]) is not None and v in values
    if isinstance(node, Match):
        text = node.text
        if node.kind == "startswith":
            return lambda row: (v := row[name]) is not None and v.startswith(text)
        return lambda row: (v := row[name]) is not None and text in v
    raise AssertionError(f"unhandled rule node {node!r}")  # pragma: no cover
