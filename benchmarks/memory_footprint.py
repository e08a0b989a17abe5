"""Bytes held per transaction, bulk import time and per-row record + refresh of the in-memory
store, on the benchmark's generated data.

usage: ``python -m benchmarks.memory_footprint CUSTOMERS [EVENTS]`` (from the repository
root). Reads RSS from ``/proc/self/statm`` (Linux); releases garbage, pyarrow's pool and
malloc's free pages before each reading so the delta is what the store holds.
"""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import sys
import time


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _settle() -> None:
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def main(customers: int, events: int) -> None:
    from benchmarks import load
    from benchmarks.data import END_US, generate, incremental_events
    from crmcore import Analytics, Crm, FixedClock, InMemoryStore

    data = generate(customers)
    store = InMemoryStore(reporting_currency=load.CURRENCY)
    nums = load.numbers(store.scheme, customers)
    as_of = load.instant(END_US)
    crm = Crm(store, clock=FixedClock(as_of))
    tables = load._arrow_tables(data, nums)
    crm.import_customers(tables.pop("customers"), batch_size=load.BATCH)
    transactions = tables.pop("transactions")
    del tables
    _settle()
    before = _rss()
    started = time.perf_counter()
    crm.import_transactions(transactions, batch_size=load.BATCH)
    elapsed = time.perf_counter() - started
    count = len(transactions)
    _settle()
    held = (_rss() - before) / count
    del transactions
    print(f"customers {customers}  transactions {count}")
    print(f"import_transactions {elapsed:.2f} s   held {held:.1f} bytes/transaction")
    analytics = Analytics(crm)
    analytics.rfm(as_of=as_of)
    records = [load.event_transaction(nums, e) for e in incremental_events(data, events)]
    record_s, both_s = [], []
    for tx in records:
        start = time.perf_counter()
        crm.record_transaction(tx)
        middle = time.perf_counter()
        analytics.refresh(tx.customer, as_of)
        end = time.perf_counter()
        record_s.append(middle - start)
        both_s.append(end - start)
    print(
        f"record_transaction p50 {statistics.median(record_s) * 1e6:.1f} us   "
        f"record + refresh p50 {statistics.median(both_s) * 1e6:.1f} us ({len(records)} events)"
    )
    with store.unit_of_work() as uow:
        uow.transactions.for_customer(nums[-1])
        start = time.perf_counter()
        for number in nums[:2000]:
            uow.transactions.for_customer(number)
        print(f"for_customer {(time.perf_counter() - start) / 2000 * 1e6:.1f} us")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3000)
