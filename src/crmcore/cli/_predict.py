"""``crmcore predict`` (BG/NBD + Gamma-Gamma per customer) and ``crmcore lifecycle reclassify``."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Final, cast

import click
import numpy as np

from crmcore.analytics import Period
from crmcore.cli._common import (
    current_config,
    db_option,
    err_console,
    open_store,
    parse_instant,
    translate_errors,
)
from crmcore.ports import Store
from crmcore.services import Analytics, Crm

__all__ = ["lifecycle", "predict_command"]

PREDICT_COLUMNS: Final = (
    "crm_number",
    "repeat_purchases",
    "t_x",
    "T",
    "probability_alive",
    "expected_purchases",
    "expected_spend",
    "clv",
)
"""Columns of ``crmcore predict`` output, in order."""


def _analytics(store: Store) -> Analytics:
    return Analytics(Crm(store, converter=current_config().converter))


@click.command("predict")
@db_option
@click.option("--as-of", "as_of", required=True, metavar="TIME", help="ISO 8601 instant or date.")
@click.option(
    "--period",
    type=click.Choice(["day", "week"]),
    default="day",
    show_default=True,
    help="Purchase period: repeat purchases are counted per local day or week.",
)
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone of the periods.")
@click.option(
    "--model",
    type=click.Choice(["bgnbd", "pareto-nbd"]),
    default="bgnbd",
    show_default=True,
    help="Purchase model (Pareto/NBD fits more slowly).",
)
@click.option(
    "--horizon-days",
    type=click.FloatRange(min=1),
    default=365.0,
    show_default=True,
    help="Days ahead for expected purchases and CLV.",
)
@click.option(
    "--discount-rate",
    type=click.FloatRange(0, 10, max_open=True),
    default=0.01,
    show_default=True,
    help="Discount rate per 30 days for CLV.",
)
@click.option(
    "--margin",
    type=float,
    default=1.0,
    show_default=True,
    help="Profit margin applied to CLV (1 = revenue).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    default="-",
    help="CSV file, or .parquet (needs pyarrow); default: CSV on stdout.",
)
def predict_command(
    db: str | None,
    as_of: str,
    period: str,
    tz: str,
    model: str,
    horizon_days: float,
    discount_rate: float,
    margin: float,
    out: Path,
) -> None:
    """Fit BG/NBD and Gamma-Gamma as of TIME; write each buyer's P(alive), expected purchases,
    expected spend and CLV over --horizon-days.

    Customers without a purchase as of TIME are not listed. The fitted parameters go to
    stderr.
    """
    when = parse_instant(as_of, "--as-of")
    with open_store(db) as store, translate_errors():
        analytics = _analytics(store)
        unit = cast(Period, period)
        fit = analytics.fit_bgnbd if model == "bgnbd" else analytics.fit_pareto_nbd
        purchases = fit(when, period=unit, tz=tz)
        spend = analytics.fit_gamma_gamma(when, period=unit, tz=tz)
        periods = horizon_days / purchases.model.period_days
        columns = {
            "crm_number": purchases.numbers.astype(str),
            "repeat_purchases": purchases.summary.x.astype(np.int64),
            "t_x": purchases.summary.t_x,
            "T": purchases.summary.big_t,
            "probability_alive": purchases.probability_alive(),
            "expected_purchases": purchases.expected_purchases(periods),
            "expected_spend": spend.expected_spend(),
            "clv": analytics.customer_lifetime_value(
                purchases,
                spend,
                horizon_days=horizon_days,
                discount_rate=discount_rate,
                margin=margin,
            ),
        }
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({k: columns[k] for k in PREDICT_COLUMNS}), out)
    else:
        with click.open_file(str(out), "w", encoding="utf-8", lazy=False) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(PREDICT_COLUMNS)
            for row in zip(*(columns[k].tolist() for k in PREDICT_COLUMNS), strict=True):
                writer.writerow(row)
    console = err_console()
    fitted = purchases.model
    name = "BG/NBD" if model == "bgnbd" else "Pareto/NBD"
    console.print(
        f"{len(purchases.numbers):,} buyers as of {when.isoformat()}, per {period}: {name} "
        + ", ".join(f"{k}={v:.4g}" for k, v in fitted.parameters.items())
        + f" (log-likelihood {fitted.log_likelihood:.1f}); Gamma-Gamma "
        + ", ".join(f"{k}={v:.4g}" for k, v in spend.model.parameters.items())
    )


@click.group("lifecycle")
def lifecycle() -> None:
    """Lifecycle stages."""


@lifecycle.command("reclassify")
@db_option
@click.option("--as-of", "as_of", metavar="TIME", default=None, help="Default: now.")
def reclassify_command(db: str | None, as_of: str | None) -> None:
    """Move every customer to the stage its purchase history calls for (the default
    lifecycle policy), recording each change with its reason."""
    with open_store(db) as store, translate_errors():
        analytics = _analytics(store)
        when = parse_instant(as_of, "--as-of") if as_of else analytics.crm.clock.now()
        moves = analytics.reclassify(as_of=when)
    steps = Counter(
        f"{change.from_stage.value} -> {change.to_stage.value}"
        for move in moves
        for change in move.changes
    )
    console = err_console()
    console.print(f"{len(moves):,} customers moved, as of {when.isoformat()}")
    for step, count in sorted(steps.items()):
        console.print(f"  {step}: {count:,}")
