"""RFM quantile scores computed by the database with window functions (DESIGN §4).

For each dimension, over the scored customers only (``PARTITION BY`` "has a purchase") and
ordered worst to best (recency: most days first; frequency, monetary: lowest first)::

    ties="shared":  score = 1 + (k * (RANK()       OVER (... ORDER BY value)         - 1)) DIV n
    ties="ordinal": score = 1 + (k * (ROW_NUMBER() OVER (... ORDER BY value, number) - 1)) DIV n

with ``n = COUNT(*) OVER (PARTITION BY ...)`` and ``recency_days = (as_of_us -
last_purchase_us) DIV 86400000000`` (never negative, so integer division is floor). The same
query returns each customer's ``ROW_NUMBER`` in that order, from which the cut points (what
``RfmResult.score_one`` compares a later single customer with) are read without sorting in
Python. Threshold scales need no window: they are applied to the fetched values.

SQLite >= 3.25, PostgreSQL and MariaDB >= 10.2 have these window functions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import numpy as np
from sqlalchemy import BigInteger, ColumnElement, case, func, literal, select

from crmcore._epoch import MICROS_PER_DAY, to_us
from crmcore.adapters.sqlalchemy._binding import Binding
from crmcore.adapters.sqlalchemy._frame import number_order
from crmcore.adapters.sqlalchemy._reading import crm_numbers, current_frame
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.analytics._derive import AggregateColumns, build_metrics
from crmcore.analytics._rfm import DIMENSIONS, RFM_FIELDS, CutPoints, RfmPolicy, RfmResult
from crmcore.analytics._scores import ScoreArray, cut_ranks
from crmcore.analytics.columns import columns_for_fields

__all__ = ["score_in_database"]

_RAW: Final = tuple(sorted(columns_for_fields(RFM_FIELDS)))
"""The raw columns RFM reads (fetched after the CRM number, in this order)."""
_FIRST_WINDOW: Final = 1 + len(_RAW)
"""Position of the first window column (score, then row number, per quantile dimension)."""


def score_in_database(
    binding: Binding, tables: CrmTables, dialect: str, as_of: dt.datetime, policy: RfmPolicy
) -> RfmResult:
    """Score every customer with window functions; identical to the numpy path.

    Args:
        binding: how to reach the store's database.
        tables: the store's tables.
        dialect: the store's dialect name.
        as_of: aware instant.
        policy: the RFM policy (quantile dimensions use windows, threshold ones the values).

    Returns:
        The :class:`~crmcore.analytics.RfmResult` (with the snapshot's three columns).
    """
    as_of_us = to_us(as_of)
    k = policy.k
    with binding.reading() as conn:
        frame = current_frame(conn, tables, dialect, as_of_us, _RAW)
        last = frame.column("last_purchase_us")
        bought = case((last.is_(None), 0), else_=1)
        values: dict[str, ColumnElement[Any]] = {
            "recency_days": (literal(as_of_us, BigInteger) - last)
            // literal(MICROS_PER_DAY, BigInteger),
            "frequency": frame.column("purchase_count"),
            "monetary": frame.column("purchase_minor") - frame.column("refund_minor"),
        }
        n = func.count().over(partition_by=bought)
        windows: list[ColumnElement[Any]] = []
        quantile: list[str] = []
        for dim, name, direction in DIMENSIONS:
            if policy.scale(dim) is not None:
                continue
            value = values[name]
            worst_first = value.desc() if direction == "lower" else value.asc()
            row_number = func.row_number().over(
                partition_by=bought, order_by=(worst_first, number_order(frame))
            )
            position = (
                func.rank().over(partition_by=bought, order_by=worst_first)
                if policy.ties == "shared"
                else row_number
            )
            score = 1 + (literal(k, BigInteger) * (position - 1)) // n
            windows.extend((score, row_number))
            quantile.append(dim)
        query = (
            select(
                frame.number,
                *(func.coalesce(frame.column(r), 0) for r in _RAW),
                *windows,
            )
            .select_from(frame.source)
            .where(frame.where)
            .order_by(number_order(frame))
        )
        rows = conn.execute(query).cursor.fetchall()
    size = len(rows)
    columns = (
        list(zip(*rows, strict=True))
        if rows
        else [() for _ in range(_FIRST_WINDOW + 2 * len(quantile))]
    )
    raw = {
        name: np.array(columns[i + 1], dtype=np.int64).reshape(size) for i, name in enumerate(_RAW)
    }
    held = list(columns[0])
    metrics = build_metrics(
        as_of,
        RFM_FIELDS,
        size=size,
        aggregates=AggregateColumns(**raw),
        channel_counts=None,
        profile=None,
        numbers=lambda: crm_numbers(held),
    )
    scored = metrics.scored
    count = int(np.count_nonzero(scored))
    scores: dict[str, ScoreArray] = {}
    cut_points: dict[str, CutPoints] = {}
    for dim, name, direction in DIMENSIONS:
        column = metrics.column(name)
        full = np.zeros(size, dtype=np.int8)
        scale = policy.scale(dim)
        if scale is not None:
            full[scored] = scale.scores(column[scored], direction)
            scores[dim] = full
            cut_points[dim] = CutPoints(name, "threshold", direction, scale.bounds, scale.k)
            continue
        at = _FIRST_WINDOW + 2 * quantile.index(dim)
        window_scores = np.array(columns[at], dtype=np.int64).reshape(size)
        row_numbers = np.array(columns[at + 1], dtype=np.int64).reshape(size)
        full[scored] = window_scores[scored]
        scores[dim] = full
        cuts: tuple[int, ...] = ()
        cut_numbers: tuple[str | None, ...] = ()
        if count:
            by_position = np.empty(count, dtype=np.int64)
            by_position[row_numbers[scored] - 1] = column[scored]
            ranks = cut_ranks(count, k)
            if policy.ties == "shared":
                picks = [m - 1 for m in ranks]
            else:
                picks = [min(m, count - 1) for m in ranks]
                row_at = np.empty(count, dtype=np.int64)
                row_at[row_numbers[scored] - 1] = np.flatnonzero(scored)
                cut_numbers = tuple(
                    None if m >= count else str(held[int(row_at[m])]) for m in ranks
                )
            cuts = tuple(by_position[picks].tolist())
        method = "quantile-shared" if policy.ties == "shared" else "quantile-ordinal"
        cut_points[dim] = CutPoints(name, method, direction, cuts, k, cut_numbers)
    return RfmResult(metrics, policy, scored, scores, cut_points)
