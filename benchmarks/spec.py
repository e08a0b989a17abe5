"""What every implementation computes: the definitions of DESIGN §4, the ten rules, the
named-segment table, and the shapes of the results compared for agreement.

The rules are written once as a tiny expression tree and printed for each implementation: as
crmcore rule text, as a pandas/numpy mask, as a polars expression and as SQL. The printers are
deliberately plain: they are what a user of each tool would have typed by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from benchmarks.data import END_US, US_PER_DAY

K: Final = 5
AS_OF_US: Final = END_US

# -- rules -------------------------------------------------------------------------------------
# A node is one of: ("and", a, b) | ("or", a, b) | ("not", a) | ("cmp", field, op, value)
#   | ("tag", name) | ("between", field, lo, hi) | ("stage_in", (names...))
Node = tuple[Any, ...]

RULES: Final[tuple[tuple[str, Node], ...]] = (
    (
        "recent_repeat",
        ("and", ("cmp", "recency_days", "<=", 30), ("cmp", "frequency", ">=", 3)),
    ),
    ("big_spenders", ("cmp", "monetary", ">=", 100_000)),
    (
        "lapsed_loyal",
        ("and", ("cmp", "frequency", ">=", 20), ("cmp", "recency_days", ">", 180)),
    ),
    ("active_vip", ("and", ("tag", "vip"), ("cmp", "recency_days", "<=", 90))),
    (
        "unhappy_regulars",
        ("and", ("cmp", "complaints", ">=", 1), ("cmp", "frequency", ">=", 5)),
    ),
    ("slipping", ("stage_in", ("at_risk", "churned"))),
    ("opted_in_leads", ("and", ("tag", "newsletter"), ("cmp", "frequency", "==", 0))),
    (
        "talkative_small",
        ("and", ("cmp", "interactions", ">=", 5), ("cmp", "monetary", "<", 5_000)),
    ),
    (
        "cooling_valuable",
        ("and", ("between", "recency_days", 31, 90), ("cmp", "monetary", ">=", 20_000)),
    ),
    (
        "active_non_vip",
        (
            "and",
            ("and", ("cmp", "frequency", ">=", 2), ("not", ("tag", "vip"))),
            ("or", ("stage_in", ("active",)), ("stage_in", ("reactivated",))),
        ),
    ),
)
RULE_NAMES: Final = tuple(name for name, _ in RULES)


def rule_text(node: Node) -> str:
    """The rule in crmcore's rule language (Python expression syntax)."""
    op = node[0]
    if op in ("and", "or"):
        return f"({rule_text(node[1])} {op} {rule_text(node[2])})"
    if op == "not":
        return f"not {rule_text(node[1])}"
    if op == "cmp":
        return f"{node[1]} {node[2]} {node[3]!r}"
    if op == "tag":
        return f"{node[1]!r} in tags"
    if op == "between":
        return f"{node[2]!r} <= {node[1]} <= {node[3]!r}"
    if op == "stage_in":
        return f"stage in {list(node[1])!r}"
    raise ValueError(node)


def rule_mask(node: Node, col: Callable[[str], Any]) -> Any:
    """Evaluate with ``&``/``|``/``~`` and comparisons on columns from ``col`` (numpy arrays,
    pandas Series or polars expressions all work). ``recency_days`` of unscored customers must
    compare false (NaN in numpy/pandas, null in polars, filled with false afterwards)."""
    op = node[0]
    if op == "and":
        return rule_mask(node[1], col) & rule_mask(node[2], col)
    if op == "or":
        return rule_mask(node[1], col) | rule_mask(node[2], col)
    if op == "not":
        return ~rule_mask(node[1], col)
    if op == "cmp":
        left, cmp, right = col(node[1]), node[2], node[3]
        return {
            "<=": lambda: left <= right,
            ">=": lambda: left >= right,
            "<": lambda: left < right,
            ">": lambda: left > right,
            "==": lambda: left == right,
        }[cmp]()
    if op == "tag":
        return col(node[1])
    if op == "between":
        value = col(node[1])
        return (value >= node[2]) & (value <= node[3])
    if op == "stage_in":
        return (
            col("stage").is_in(list(node[1]))
            if hasattr(col("stage"), "is_in")
            else (col("stage").isin(list(node[1])))
        )
    raise ValueError(node)


def rule_sql(node: Node) -> str:
    """The rule as a SQL condition over the metrics columns (NULL recency is never true)."""
    op = node[0]
    if op in ("and", "or"):
        return f"({rule_sql(node[1])} {op.upper()} {rule_sql(node[2])})"
    if op == "not":
        return f"NOT {rule_sql(node[1])}"
    if op == "cmp":
        cmp = "=" if node[2] == "==" else node[2]
        return f"{node[1]} {cmp} {int(node[3])}"
    if op == "tag":
        return f"{node[1]} = 1"
    if op == "between":
        return f"{node[1]} BETWEEN {int(node[2])} AND {int(node[3])}"
    if op == "stage_in":
        names = ", ".join(f"'{name}'" for name in node[1])
        return f"stage IN ({names})"
    raise ValueError(node)


# -- named segments ------------------------------------------------------------------------------

# Filled from crmcore's default map when crmcore.analytics is importable (see load_segment_map);
# until then a documented stand-in map so the baselines can be checked against each other.
_FALLBACK_SEGMENTS: Final = (
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose",
    "Hibernating",
    "Lost",
)


def _fallback_segment(r: int, f: int, m: int) -> str:
    fm = (f + m) / 2
    if r >= 4 and fm >= 4:
        return "Champions"
    if r >= 3 and fm >= 3:
        return "Loyal"
    if r >= 4 and fm >= 2:
        return "Potential Loyalist"
    if r == 5:
        return "New"
    if r == 4:
        return "Promising"
    if r == 3 and fm >= 2:
        return "Need Attention"
    if r == 3:
        return "About to Sleep"
    if r <= 2 and fm >= 4:
        return "Can't Lose" if r == 1 else "At Risk"
    if r == 2:
        return "Hibernating"
    return "Lost"


@dataclasses.dataclass(frozen=True)
class SegmentMap:
    """Named segments as data: ``table[r-1, f-1, m-1]`` is the index of a name in ``names``."""

    names: tuple[str, ...]
    table: npt.NDArray[np.int16]

    def rows(self) -> list[tuple[int, int, int, int]]:
        return [
            (r + 1, f + 1, m + 1, int(self.table[r, f, m]))
            for r in range(K)
            for f in range(K)
            for m in range(K)
        ]


def build_segment_map(name_of: Callable[[int, int, int], str]) -> SegmentMap:
    names: list[str] = []
    table = np.empty((K, K, K), dtype=np.int16)
    for r in range(1, K + 1):
        for f in range(1, K + 1):
            for m in range(1, K + 1):
                name = name_of(r, f, m)
                if name not in names:
                    names.append(name)
                table[r - 1, f - 1, m - 1] = names.index(name)
    return SegmentMap(tuple(names), table)


FALLBACK_SEGMENT_MAP: Final = build_segment_map(_fallback_segment)


# -- results -------------------------------------------------------------------------------------

I8 = npt.NDArray[np.int8]
I16 = npt.NDArray[np.int16]


@dataclasses.dataclass
class RfmResult:
    """One row per customer id: scores 1..K (0 = unscored) and segment index (-1)."""

    r: I8
    f: I8
    m: I8
    segment: I16

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return dataclasses.asdict(self)


def from_rank_min(rank_min: npt.NDArray[Any], n: int) -> npt.NDArray[np.int8]:
    """The shared-ties score: ``1 + floor(K * (rank_min - 1) / n)``."""
    return (1 + (K * (rank_min.astype(np.int64) - 1)) // n).astype(np.int8)


def cut_points(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The K-1 cut values of scored values (higher is better): the ceil(s*n/K)-th smallest.

    A value's shared-ties score is 1 + the number of cut values it strictly exceeds; this is
    what the incremental workload scores a changed customer against.
    """
    n = len(values)
    positions = [-(-s * n // K) - 1 for s in range(1, K)]
    return np.partition(values, positions)[positions]


def score_against(value: float, cuts: npt.NDArray[Any]) -> int:
    return 1 + int(np.count_nonzero(value > cuts))


@dataclasses.dataclass(frozen=True)
class Cuts:
    """Cut points of the last full run, for scoring one changed customer."""

    recency: npt.NDArray[Any]  # of -recency_days (higher is better)
    frequency: npt.NDArray[Any]
    monetary: npt.NDArray[Any]

    @classmethod
    def from_metrics(
        cls, recency_days: npt.NDArray[Any], frequency: npt.NDArray[Any], monetary: Any
    ) -> Cuts:
        scored = frequency > 0
        return cls(
            cut_points(-recency_days[scored]),
            cut_points(frequency[scored]),
            cut_points(monetary[scored]),
        )

    def score(
        self, recency_days: int | None, frequency: int, monetary: int, segments: SegmentMap
    ) -> tuple[int, int, int, int]:
        """(R, F, M, segment index) of one customer; (0, 0, 0, -1) if unscored."""
        if frequency == 0 or recency_days is None:
            return 0, 0, 0, -1
        r = score_against(-recency_days, self.recency)
        f = score_against(frequency, self.frequency)
        m = score_against(monetary, self.monetary)
        return r, f, m, int(segments.table[r - 1, f - 1, m - 1])


@dataclasses.dataclass(frozen=True)
class CustomerMetrics:
    """One customer's metrics as the rules see them (for the incremental workload)."""

    recency_days: int | None
    frequency: int
    monetary: int
    interactions: int
    complaints: int
    stage: str
    vip: bool
    newsletter: bool

    def field(self, name: str) -> Any:
        value = getattr(self, name)
        return np.nan if value is None else value


def rule_bits(metrics: CustomerMetrics) -> int:
    """The ten rule memberships of one customer as a bit mask (bit i = rule i)."""
    bits = 0
    for i, (_, node) in enumerate(RULES):
        if _holds(node, metrics):
            bits |= 1 << i
    return bits


def _holds(node: Node, m: CustomerMetrics) -> bool:
    op = node[0]
    if op == "and":
        return _holds(node[1], m) and _holds(node[2], m)
    if op == "or":
        return _holds(node[1], m) or _holds(node[2], m)
    if op == "not":
        return not _holds(node[1], m)
    if op == "stage_in":
        return m.stage in node[1]
    if op == "tag":
        return bool(getattr(m, node[1]))
    mask = rule_mask(node, lambda name: np.asarray([m.field(name)], dtype=np.float64))
    return bool(np.asarray(mask)[0])


def pack_rules(masks: Mapping[str, Any]) -> npt.NDArray[np.int16]:
    """Ten boolean columns as one int16 bit mask per customer (bit i = rule i)."""
    out: npt.NDArray[np.int16] | None = None
    for i, name in enumerate(RULE_NAMES):
        bit = np.asarray(masks[name], dtype=np.int16) << i
        out = bit if out is None else out | bit
    assert out is not None
    return out


def metrics_from_row(row: Any) -> CustomerMetrics:
    frequency, monetary, last_us, interactions, complaints, stage, vip, newsletter = row
    return CustomerMetrics(
        None if last_us is None else (AS_OF_US - int(last_us)) // US_PER_DAY,
        int(frequency),
        int(monetary),
        int(interactions),
        int(complaints),
        str(stage),
        bool(vip),
        bool(newsletter),
    )
