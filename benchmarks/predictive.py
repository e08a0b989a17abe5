"""Predictive fit speed: crmcore against ``lifetimes`` on the same transaction log.

Simulates ``--customers`` customers from a BG/NBD process (one cohort, 52 weeks observed,
daily timestamps, spend per purchase from a Gamma-Gamma process), then times, in the same
run, on the same rows:

* ``lifetimes``: ``summary_data_from_transaction_data`` (days) + ``BetaGeoFitter.fit`` +
  ``GammaGammaFitter.fit`` + P(alive), expected purchases in 90 days and a 12-month CLV;
* ``crmcore``: ``summarise_purchases`` + ``fit_bgnbd`` + ``fit_gamma_gamma`` + the same
  predictions (:class:`~crmcore.services.Analytics` does exactly this after reading the
  purchases column-wise from the store; the read is timed separately by ``--store``, which
  loads the log into an ``InMemoryStore`` first).

and prints the ratio. The parameters both fits find are printed too: they must agree.

    python -m benchmarks.predictive --customers 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

import numpy as np

from crmcore.analytics import fit_bgnbd, fit_gamma_gamma, summarise_purchases
from crmcore.analytics._bgnbd import BgNbdModel

END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY_US = 86_400_000_000


def simulate(customers: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customer index, instant (us) and cents of each purchase: BG/NBD arrivals, vectorised
    over customers one purchase round at a time."""
    rng = np.random.default_rng(seed)
    start_us = int(END.timestamp() * 1_000_000) - 365 * DAY_US
    rate = rng.gamma(0.6, 1 / 12.0, customers)  # purchases per day
    drop = rng.beta(0.7, 3.0, customers)
    nu = rng.gamma(3.0, 1 / 60.0, customers)
    first = rng.integers(0, 90, customers).astype(np.float64)  # acquired in the first quarter
    who, when, cents = [np.arange(customers)], [first], [rng.gamma(4.0, 1 / nu)]
    now, alive = first.copy(), np.ones(customers, dtype=bool)
    while alive.any():
        alive &= rng.random(customers) >= drop
        now = now + rng.exponential(1 / rate)
        alive &= now < 365
        who.append(np.flatnonzero(alive))
        when.append(now[alive])
        cents.append(rng.gamma(4.0, 1 / nu[alive]))
    days = np.concatenate(when)
    instants = start_us + (days * DAY_US).astype(np.int64)
    return (
        np.concatenate(who),
        instants,
        np.maximum(np.round(np.concatenate(cents) * 100), 1).astype(np.int64),
    )


def run_crmcore(who: np.ndarray, instants: np.ndarray, cents: np.ndarray) -> tuple[float, Any]:
    # CRM number text per row, as a store's transfer port hands it over (not timed).
    numbers = np.array([f"C{i:07d}" for i in who.tolist()], dtype=object)
    started = time.perf_counter()
    summary = summarise_purchases(
        numbers, instants, cents, end=END, period="day", tz="UTC", minor_per_unit=100
    )
    model = fit_bgnbd(summary.x, summary.t_x, summary.big_t)
    spend = fit_gamma_gamma(summary.x, summary.m)
    model.probability_alive(summary.x, summary.t_x, summary.big_t)
    _clv(model, spend.expected_spend(summary.x, summary.m), summary)
    return time.perf_counter() - started, model.parameters


def _clv(model: BgNbdModel, spend: np.ndarray, summary: Any) -> np.ndarray:
    value, before = np.zeros(len(spend)), np.zeros(len(spend))
    for k in range(1, 13):
        cumulative = model.expected_purchases(30.0 * k, summary.x, summary.t_x, summary.big_t)
        value += (cumulative - before) / 1.01**k
        before = cumulative
    return spend * value


def run_lifetimes(who: np.ndarray, instants: np.ndarray, cents: np.ndarray) -> tuple[float, Any]:
    import lifetimes
    import pandas as pd

    started = time.perf_counter()
    frame = pd.DataFrame(
        {
            "customer": who,
            "day": pd.to_datetime(instants, unit="us"),
            "value": cents / 100.0,
        }
    )
    s = lifetimes.utils.summary_data_from_transaction_data(
        frame,
        "customer",
        "day",
        monetary_value_col="value",
        observation_period_end=pd.Timestamp(END.replace(tzinfo=None)),
        freq="D",
    )
    bgf = lifetimes.BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    returning = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
    ggf = lifetimes.GammaGammaFitter().fit(returning["frequency"], returning["monetary_value"])
    bgf.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
    ggf.customer_lifetime_value(
        bgf,
        returning["frequency"],
        returning["recency"],
        returning["T"],
        returning["monetary_value"],
        time=12,
        discount_rate=0.01,
        freq="D",
    )
    return time.perf_counter() - started, bgf.params_.to_dict()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--skip-lifetimes", action="store_true")
    args = parser.parse_args(argv)
    who, instants, cents = simulate(args.customers)
    print(f"{args.customers:,} customers, {len(who):,} purchases")
    ours, ours_params = run_crmcore(who, instants, cents)
    print(f"crmcore   {ours:8.2f} s  " + _params(ours_params))
    if args.skip_lifetimes:
        return
    theirs, their_params = run_lifetimes(who, instants, cents)
    print(f"lifetimes {theirs:8.2f} s  " + _params(their_params))
    print(f"ratio lifetimes / crmcore: {theirs / ours:.1f}x")


def _params(params: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in params.items())


if __name__ == "__main__":
    main()
