"""What the analytic commands compute: RFM rows, rule matches and the report's figures."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import IO, Final

import numpy as np

from crmcore.analytics import RfmPolicy, RfmResult
from crmcore.cli._report import Movement, ReportData, SegmentRow, ValueBand, ValueSection
from crmcore.domain import LifecycleStage, Money, currency_exponent
from crmcore.errors import ConfigurationError, ValidationError
from crmcore.services import Analytics, Crm

__all__ = [
    "RFM_COLUMNS",
    "movements",
    "report_data",
    "write_rfm_csv",
]

RFM_COLUMNS: Final = (
    "crm_number",
    "external_id",
    "recency_days",
    "frequency",
    "monetary",
    "r",
    "f",
    "m",
    "segment",
)
"""Columns of ``crmcore rfm`` output, in order."""

FUNNEL: Final = tuple(stage.value for stage in LifecycleStage)


def _rfm_rows(result: RfmResult, crm: Crm) -> Iterator[list[str]]:
    metrics = result.metrics
    ids = crm.external_ids()
    numbers = metrics.numbers()
    order = np.argsort(metrics.number_order(), kind="stable")
    recency = metrics.recency_days
    scored = result.scored
    frequency, monetary = metrics.frequency, metrics.monetary
    segments = result.segments()
    currency = crm.store.reporting_currency
    for i in order.tolist():
        number = numbers[i]
        ok = bool(scored[i])
        yield [
            number.value,
            ids.get(number, ""),
            str(int(recency[i])) if ok else "",
            str(int(frequency[i])),
            str(Money.from_minor_units(int(monetary[i]), currency).amount),
            str(int(result.r[i])) if ok else "",
            str(int(result.f[i])) if ok else "",
            str(int(result.m[i])) if ok else "",
            (segments[i] or "") if ok else "",
        ]


def write_rfm_csv(result: RfmResult, crm: Crm, out: IO[str]) -> int:
    """Write one row per customer (ascending CRM number); return the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RFM_COLUMNS)
    count = 0
    for row in _rfm_rows(result, crm):
        writer.writerow(row)
        count += 1
    return count


def _lifecycle(analytics: Analytics, as_of: dt.datetime) -> list[tuple[str, int]]:
    stages = analytics.snapshot(as_of, {"stage"}).text("stage")
    counts = np.bincount(stages.codes[stages.codes >= 0], minlength=len(stages.categories))
    by_name = {name: int(counts[i]) for i, name in enumerate(stages.categories)}
    return [(stage, by_name.get(stage, 0)) for stage in FUNNEL]


def movements(analytics: Analytics) -> list[Movement]:
    """Each saved segment's latest run compared with the run before it."""
    out: list[Movement] = []
    for segment in analytics.segments():
        latest = analytics.latest_run(segment.name)
        if latest is None:
            continue
        previous = analytics.latest_run(segment.name, before=latest.as_of)
        entered, exited = latest.diff(previous)
        out.append(
            Movement(
                segment=segment.name,
                rule=segment.rule,
                size=len(latest.members),
                entered=len(entered),
                exited=len(exited),
                previous_as_of=None if previous is None else previous.as_of,
            )
        )
    return out


VALUE_BANDS: Final = (
    (0.8, "likely active (P(alive) >= 0.8)"),
    (0.5, "cooling (0.5 to 0.8)"),
    (0.2, "at risk (0.2 to 0.5)"),
    (0.0, "likely lost (P(alive) < 0.2)"),
)
"""Lower bounds and labels of the report's churn bands."""


def value_section(analytics: Analytics, as_of: dt.datetime, horizon_days: int) -> ValueSection:
    """Fit BG/NBD and Gamma-Gamma as of ``as_of`` and band the buyers by P(alive).

    A store the models cannot be fitted on (no repeat buyers yet, SciPy not installed) gives
    a section with a ``note`` saying why, never an error: the rest of the report stands.
    """
    try:
        purchases = analytics.fit_bgnbd(as_of)
        spend = analytics.fit_gamma_gamma(as_of)
    except (ValidationError, ConfigurationError) as exc:
        return ValueSection(horizon_days=horizon_days, note=f"not available ({exc})")
    alive = purchases.probability_alive()
    expected = purchases.expected_purchases(horizon_days / purchases.model.period_days)
    clv = analytics.customer_lifetime_value(purchases, spend, horizon_days=horizon_days)
    scale = 10 ** currency_exponent(analytics.crm.store.reporting_currency)
    bands = []
    upper = np.inf
    for lower, label in VALUE_BANDS:
        members = (alive >= lower) & (alive < upper)
        bands.append(
            ValueBand(
                label=label,
                customers=int(members.sum()),
                expected_purchases=float(expected[members].sum()),
                clv_minor=round(float(clv[members].sum()) * scale),
            )
        )
        upper = lower
    ranked = np.sort(clv)[::-1]
    top = ranked[: max(1, len(ranked) // 10)].sum()
    total = ranked.sum()
    return ValueSection(
        horizon_days=horizon_days,
        buyers=len(alive),
        bands=tuple(bands),
        top_decile_clv_share=float(top / total) if total > 0 else 0.0,
        parameters={**purchases.model.parameters, **spend.model.parameters},
    )


def report_data(
    analytics: Analytics,
    as_of: dt.datetime,
    policy: RfmPolicy | None = None,
    *,
    value_horizon_days: int | None = 365,
) -> ReportData:
    """Score, group and count everything the report shows (no personal data).

    ``value_horizon_days`` (``None``: leave the section out) is the horizon of the value and
    churn section.
    """
    policy = policy or RfmPolicy()
    result = analytics.rfm(as_of, policy)
    metrics = result.metrics
    k = policy.k
    scored = result.scored
    monetary = metrics.monetary
    names = result.segment_names
    codes = result.segment_codes.astype(np.int64)
    sizes = np.bincount(codes[scored], minlength=len(names))
    values = np.zeros(len(names), dtype=np.int64)
    np.add.at(values, codes[scored], monetary[scored])
    rows = [
        SegmentRow(name, int(sizes[i]), int(values[i]))
        for i, name in enumerate(names)
        if sizes[i] > 0
    ]
    rows.sort(key=lambda row: (-row.customers, row.name))
    unscored = ~scored
    if unscored.any():
        rows.append(SegmentRow("unscored", int(unscored.sum()), int(monetary[unscored].sum())))
    shape = policy.shape
    grid = np.zeros((shape[0], shape[1]), dtype=np.int64)
    grid_value = np.zeros((shape[0], shape[1]), dtype=np.int64)
    r = result.r[scored].astype(np.int64) - 1
    f = result.f[scored].astype(np.int64) - 1
    np.add.at(grid, (r, f), 1)
    np.add.at(grid_value, (r, f), monetary[scored])
    store = analytics.crm.store
    return ReportData(
        as_of=as_of,
        currency=store.reporting_currency,
        customers=len(result),
        scored=result.n,
        segments=rows,
        grid=grid.tolist(),
        grid_value=grid_value.tolist(),
        lifecycle=_lifecycle(analytics, as_of),
        movements=movements(analytics),
        k=k,
        ties=str(policy.ties),
        value=None
        if value_horizon_days is None
        else value_section(analytics, as_of, value_horizon_days),
    )
