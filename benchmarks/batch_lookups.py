"""Time the import's batch look-ups alone on one SQL backend (issue 12).

Fills a fresh store with ``--customers`` customers through ``Crm.import_customers`` (timed:
its key checks are look-ups too), then asks ``existing_texts`` and
``numbers_by_external_id`` for ``--keys`` keys, half of them stored, in one reading unit
each, as the history import does. Prints one line per phase with the best of ``--repeat``.

    PYTHONPATH=src python -m benchmarks.batch_lookups --url sqlite:////tmp/l.db
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable

import pyarrow as pa
import sqlalchemy as sa

from crmcore import Crm
from crmcore.adapters.sqlalchemy import SqlStore


def _fresh(url: str) -> tuple[str, Callable[[], None]]:
    """A new empty database on ``url``'s server (a file for SQLite) and its clean-up."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        folder = tempfile.mkdtemp(prefix="lookups-")
        return f"sqlite:///{folder}/crm.db", lambda: shutil.rmtree(folder)
    name = f"lookups_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()

    return parsed.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url, drop = _fresh(args.url)
    store = SqlStore.from_url(url, create_schema=True)
    try:
        crm = Crm(store)
        n = args.customers
        table = pa.table(
            {
                "given_name": [f"P{i}" for i in range(n)],
                "source": ["erp"] * n,
                "external_id": [f"K{i:07d}" for i in range(n)],
            }
        )
        started = time.perf_counter()
        crm.import_customers(table, batch_size=65_536)
        print(f"import_customers {n}: {time.perf_counter() - started:.3f} s")
        with crm.context.reading() as uow:
            numbers = [c.value for c in uow.customers.numbers()]
        half = args.keys // 2
        stored = numbers[:half]
        texts = stored + [f"{t[:-1]}X{i}" for i, t in enumerate(stored)][: args.keys - len(stored)]
        ids = [f"K{i:07d}" for i in range(args.keys)]
        for name, ask in (
            ("existing_texts", lambda uow: uow.customers.existing_texts(texts)),
            (
                "numbers_by_external_id",
                lambda uow: uow.customers.numbers_by_external_id("erp", ids),
            ),
        ):
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                with crm.context.reading() as uow:
                    found = ask(uow)
                best = min(best, time.perf_counter() - started)
            print(f"{name} {args.keys} keys ({len(found)} found): {best:.3f} s")
    finally:
        store.close()
        drop()


if __name__ == "__main__":
    main()
