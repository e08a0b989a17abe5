"""The rule text parser: Python expression syntax, read with :mod:`ast` through a strict
whitelist into the :class:`~crmcore.analytics.Rule` AST (nothing is ever evaluated)::

    recency_days <= 30 and frequency >= 3 and "vip" in tags and stage != "churned"

``parse_rule`` is the one way from text to a rule; ``str(rule)`` is the way back. See
``docs/rules.md`` for the full reference.
"""

from __future__ import annotations

import ast
import datetime as dt
from typing import Any, Final

from crmcore._epoch import to_us
from crmcore.analytics._rules import (
    _INT64,
    _MAX_TEXT,
    _UNITS,
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
    Op,
    Or,
    Rule,
    Value,
    _spec,
)
from crmcore.errors import RuleSyntaxError

__all__ = ["parse_rule"]


_INSTANT_RANGE = (
    to_us(dt.datetime.min.replace(tzinfo=dt.UTC)),
    to_us(dt.datetime.max.replace(tzinfo=dt.UTC)),
)

_OPS: Final[dict[type[ast.cmpop], Op]] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
_FLIP: Final[dict[Op, Op]] = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True) or [""]

    def position(self, node: ast.AST) -> int:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        if line == 1:
            col = max(col - 1, 0)  # the opening parenthesis parse_rule adds
        before = sum(len(s) for s in self.lines[: line - 1])
        current = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        return before + len(current.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    def fail(self, message: str, node: ast.AST) -> RuleSyntaxError:
        return RuleSyntaxError(message, self.text, self.position(node))

    def build(self, node: ast.AST, make: Any, *args: Any) -> Rule:
        try:
            return make(*args)  # type: ignore[no-any-return]
        except RuleSyntaxError as exc:
            raise self.fail(exc.message, node) from None

    def rule(self, node: ast.expr) -> Rule:
        if isinstance(node, ast.BoolOp):
            items = tuple(self.rule(v) for v in node.values)
            return And(items) if isinstance(node.op, ast.And) else Or(items)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Not(self.rule(node.operand))
        if isinstance(node, ast.Compare):
            parts: list[Rule] = []
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                parts.append(self.comparison(node, left, op, right))
                left = right
            return parts[0] if len(parts) == 1 else And(tuple(parts))
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(
            "expected a condition (a comparison, 'in', 'is None', between(...), "
            "startswith/contains, and/or/not)",
            node,
        )

    def field_name(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            try:
                _spec(node.id)
            except RuleSyntaxError as exc:
                raise self.fail(exc.message, node) from None
            return node.id
        return None

    def comparison(
        self, whole: ast.Compare, left: ast.expr, op: ast.cmpop, right: ast.expr
    ) -> Rule:
        if isinstance(op, ast.Is | ast.IsNot):
            name = self.field_name(left)
            if name is None or not (isinstance(right, ast.Constant) and right.value is None):
                raise self.fail("'is' is only used as 'field is None' / 'is not None'", left)
            return self.build(left, IsNull, name, isinstance(op, ast.IsNot))
        if isinstance(op, ast.In | ast.NotIn):
            negated = isinstance(op, ast.NotIn)
            container = self.field_name(right)
            if container is not None:
                text = self.value(left)
                if not isinstance(text, str):
                    raise self.fail(f"'... in {container}' needs text on the left", left)
                if container == "tags":
                    inner = self.build(left, HasTag, text)
                else:
                    inner = self.build(left, Match, container, "contains", text)
                return Not(inner) if negated else inner
            name = self.field_name(left)
            if name is None or not isinstance(right, ast.List | ast.Tuple | ast.Set):
                raise self.fail("'in' takes 'field in [values]' or 'text in field'", right)
            values = tuple(self.value(v) for v in right.elts)
            return self.build(right, InList, name, values, negated)
        mapped = _OPS.get(type(op))
        if mapped is None:  # pragma: no cover - every cmpop is handled above
            raise self.fail("unsupported comparison", whole)
        name = self.field_name(left)
        if name is not None:
            if self.field_name(right) is not None:
                raise self.fail("compare a field with a value, not with another field", right)
            return self.build(right, Compare, name, mapped, self.value(right))
        name = self.field_name(right)
        if name is None:
            raise self.fail("a comparison needs a field on one side", left)
        return self.build(left, Compare, name, _FLIP[mapped], self.value(left))

    def call(self, node: ast.Call) -> Rule:
        if node.keywords:
            raise self.fail("keyword arguments are not allowed", node.keywords[0].value)
        func = node.func
        if isinstance(func, ast.Attribute):
            name = self.field_name(func.value)
            if name is None or func.attr not in ("startswith", "contains"):
                raise self.fail("only field.startswith(text) and field.contains(text)", func)
            if len(node.args) != 1:
                raise self.fail(f"{func.attr} takes one text argument", node)
            text = self.value(node.args[0])
            if not isinstance(text, str):
                raise self.fail(f"{func.attr} takes text", node.args[0])
            return self.build(node, Match, name, func.attr, text)
        if isinstance(func, ast.Name) and func.id in ("between", "is_null", "not_null"):
            want = 3 if func.id == "between" else 1
            if len(node.args) != want:
                raise self.fail(f"{func.id} takes {want} argument(s)", node)
            name = self.field_name(node.args[0])
            if name is None:
                raise self.fail(f"the first argument of {func.id} is a field", node.args[0])
            if func.id == "between":
                low, high = self.value(node.args[1]), self.value(node.args[2])
                return self.build(node, Between, name, low, high)
            return self.build(node, IsNull, name, func.id == "not_null")
        if isinstance(func, ast.Name) and func.id == "consented":
            if len(node.args) not in (1, 2):
                raise self.fail("consented takes a purpose and optionally a channel", node)
            texts = []
            for arg in node.args:
                text = self.value(arg)
                if not isinstance(text, str):
                    raise self.fail("consented takes text arguments", arg)
                texts.append(text)
            return self.build(node, Consented, *texts)
        raise self.fail(
            "unknown function; conditions use between, is_null, not_null, consented, "
            "field.startswith, field.contains",
            func,
        )

    def value(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise self.fail(f"unsupported literal {value!r} (whole numbers and text)", node)
            if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
                raise self.fail(f"integer {value} is out of the 64-bit range", node)
            return value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) is int
        ):
            number = -node.operand.value
            if number < _INT64[0]:
                raise self.fail(f"integer {number} is out of the 64-bit range", node)
            return number
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            base = self.value(node.left)
            shift = self.duration(node.right)
            sign = 1 if isinstance(node.op, ast.Add) else -1
            if isinstance(base, At):
                return self.in_range(At(base.us + sign * shift), node)
            if isinstance(base, Ago):
                return Ago(base.us - sign * shift)
            raise self.fail("only instants take + / - durations", node.left)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            name, args = node.func.id, node.args
            if name == "now" and not args:
                return Ago(0)
            if name in ("date", "datetime") and len(args) == 1:
                text = self.value(args[0])
                if not isinstance(text, str):
                    raise self.fail(f"{name} takes ISO text", args[0])
                return self.instant(name, text, args[0])
        raise self.fail(
            "expected a value: a whole number, text, date(...), datetime(...), now(), "
            "or an instant +/- days(n)/hours(n)/minutes(n)/seconds(n)",
            node,
        )

    def instant(self, kind: str, text: str, node: ast.expr) -> At:
        try:
            if kind == "date":
                day = dt.date.fromisoformat(text)
                return At(to_us(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)))
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(f"{kind}({text!r}) is not an ISO {kind}", node) from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise self.fail(
                f"datetime({text!r}) needs a UTC offset (naive times are ambiguous)", node
            )
        return self.in_range(At(to_us(moment)), node)

    def in_range(self, instant: At, node: ast.expr) -> At:
        """Instants must be representable as datetimes (year 1 to 9999, UTC)."""
        if not _INSTANT_RANGE[0] <= instant.us <= _INSTANT_RANGE[1]:
            raise self.fail("instant out of range (years 1 to 9999, UTC)", node)
        return instant

    def duration(self, node: ast.expr) -> int:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and not node.keywords
            and len(node.args) == 1
        ):
            width = dict(_UNITS).get(node.func.id)
            amount = self.value(node.args[0])
            if width is not None and isinstance(amount, int):
                if abs(amount * width) > 10**17:
                    raise self.fail("duration out of range", node)
                return amount * width
        raise self.fail("expected a duration: days(n), hours(n), minutes(n), seconds(n)", node)


def parse_rule(text: str | Rule) -> Rule:
    """Parse rule text into a :class:`Rule` (never evaluating it).

    Args:
        text: the rule, e.g. ``'recency_days <= 30 and "vip" in tags'``.

    Returns:
        The rule's AST.

    Raises:
        RuleSyntaxError: malformed text, an unknown field (the message lists the allowed
            ones), a value of the wrong type; ``position`` points at the problem.
    """
    if isinstance(text, Rule):
        return text
    if not isinstance(text, str):
        raise RuleSyntaxError(f"a rule is text, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RuleSyntaxError("a rule must be valid Unicode text", text, exc.start) from None
    if len(text) > _MAX_TEXT:
        raise RuleSyntaxError(f"a rule is at most {_MAX_TEXT} characters", text[:80], 0)
    if not text.strip():
        raise RuleSyntaxError("the rule is empty", text, 0)
    if "\x00" in text:
        raise RuleSyntaxError("a rule must not contain NUL", text, text.index("\x00"))
    try:
        # Parenthesised, so a rule may span lines; positions are shifted back by one.
        tree = ast.parse(f"({text}\n)", mode="eval")
    except SyntaxError as exc:
        lines = text.splitlines(keepends=True) or [""]
        line = max((exc.lineno or 1) - 1, 0)
        column = max((exc.offset or 1) - 1 - (line == 0), 0)
        offset = sum(len(s) for s in lines[:line]) + column
        raise RuleSyntaxError(f"invalid rule: {exc.msg}", text, min(offset, len(text))) from None
    except (RecursionError, MemoryError, ValueError):
        raise RuleSyntaxError("the rule is too deeply nested", text, 0) from None
    parser = _Parser(text)
    try:
        return parser.rule(tree.body)
    except RecursionError:
        raise RuleSyntaxError("the rule is too deeply nested", text, 0) from None
