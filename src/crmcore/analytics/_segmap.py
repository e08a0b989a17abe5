"""Maps from (R, F, M) scores to named segments, checked total and non-overlapping."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore.errors import ConfigurationError, ValidationError

__all__ = ["DEFAULT_SEGMENT_MAP", "SegmentMap", "SegmentRule"]

Range = tuple[int, int]


def _range(field: str, value: object) -> Range:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and value[0] <= value[1]
    ):
        return (int(value[0]), int(value[1]))
    raise ValidationError(field, value, "must be a score or an inclusive (low, high) pair")


@attrs.frozen
class SegmentRule:
    """One box of a segment map: a name for every (r, f, m) within inclusive ranges.

    Args:
        name: the segment's name.
        r, f, m: a score or an inclusive ``(low, high)`` range (``None``: any score).
    """

    name: str
    r: Range | int | None = None
    f: Range | int | None = None
    m: Range | int | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("name", self.name, "a segment needs a non-empty name")
        for label in ("r", "f", "m"):
            value = getattr(self, label)
            if value is not None:
                object.__setattr__(self, label, _range(label, value))

    def cells(self, shape: tuple[int, int, int]) -> Iterable[tuple[int, int, int]]:
        """Every (r, f, m) score triple this box covers within ``shape``."""
        r = _range("r", self.r or (1, shape[0]))
        f = _range("f", self.f or (1, shape[1]))
        m = _range("m", self.m or (1, shape[2]))
        for ri in range(r[0], r[1] + 1):
            for fi in range(f[0], f[1] + 1):
                for mi in range(m[0], m[1] + 1):
                    yield ri, fi, mi


class SegmentMap:
    """A total, non-overlapping map from score triples to segment names.

    Built from :class:`SegmentRule` boxes (a name may have several). Construction checks
    that every ``(r, f, m)`` with ``1 <= r <= kr`` etc. is covered by exactly one box and
    raises :class:`~crmcore.errors.ConfigurationError` naming the first hole or overlap.
    Lookup is one fancy index into a small table, so naming a million customers costs a
    few milliseconds.

    Args:
        rules: the boxes.
        shape: ``(kr, kf, km)``, the number of levels of each score (default 5, 5, 5).
    """

    def __init__(
        self, rules: Sequence[SegmentRule], shape: tuple[int, int, int] = (5, 5, 5)
    ) -> None:
        if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValidationError("shape", shape, "must be three positive integers")
        self.rules = tuple(rules)
        self.shape = shape
        names: list[str] = []
        table = np.full(tuple(s + 1 for s in shape), -1, dtype=np.int8)
        owner: dict[tuple[int, int, int], str] = {}
        for rule in self.rules:
            if not isinstance(rule, SegmentRule):
                raise ValidationError("rules", rule, "must be SegmentRule boxes")
            if rule.name not in names:
                names.append(rule.name)
            code = names.index(rule.name)
            for cell in rule.cells(shape):
                if not all(1 <= c <= s for c, s in zip(cell, shape, strict=True)):
                    raise ConfigurationError(
                        f"segment {rule.name!r} covers {cell}, outside the scores 1..{shape}"
                    )
                if cell in owner:
                    raise ConfigurationError(
                        f"segment map overlaps: (r, f, m) = {cell} is both "
                        f"{owner[cell]!r} and {rule.name!r}"
                    )
                owner[cell] = rule.name
                table[cell] = code
        for r in range(1, shape[0] + 1):
            for f in range(1, shape[1] + 1):
                for m in range(1, shape[2] + 1):
                    if (r, f, m) not in owner:
                        raise ConfigurationError(
                            f"segment map has a hole: no segment for (r, f, m) = {(r, f, m)}"
                        )
        self.names: tuple[str, ...] = tuple(names)
        self.table = table
        self._flat = table.ravel()

    def __repr__(self) -> str:
        return f"SegmentMap({len(self.names)} segments over scores {self.shape})"

    def codes(
        self, r: npt.NDArray[np.int8], f: npt.NDArray[np.int8], m: npt.NDArray[np.int8]
    ) -> npt.NDArray[np.int8]:
        """Segment codes (indices into :attr:`names`) for score arrays; -1 where any is 0."""
        _, kf, km = self.shape
        index = r.astype(np.int32)
        index *= kf + 1
        index += f
        index *= km + 1
        index += m
        return self._flat[index]

    def name(self, r: int, f: int, m: int) -> str:
        """The segment of one score triple."""
        return self.names[int(self.table[r, f, m])]

    def table_rows(self) -> list[tuple[str, str]]:
        """``(name, condition)`` rows describing the map, for documentation."""

        def show(label: str, value: Range | int | None) -> str:
            if value is None:
                return ""
            low, high = _range(label, value)
            return f"{label}={low}" if low == high else f"{label}={low}-{high}"

        rows = []
        for rule in self.rules:
            parts = [show("R", rule.r), show("F", rule.f), show("M", rule.m)]
            rows.append((rule.name, ", ".join(p for p in parts if p) or "any"))
        return rows


DEFAULT_SEGMENT_MAP: Final = SegmentMap(
    [
        SegmentRule("Champions", r=(5, 5), f=(4, 5)),
        SegmentRule("Loyal", r=(3, 4), f=(4, 5)),
        SegmentRule("Potential Loyalist", r=(4, 5), f=(2, 3)),
        SegmentRule("New", r=5, f=1),
        SegmentRule("Promising", r=4, f=1),
        SegmentRule("Need Attention", r=3, f=3),
        SegmentRule("About to Sleep", r=3, f=(1, 2)),
        SegmentRule("At Risk", r=(1, 2), f=(3, 4)),
        SegmentRule("Can't Lose", r=(1, 2), f=5),
        SegmentRule("Hibernating", r=2, f=(1, 2)),
        SegmentRule("Hibernating", r=1, f=2),
        SegmentRule("Lost", r=1, f=1),
    ]
)
"""The default map over k = 5 (the classic R x F grid; M does not change the name).

| R \\ F | 1 | 2 | 3 | 4 | 5 |
| --- | --- | --- | --- | --- | --- |
| 5 | New | Potential Loyalist | Potential Loyalist | Champions | Champions |
| 4 | Promising | Potential Loyalist | Potential Loyalist | Loyal | Loyal |
| 3 | About to Sleep | About to Sleep | Need Attention | Loyal | Loyal |
| 2 | Hibernating | Hibernating | At Risk | At Risk | Can't Lose |
| 1 | Lost | Hibernating | At Risk | At Risk | Can't Lose |
"""
