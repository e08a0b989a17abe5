"""Latency of ``Analytics.refresh`` (one customer after a change) on an in-memory store.

``python -m benchmarks.refresh_latency [--customers N] [--events N]`` prints the p50/p99 of
refreshing one customer's R/F/M scores (against the last full run's cut points), named
segment and ten saved rule segments. The full suite measures the same path as workload 3
("incremental") together with recording the transaction; this isolates the refresh.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from crmcore import Analytics, Crm, FixedClock, InMemoryStore, Money, Transaction

AS_OF = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RULES = (
    "recency_days <= 30 and frequency >= 3",
    "monetary >= 1000",
    '"vip" in tags and recency_days <= 90',
    "frequency >= 20 and recency_days > 180",
    "complaints >= 1",
    'stage in ["at_risk", "churned"]',
    "interactions >= 5 and monetary < 5000",
    "31 <= recency_days <= 90",
    "frequency == 0",
    "monetary < 100",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=5_000)
    args = parser.parse_args()

    crm = Crm(InMemoryStore(reporting_currency="USD"), clock=FixedClock(AS_OF))
    numbers = [
        crm.register(f"Customer {i}", tags=["vip"] if i % 7 == 0 else []).number
        for i in range(args.customers)
    ]
    crm.record_transactions(
        Transaction(
            number,
            AS_OF - dt.timedelta(days=i % 300),
            "purchase",  # type: ignore[arg-type]
            Money(1 + i % 50, "USD"),
        )
        for i, number in enumerate(numbers)
    )
    analytics = Analytics(crm)
    for i, rule in enumerate(RULES):
        analytics.define_segment(f"rule-{i}", rule)
    analytics.rfm(as_of=AS_OF)
    timings = []
    for i in range(args.events):
        started = time.perf_counter()
        analytics.refresh(numbers[i % len(numbers)], AS_OF)
        timings.append(time.perf_counter() - started)
    timings.sort()
    p50 = statistics.median(timings) * 1e6
    p99 = timings[int(len(timings) * 0.99)] * 1e6
    print(f"Analytics.refresh over {args.customers} customers, 10 saved segments:")
    print(f"  p50 {p50:.1f} us   p99 {p99:.1f} us   ({args.events} events)")


if __name__ == "__main__":
    main()
