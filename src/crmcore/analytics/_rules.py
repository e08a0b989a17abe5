"""The segment rule language: one small immutable AST and its Python builder.

Rules are trees of :class:`Rule` nodes, built with ``field("recency_days") <= 30``,
``F.frequency >= 3``, ``tag("vip")`` and ``&``, ``|``, ``~``, or parsed from text by
:func:`~crmcore.analytics.parse_rule` (``crmcore.analytics._parse``); ``str(rule)`` is text
that parses back to the same tree.

A missing value (a customer without purchases has no ``recency_days``) makes every
comparison on it false, ``!=`` and ``not in [...]`` included; ``x is None`` tests for it.
``not`` is plain negation. See ``docs/rules.md`` for the full reference.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Iterator
from typing import ClassVar, Final, Literal, TypeAlias

import attrs

from crmcore._epoch import from_us, to_us
from crmcore.analytics._fields import FIELDS, FieldKind, FieldSpec
from crmcore.domain import InteractionChannel
from crmcore.errors import RuleSyntaxError

__all__ = [
    "MAX_RULE_DEPTH",
    "Ago",
    "And",
    "At",
    "Between",
    "Compare",
    "Consented",
    "F",
    "HasTag",
    "InList",
    "IsNull",
    "Match",
    "Not",
    "Or",
    "Rule",
    "ago",
    "consented",
    "field",
    "tag",
]

Op = Literal["==", "!=", "<", "<=", ">", ">="]
_INT64: Final = (-(2**63), 2**63 - 1)
_MAX_TEXT: Final = 10_000
MAX_RULE_DEPTH: Final = 100
"""How deeply ``and``/``or``/``not`` may nest in one rule (docs/rules.md): deeper trees would
exhaust Python's recursion limit while evaluated, and a database's expression depth."""
_UNITS: Final = (
    ("days", 86_400_000_000),
    ("hours", 3_600_000_000),
    ("minutes", 60_000_000),
    ("seconds", 1_000_000),
    ("microseconds", 1),
)


@attrs.frozen
class At:
    """A fixed instant (microseconds since the epoch, UTC)."""

    us: int

    def resolve(self, as_of_us: int) -> int:
        return self.us

    def __str__(self) -> str:
        return f'datetime("{from_us(self.us).isoformat()}")'


@attrs.frozen
class Ago:
    """An instant relative to the snapshot's ``as_of``: ``as_of - us`` microseconds."""

    us: int

    def resolve(self, as_of_us: int) -> int:
        return as_of_us - self.us

    def __str__(self) -> str:
        if self.us == 0:
            return "now()"
        sign = "-" if self.us > 0 else "+"
        size = abs(self.us)
        for unit, width in _UNITS:
            if size % width == 0:
                return f"now() {sign} {unit}({size // width})"
        raise AssertionError("microseconds always divide")  # pragma: no cover


Value: TypeAlias = int | str | At | Ago


def _show(value: Value) -> str:
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _spec(name: str, rule: str = "", position: int = 0) -> FieldSpec:
    spec = FIELDS.get(name)
    if spec is None:
        raise RuleSyntaxError(
            f"unknown field {name!r}; allowed fields: {', '.join(sorted(FIELDS))}", rule, position
        )
    return spec


def _unicode(value: str) -> bool:
    """Whether ``value`` is valid Unicode text (no lone surrogate: no database takes one)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth_of(node: object) -> int:
    return getattr(node, "_depth", 1)


def _nest(node: Rule, children: Iterable[Rule]) -> None:
    """Record ``node``'s depth (one more than its deepest child) or refuse it past
    :data:`MAX_RULE_DEPTH`; each node checks once, when built, so no check recurses."""
    depth = 1 + max(_depth_of(child) for child in children)
    if depth > MAX_RULE_DEPTH:
        raise RuleSyntaxError(
            f"the rule nests 'and'/'or'/'not' deeper than {MAX_RULE_DEPTH} levels"
        )
    object.__setattr__(node, "_depth", depth)


def _check_value(spec: FieldSpec, value: object) -> Value:
    """Validate a literal against a field (raise RuleSyntaxError without position)."""
    if spec.kind is FieldKind.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleSyntaxError(f"{spec.name} is compared with whole numbers, got {value!r}")
        if not _INT64[0] <= value <= _INT64[1]:
            raise RuleSyntaxError(f"integer {value} is out of the 64-bit range")
        return value
    if spec.kind is FieldKind.INSTANT:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise RuleSyntaxError(f"{spec.name} needs an aware datetime, got {value!r}")
            return At(to_us(value))
        if isinstance(value, At | Ago):
            return value
        raise RuleSyntaxError(
            f"{spec.name} is compared with instants (date(...), datetime(...), now() - days(n)),"
            f" got {value!r}"
        )
    if spec.kind is FieldKind.TEXT:
        if not isinstance(value, str):
            raise RuleSyntaxError(f"{spec.name} is compared with text, got {value!r}")
        if "\x00" in value or len(value) > _MAX_TEXT:
            raise RuleSyntaxError(f"text for {spec.name} must not contain NUL or be that long")
        if not _unicode(value):
            raise RuleSyntaxError(f"text for {spec.name} is not valid Unicode")
        if spec.choices and value not in spec.choices:
            raise RuleSyntaxError(f"{spec.name} is one of {', '.join(spec.choices)}; got {value!r}")
        return value
    if spec.kind is FieldKind.CONSENTS:
        raise RuleSyntaxError('consents are tested with consented("purpose", "channel")')
    raise RuleSyntaxError("tags are tested with \"'tag' in tags\"")


class Rule:
    """Base class of rule nodes. Combine with ``&``, ``|`` and ``~``; ``str()`` is text."""

    __slots__ = ()
    precedence: ClassVar[int] = 3

    def __and__(self, other: Rule) -> Rule:
        left = self.items if isinstance(self, And) else (self,)
        return And((*left, _rule(other)))

    def __or__(self, other: Rule) -> Rule:
        left = self.items if isinstance(self, Or) else (self,)
        return Or((*left, _rule(other)))

    def __invert__(self) -> Rule:
        return Not(self)

    def __bool__(self) -> bool:
        raise TypeError("a rule has no truth value; combine rules with &, | and ~")

    def fields(self) -> frozenset[str]:
        """The snapshot fields the rule reads."""
        return frozenset(_walk_fields(self))


def _rule(value: object) -> Rule:
    if not isinstance(value, Rule):
        raise TypeError(f"expected a rule, got {value!r}")
    return value


def _rules(items: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(items)


def _values(items: Iterable[Value]) -> tuple[Value, ...]:
    return tuple(items)


def _walk_fields(node: Rule) -> Iterator[str]:
    if isinstance(node, And | Or):
        for item in node.items:
            yield from _walk_fields(item)
    elif isinstance(node, Not):
        yield from _walk_fields(node.item)
    elif isinstance(node, HasTag):
        yield "tags"
    elif isinstance(node, Consented):
        yield "consents"
    else:
        yield node.field  # type: ignore[attr-defined]


@attrs.frozen
class Compare(Rule):
    """``field op value``."""

    field: str
    op: Op
    value: Value

    def __attrs_post_init__(self) -> None:
        spec = _spec(self.field)
        object.__setattr__(self, "value", _check_value(spec, self.value))
        if self.op not in ("==", "!=", "<", "<=", ">", ">="):
            raise RuleSyntaxError(f"unknown comparison {self.op!r}")
        if spec.kind is FieldKind.TEXT and self.op not in ("==", "!="):
            raise RuleSyntaxError(
                f"{self.field} is text: use ==, !=, in, startswith or contains, not {self.op}"
            )

    def __str__(self) -> str:
        return f"{self.field} {self.op} {_show(self.value)}"


@attrs.frozen
class Between(Rule):
    """``low <= field <= high`` (both ends included)."""

    field: str
    low: Value
    high: Value

    def __attrs_post_init__(self) -> None:
        spec = _spec(self.field)
        if spec.kind not in (FieldKind.INT, FieldKind.INSTANT):
            raise RuleSyntaxError(f"between applies to numbers and instants, not {self.field}")
        object.__setattr__(self, "low", _check_value(spec, self.low))
        object.__setattr__(self, "high", _check_value(spec, self.high))

    def __str__(self) -> str:
        return f"between({self.field}, {_show(self.low)}, {_show(self.high)})"


@attrs.frozen
class InList(Rule):
    """``field in [values]`` (or ``not in`` when ``negated``; a missing value is in neither)."""

    field: str
    values: tuple[Value, ...] = attrs.field(converter=_values)
    negated: bool = False

    def __attrs_post_init__(self) -> None:
        spec = _spec(self.field)
        if spec.kind not in (FieldKind.INT, FieldKind.TEXT):
            raise RuleSyntaxError(f"in [...] applies to numbers and text, not {self.field}")
        object.__setattr__(self, "values", tuple(_check_value(spec, v) for v in self.values))

    def __str__(self) -> str:
        word = "not in" if self.negated else "in"
        return f"{self.field} {word} [{', '.join(_show(v) for v in self.values)}]"


@attrs.frozen
class HasTag(Rule):
    """``"tag" in tags``."""

    tag: str

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.tag, str) or "\x00" in self.tag or len(self.tag) > _MAX_TEXT:
            raise RuleSyntaxError(f"a tag is text, got {self.tag!r}")
        if not _unicode(self.tag):
            raise RuleSyntaxError("a tag must be valid Unicode text")

    def __str__(self) -> str:
        return f"{self.tag!r} in tags"


_PURPOSE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
_CHANNELS: Final = tuple(c.value for c in InteractionChannel)


@attrs.frozen
class Consented(Rule):
    """``consented("purpose", "channel")``: the customer's consent ledger grants ``purpose``
    on ``channel`` at the rule's instant (the snapshot's ``as_of``): the latest decision there
    that applies (a channel-less one, or one on ``channel``; at equal instants the one
    appended later) is a grant, unexpired. ``consented("purpose")`` (``channel`` ``None``)
    asks for the every-channel decision only: a grant limited to one channel does not make
    it true."""

    purpose: str
    channel: str | None = None

    def __attrs_post_init__(self) -> None:
        purpose = self.purpose.value if isinstance(self.purpose, enum.Enum) else self.purpose
        channel = self.channel.value if isinstance(self.channel, enum.Enum) else self.channel
        if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
            raise RuleSyntaxError(
                f"a consent purpose is a lower-case slug (a-z, 0-9, _.:-), got {purpose!r}"
            )
        if channel is not None and channel not in _CHANNELS:
            raise RuleSyntaxError(
                f"a consent channel is one of {', '.join(_CHANNELS)}, got {channel!r}"
            )
        object.__setattr__(self, "purpose", purpose)
        object.__setattr__(self, "channel", channel)

    def __str__(self) -> str:
        if self.channel is None:
            return f"consented({self.purpose!r})"
        return f"consented({self.purpose!r}, {self.channel!r})"


@attrs.frozen
class IsNull(Rule):
    """``field is None`` (or ``is not None`` when ``negated``)."""

    field: str
    negated: bool = False

    def __attrs_post_init__(self) -> None:
        spec = _spec(self.field)
        if spec.kind is FieldKind.TAGS:
            raise RuleSyntaxError("tags is never None (an untagged customer has no tags)")
        if spec.kind is FieldKind.CONSENTS:
            raise RuleSyntaxError("consents is never None; test consented(...)")

    def __str__(self) -> str:
        return f"{self.field} is {'not ' if self.negated else ''}None"


@attrs.frozen
class Match(Rule):
    """Literal text matching: ``field.startswith(text)`` or ``text in field`` (contains)."""

    field: str
    kind: Literal["startswith", "contains"]
    text: str

    def __attrs_post_init__(self) -> None:
        spec = _spec(self.field)
        if spec.kind is not FieldKind.TEXT:
            raise RuleSyntaxError(f"{self.kind} applies to text fields, not {self.field}")
        if self.kind not in ("startswith", "contains"):
            raise RuleSyntaxError(f"unknown text match {self.kind!r}")
        if not isinstance(self.text, str) or "\x00" in self.text or len(self.text) > _MAX_TEXT:
            raise RuleSyntaxError(f"{self.kind} needs text without NUL, got {self.text!r}")
        if not _unicode(self.text):
            raise RuleSyntaxError(f"{self.kind} needs valid Unicode text")

    def __str__(self) -> str:
        return f"{self.field}.{self.kind}({self.text!r})"


@attrs.frozen
class And(Rule):
    """All of ``items`` hold."""

    items: tuple[Rule, ...] = attrs.field(converter=_rules)
    _depth: int = attrs.field(init=False, default=1, eq=False, repr=False)
    precedence: ClassVar[int] = 1

    def __attrs_post_init__(self) -> None:
        if len(self.items) < 2:
            raise RuleSyntaxError("'and' needs at least two operands")
        for item in self.items:
            _rule(item)
        _nest(self, self.items)

    def __str__(self) -> str:
        return " and ".join(_wrap(item, 1) for item in self.items)


@attrs.frozen
class Or(Rule):
    """At least one of ``items`` holds."""

    items: tuple[Rule, ...] = attrs.field(converter=_rules)
    _depth: int = attrs.field(init=False, default=1, eq=False, repr=False)
    precedence: ClassVar[int] = 0

    def __attrs_post_init__(self) -> None:
        if len(self.items) < 2:
            raise RuleSyntaxError("'or' needs at least two operands")
        for item in self.items:
            _rule(item)
        _nest(self, self.items)

    def __str__(self) -> str:
        return " or ".join(_wrap(item, 0) for item in self.items)


@attrs.frozen
class Not(Rule):
    """``item`` does not hold (plain negation: a missing value's false comparison flips)."""

    item: Rule
    _depth: int = attrs.field(init=False, default=1, eq=False, repr=False)
    precedence: ClassVar[int] = 2

    def __attrs_post_init__(self) -> None:
        _rule(self.item)
        _nest(self, (self.item,))

    def __str__(self) -> str:
        return f"not {_wrap(self.item, 2)}"


def _wrap(item: Rule, level: int) -> str:
    # Parenthesise operands of equal or lower precedence, so text parses back to the same tree.
    text = str(item)
    return f"({text})" if item.precedence <= level else text


# -- builder -----------------------------------------------------------------------------------


class FieldRef:
    """A field in the Python builder: ``field("recency_days") <= 30`` or ``F.frequency >= 3``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        _spec(name)
        self.name = name

    def __repr__(self) -> str:
        return f"field({self.name!r})"

    def __eq__(self, value: object) -> Rule:  # type: ignore[override]
        return Compare(self.name, "==", value)  # type: ignore[arg-type]

    def __ne__(self, value: object) -> Rule:  # type: ignore[override]
        return Compare(self.name, "!=", value)  # type: ignore[arg-type]

    def __lt__(self, value: object) -> Rule:
        return Compare(self.name, "<", value)  # type: ignore[arg-type]

    def __le__(self, value: object) -> Rule:
        return Compare(self.name, "<=", value)  # type: ignore[arg-type]

    def __gt__(self, value: object) -> Rule:
        return Compare(self.name, ">", value)  # type: ignore[arg-type]

    def __ge__(self, value: object) -> Rule:
        return Compare(self.name, ">=", value)  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]

    def between(self, low: object, high: object) -> Rule:
        """``low <= field <= high``."""
        return Between(self.name, low, high)  # type: ignore[arg-type]

    def is_in(self, values: Iterable[object]) -> Rule:
        """``field in [values]``."""
        return InList(self.name, tuple(values))  # type: ignore[arg-type]

    def not_in(self, values: Iterable[object]) -> Rule:
        """``field not in [values]`` (false for a missing value)."""
        return InList(self.name, tuple(values), negated=True)  # type: ignore[arg-type]

    def is_null(self) -> Rule:
        """``field is None``."""
        return IsNull(self.name)

    def not_null(self) -> Rule:
        """``field is not None``."""
        return IsNull(self.name, negated=True)

    def startswith(self, text: str) -> Rule:
        """Literal prefix match (no wildcards)."""
        return Match(self.name, "startswith", text)

    def contains(self, text: str) -> Rule:
        """Literal substring match (no wildcards)."""
        return Match(self.name, "contains", text)


def field(name: str) -> FieldRef:
    """A snapshot field for the builder.

    Raises:
        RuleSyntaxError: unknown field (the message lists the allowed ones).
    """
    return FieldRef(name)


class _Fields:
    """``F.recency_days`` is ``field("recency_days")``."""

    def __getattr__(self, name: str) -> FieldRef:
        if name.startswith("__"):
            raise AttributeError(name)
        return FieldRef(name)


F: Final = _Fields()


def tag(name: str) -> Rule:
    """``"name" in tags``."""
    return HasTag(name)


def consented(purpose: str | enum.Enum, channel: str | enum.Enum | None = None) -> Rule:
    """``consented(purpose, channel)``: see :class:`Consented` (a
    :class:`~crmcore.ConsentPurpose` and an :class:`~crmcore.InteractionChannel` are taken
    as their values)."""
    return Consented(purpose, channel)  # type: ignore[arg-type]  # converted inside


def ago(
    delta: dt.timedelta | None = None, *, days: int = 0, hours: int = 0, minutes: int = 0
) -> Ago:
    """An instant before the snapshot's ``as_of``: ``ago(days=30)`` is ``now() - days(30)``."""
    total = delta or dt.timedelta()
    total += dt.timedelta(days=days, hours=hours, minutes=minutes)
    return Ago(total // dt.timedelta(microseconds=1))
