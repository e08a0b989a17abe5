"""One new transaction through a SQL store, against the hand-written SQL, in one run.

usage: ``python -m benchmarks.per_event_sql [--size S] [--events 1000] [--backends
sqlite,postgresql] [--postgres-url URL] [--rebuild]`` (from the repository root).

For each backend: crmcore's store loaded with the benchmark's generated data through the
columnar import (kept between runs: ``benchmarks/.data/per-event-<size>.sqlite`` and the
PostgreSQL database ``crmcore_per_event_<size>``; ``--rebuild`` loads them again), and the
hand-written baseline's raw tables (``bench_*``, loaded every run) in the same database. Then
the incremental workload of the suite, events alternating between the two so load drift on
a shared machine hits both alike: crmcore times ``Crm.record_transaction`` +
``Analytics.refresh`` (ten saved rule segments, scored against the last full run's cut
points), the baseline its ``INSERT`` + indexed ``SELECT`` + commit + scoring. Both answers
are compared for every event. Prints p50/p99 of each, their ratio, and the statements
crmcore sent per event (counted by a ``before_cursor_execute`` listener).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import data, load
from benchmarks.crm import AS_OF, CrmPostgres, CrmSqlite, crmcore_segment_map
from benchmarks.harness import DATA_ROOT, DEFAULT_PG
from benchmarks.impl import Context, Refreshed
from benchmarks.spec import RULE_NAMES
from benchmarks.sqlbase import SqlPostgres, SqlSqlite


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _refreshed(out: Any, ctx: Context) -> Refreshed:
    """A refresh's answer in the baselines' shape (as ``benchmarks.crm`` converts it)."""
    bits = sum(1 << i for i, name in enumerate(RULE_NAMES) if out.segments[name])
    score = out.rfm
    if score is None or score.r is None:
        return 0, 0, 0, -1, bits
    return score.r, score.f, score.m, ctx.segments.names.index(score.segment), bits


class _CrmMariaDB(CrmPostgres):
    name = "crmcore-mariadb"


class _NoBaseline:
    """Stands in for a baseline the suite does not have (MariaDB)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def ingest(self) -> None:
        pass

    def prepare_incremental(self) -> None:
        pass

    def refresh(self, event: Any) -> None:
        return None

    def close(self) -> None:
        pass


def _mariadb(base_url: str, name: str, rebuild: bool) -> tuple[str, bool]:
    """Like :func:`_database`, on a MariaDB server."""
    import sqlalchemy as sa

    url = sa.engine.make_url(base_url)
    admin = sa.create_engine(url)
    try:
        with admin.connect() as conn:
            found = conn.execute(sa.text("SHOW DATABASES LIKE :n"), {"n": name}).first()
            if found and rebuild:
                conn.execute(sa.text(f"DROP DATABASE {name}"))
            if not found or rebuild:
                conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), bool(rebuild or not found)


def _database(base_url: str, name: str, rebuild: bool) -> tuple[str, bool]:
    """The URL of database ``name`` on the server of ``base_url``, and whether it is new."""
    import sqlalchemy as sa

    url = sa.engine.make_url(base_url)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if found and rebuild:
                conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
            if not found or rebuild:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), bool(rebuild or not found)


def run(backend: str, args: argparse.Namespace) -> None:
    import sqlalchemy as sa

    directory = data.ensure(args.size, DATA_ROOT)
    customers = data.SIZES[args.size]
    sqlite_path = DATA_ROOT / f"per-event-{args.size}.sqlite"
    fresh = True
    url = None
    if backend == "sqlite":
        if args.rebuild:
            sqlite_path.unlink(missing_ok=True)
        fresh = not sqlite_path.exists()
    elif backend == "mariadb":
        url, fresh = _mariadb(
            args.mariadb_url, f"crmcore_per_event_{args.size.lower()}", args.rebuild
        )
    else:
        url, fresh = _database(
            args.postgres_url, f"crmcore_per_event_{args.size.lower()}", args.rebuild
        )
    ctx = Context(directory, crmcore_segment_map(), Path(sqlite_path), url, customers)
    crm: Any = {"sqlite": CrmSqlite, "postgresql": CrmPostgres, "mariadb": _CrmMariaDB}[backend](
        ctx
    )
    # No hand-written MariaDB baseline in the suite: crmcore alone there.
    base: Any = {"sqlite": SqlSqlite, "postgresql": SqlPostgres}.get(backend, _NoBaseline)(ctx)
    started = time.perf_counter()
    if fresh:
        crm.ingest()
        print(f"{backend}: crmcore store loaded in {time.perf_counter() - started:.0f} s")
    else:
        crm.attach()
    base.ingest()
    if backend == "sqlite":
        # The durability crmcore's engine runs SQLite with (WAL, synchronous=NORMAL: a
        # commit does not wait for fsync); the suite's baseline otherwise syncs every commit.
        base.conn.execute("PRAGMA synchronous=NORMAL")
    with crm.store.unit_of_work() as uow:
        saved = {s.name for s in uow.segments.list()}
    for name in list(saved):
        crm.analytics.delete_segment(name)
    crm.prepare_incremental()
    base.prepare_incremental()

    statements = [0]

    @sa.event.listens_for(crm.store.engine, "before_cursor_execute")
    def count(*_: Any) -> None:
        statements[0] += 1

    events = data.incremental_events(data.read_arrays(directory), args.events, seed=args.seed)
    ours: list[float] = []
    theirs: list[float] = []
    sent: list[int] = []
    record_s: list[float] = []
    ours_cpu: list[float] = []
    theirs_cpu: list[float] = []
    for event in events:
        tx = load.event_transaction(crm.nums, event)  # the host's incoming record
        statements[0] = 0
        cpu = time.process_time()
        start = time.perf_counter()
        crm.crm.record_transaction(tx)
        recorded = time.perf_counter()
        out = crm.analytics.refresh(tx.customer, AS_OF)
        ours.append(time.perf_counter() - start)
        ours_cpu.append(time.process_time() - cpu)
        record_s.append(recorded - start)
        sent.append(statements[0])
        answer = _refreshed(out, ctx)
        cpu = time.process_time()
        start = time.perf_counter()
        expected = base.refresh(event)
        theirs.append(time.perf_counter() - start)
        theirs_cpu.append(time.process_time() - cpu)
        # A kept store holds the events of earlier runs, the baseline's fresh tables do not:
        # answers are compared when the store was loaded by this run.
        if fresh and expected is not None and answer != expected:
            raise SystemExit(f"{backend}: crmcore {answer} != baseline {expected} for {event}")
    crm.close()
    base.close()
    (c50, c99) = _quantiles(ours)
    record50 = statistics.median(record_s)
    refresh50 = statistics.median(o - r for o, r in zip(ours, record_s, strict=True))
    print(
        f"{backend}: {len(events)} events, {customers} customers"
        f"{'' if fresh else ' (kept store: answers not compared)'}; statements per event "
        f"{statistics.median(sent):.0f} (min {min(sent)}, max {max(sent)})\n"
        f"  crmcore record + refresh  p50 {c50 * 1e3:6.2f} ms  p99 {c99 * 1e3:6.2f} ms"
        f"   (record p50 {record50 * 1e3:.2f} ms, refresh p50 {refresh50 * 1e3:.2f} ms)\n"
    )
    if isinstance(base, _NoBaseline):
        return
    (b50, b99) = _quantiles(theirs)
    mine_cpu, base_cpu = statistics.median(ours_cpu), statistics.median(theirs_cpu)
    print(
        f"  hand-written SQL          p50 {b50 * 1e3:6.2f} ms  p99 {b99 * 1e3:6.2f} ms\n"
        f"  ratio                     p50 {c50 / b50:5.2f}x    p99 {c99 / b99:5.2f}x\n"
        f"  this process's CPU time   p50 {mine_cpu * 1e3:.2f} ms vs {base_cpu * 1e3:.2f} ms"
        f" ({mine_cpu / base_cpu:.2f}x; the server's time is not in it)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", default="S", choices=sorted(data.SIZES))
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7, help="of the events")
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--postgres-url", default=DEFAULT_PG)
    p.add_argument("--mariadb-url", default="mysql+pymysql://root@127.0.0.1:3306/test")
    p.add_argument("--rebuild", action="store_true", help="load crmcore's stores again")
    args = p.parse_args()
    for backend in args.backends.split(","):
        run(backend, args)


if __name__ == "__main__":
    main()
