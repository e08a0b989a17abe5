"""Per-row write and read latency of the in-memory store on the benchmark's generated data.

usage: ``python -m benchmarks.record_latency CUSTOMERS [EVENTS]`` (from the repository root).

Loads the generated customers and transactions through the repositories' ``add_many`` (so
the script also runs against crmcore versions without the columnar import, to compare a
checkout side by side: ``PYTHONPATH=/path/to/other/src python -m benchmarks.record_latency``),
then times, per call: ``Crm.record_transactions`` with small batches (10 rows),
``Crm.record_transaction``, ``record_transaction`` + ``Analytics.refresh``, and
``TransactionRepository.for_customer`` (one customer's history read back as objects).
Prints p50/p99 of each (microseconds), wall-clock and this process's CPU time.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

BULK = 10


def _quantiles(samples: list[tuple[float, float]]) -> str:
    out = []
    for kind, values in (("wall", [w for w, _ in samples]), ("cpu", [c for _, c in samples])):
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        out.append(f"{kind} p50 {statistics.median(ordered) * 1e6:6.1f} p99 {p99 * 1e6:7.1f}")
    return "   ".join(out) + " us"


def _time(calls: list[Callable[[], object]]) -> list[tuple[float, float]]:
    """Wall and CPU time of each call (on a shared machine the CPU time of this process is
    the steadier figure: waiting for a core is not in it)."""
    out = []
    for call in calls:
        cpu = time.process_time()
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start, time.process_time() - cpu))
    return out


def main(customers: int, events: int) -> None:
    from benchmarks import load
    from benchmarks.data import END_US, generate, incremental_events
    from crmcore import Analytics, Crm, FixedClock, InMemoryStore

    data = generate(customers)
    store = InMemoryStore(reporting_currency=load.CURRENCY)
    nums = load.numbers(store.scheme, customers)
    as_of = load.instant(END_US)
    crm = Crm(store, clock=FixedClock(as_of))
    with store.unit_of_work() as uow:
        uow.customers.add_many(load.customers(data, nums, 0, customers))
        uow.commit()
    count = len(data.transactions["customer_id"])
    started = time.perf_counter()
    for lo, hi in load._batches(count):
        with store.unit_of_work() as uow:
            uow.transactions.add_many(load.transactions(data, nums, lo, hi))
            uow.commit()
    print(
        f"customers {customers}  transactions {count}  load {time.perf_counter() - started:.1f} s"
    )
    analytics = Analytics(crm)
    analytics.rfm(as_of=as_of)
    stream = incremental_events(data, events * (BULK + 1))
    records = [load.event_transaction(nums, e) for e in stream[:events]]
    bulks = [
        [
            load.event_transaction(nums, e)
            for e in stream[events + i * BULK : events + (i + 1) * BULK]
        ]
        for i in range(events)
    ]
    record = _time([lambda tx=tx: crm.record_transaction(tx) for tx in records])
    bulk = _time([lambda b=b: crm.record_transactions(b) for b in bulks])
    # The same events again as new transactions (each built object has a fresh random id).
    again = [load.event_transaction(nums, e) for e in stream[:events]]
    both = _time(
        [
            lambda tx=tx: (crm.record_transaction(tx), analytics.refresh(tx.customer, as_of))
            for tx in again
        ]
    )
    with store.unit_of_work() as uow:
        reads = _time(
            [lambda n=n: uow.transactions.for_customer(n) for n in nums[: min(events, customers)]]
        )
    print(f"record_transaction           {_quantiles(record)}  ({events} calls)")
    print(f"record_transactions({BULK})     {_quantiles(bulk)}  per call ({events} calls)")
    print(f"record + refresh             {_quantiles(both)}  ({events} calls)")
    print(f"for_customer                 {_quantiles(reads)}  ({len(reads)} customers)")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3000)
