"""What auditing costs a read: ``Crm.get`` of one customer, per call, on SQLite and PostgreSQL.

usage: ``python -m benchmarks.audited_read URL [CUSTOMERS] [READS]`` (from the repository
root; e.g. ``sqlite:////tmp/crm.sqlite`` or ``postgresql+psycopg://postgres@127.0.0.1/test``).

Registers ``CUSTOMERS`` customers (default 1000) under a fresh table prefix, then times
``READS`` (default 2000) ``Crm.get`` calls of random customers, and drops the tables. It uses
only APIs that predate the audit trail, so the same script measures a checkout without it:
``PYTHONPATH=/path/to/other/src python -m benchmarks.audited_read URL``. Prints p50/p99 of
wall-clock and CPU time per call (microseconds).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
import uuid


def _quantiles(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{name} p50 {statistics.median(ordered) * 1e6:7.1f} p99 {p99 * 1e6:8.1f} us"


def main(url: str, customers: int, reads: int) -> None:
    from crmcore import Crm
    from crmcore.adapters.sqlalchemy import SqlStore

    prefix = f"b{uuid.uuid4().hex[:8]}_"
    store = SqlStore.from_url(url, create_schema=True, table_prefix=prefix)
    try:
        crm = Crm(store)
        numbers = crm.register_many(
            [
                crm.new_customer(f"Customer {i}", emails=[f"c{i}@example.com"])
                for i in range(customers)
            ]
        ).registered
        keys = [c.number for c in numbers]
        rng = random.Random(7)
        for number in rng.sample(keys, min(100, len(keys))):  # warm up
            crm.get(number)
        wall: list[float] = []
        cpu: list[float] = []
        for number in (rng.choice(keys) for _ in range(reads)):
            c0, w0 = time.process_time(), time.perf_counter()
            crm.get(number)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        print(f"{store.engine.dialect.name}: {reads} x Crm.get")  # type: ignore[union-attr]
        print("  " + _quantiles("wall", wall) + "   " + _quantiles("cpu", cpu))
    finally:
        store.drop_schema()
        store.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        args[0],
        int(args[1]) if len(args) > 1 else 1000,
        int(args[2]) if len(args) > 2 else 2000,
    )
