"""Warm start: how long building an in-memory store from a SQL store takes (docs/backup.md).

Times, on one SQL store (a kept benchmark store, e.g. ``bench-S-kept.sqlite``):

* ``copy``: :func:`crmcore.backup.copy` into a new ``InMemoryStore`` (history read column-wise
  and loaded through ``add_batch``);
* ``dump`` and ``restore``: to Parquet files and from them into a new ``InMemoryStore``;
* ``baseline``: the same store built object by object through the everyday ports
  (``iter_all``, ``for_customer`` per customer, ``add_many``), what a host without
  :mod:`crmcore.backup` would write. ``--baseline-customers N`` times it on the first N
  customers only and scales it linearly to the store's size (it is far slower).

    python -m benchmarks.warm_start --db sqlite:///benchmarks/.data/bench-S-kept.sqlite
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from crmcore import InMemoryStore
from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.backup import copy, dump, restore


def _baseline(source: SqlStore, limit: int | None) -> tuple[float, int]:
    """Seconds to copy the first ``limit`` customers object by object, and how many."""
    target = InMemoryStore(scheme=source.scheme, reporting_currency=source.reporting_currency)
    started = time.perf_counter()
    done = 0
    with source.unit_of_work() as uow, target.unit_of_work() as out:
        for customer in uow.customers.iter_all(batch_size=2000):
            if limit is not None and done >= limit:
                break
            out.customers.add(customer)
            out.transactions.add_many(
                list(reversed(uow.transactions.for_customer(customer.number)))
            )
            out.interactions.add_many(
                list(reversed(uow.interactions.for_customer(customer.number)))
            )
            done += 1
        out.commit()
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of a loaded crmcore store")
    parser.add_argument("--baseline-customers", type=int, default=None)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    source = SqlStore.from_url(args.db)
    with source.unit_of_work() as uow:
        customers = uow.customers.count()
    print(f"load average before: {os.getloadavg()}")

    def fresh() -> InMemoryStore:
        return InMemoryStore(scheme=source.scheme, reporting_currency=source.reporting_currency)

    started = time.perf_counter()
    copy(source, fresh())
    copied = time.perf_counter() - started
    print(f"copy -> memory: {copied:.2f} s ({customers:,} customers)")

    directory = Path(tempfile.mkdtemp(prefix="crmcore-dump-"))
    try:
        started = time.perf_counter()
        manifest = dump(source, directory / "d")
        dumped = time.perf_counter() - started
        size = sum(f.bytes for f in manifest.files.values())
        rows = {name: entry.rows for name, entry in manifest.files.items()}
        print(f"dump: {dumped:.2f} s, {size / 2**20:.1f} MiB, rows {rows}")
        started = time.perf_counter()
        restore(fresh(), directory / "d")
        print(f"restore -> memory: {time.perf_counter() - started:.2f} s")
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    if not args.skip_baseline:
        seconds, done = _baseline(source, args.baseline_customers)
        scaled = seconds * customers / max(done, 1)
        print(
            f"baseline (object by object): {seconds:.2f} s for {done:,} customers"
            f" -> {scaled:.1f} s for all; copy is {scaled / copied:.1f}x faster"
        )
    print(f"load average after: {os.getloadavg()}")
    source.close()


if __name__ == "__main__":
    main()
