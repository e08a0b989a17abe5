"""The benchmark run: generate, run each implementation in its own process, check agreement,
print a table per workload, write JSON. Any disagreement (or a failed implementation) makes
the run exit non-zero."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import data
from benchmarks.spec import FALLBACK_SEGMENT_MAP

ORDER = (
    "pandas",
    "polars",
    "duckdb",
    "crmcore-memory",
    "sql-sqlite",
    "sql-sqlite-keyed",
    "crmcore-sqlite",
    "sql-postgresql",
    "sql-postgresql-keyed",
    "crmcore-postgresql",
    "sql-mariadb",
    "sql-mariadb-keyed",
    "crmcore-mariadb",
)
KEPT_STORES = ("crmcore-sqlite", "crmcore-postgresql")  # --keep-stores / --reuse-stores
BASELINES = (
    "pandas",
    "polars",
    "duckdb",
    "sql-sqlite",
    "sql-postgresql",
    "sql-mariadb",
    "sql-sqlite-keyed",
    "sql-postgresql-keyed",
    "sql-mariadb-keyed",
)
INGEST_ONLY = ("sql-sqlite-keyed", "sql-postgresql-keyed", "sql-mariadb-keyed")
"""Baselines that measure the ingest alone (the SQL baselines over equally indexed tables)."""
WORKLOADS = ("ingest", "rfm", "scores", "rules", "incremental")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"
DATA_ROOT = Path(__file__).parent / ".data"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--size", default="S", choices=sorted(data.SIZES))
    p.add_argument("--json", type=Path, help="write the result records to this file")
    p.add_argument("--only", default=",".join(ORDER), help="comma-separated implementations to run")
    p.add_argument("--skip", default="", help="comma-separated implementations to leave out")
    p.add_argument("--repeat", type=int, default=5, help="runs per workload (median reported)")
    p.add_argument(
        "--budget", type=float, default=60.0, help="stop repeating a workload after this many s"
    )
    p.add_argument("--events", type=int, default=None, help="new transactions in workload 3")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("CRMCORE_BENCH_POSTGRES_URL", DEFAULT_PG),
        help="server to create a scratch database on ('' to skip PostgreSQL)",
    )
    p.add_argument(
        "--mariadb-url",
        default=os.environ.get("CRMCORE_BENCH_MARIADB_URL", DEFAULT_MARIADB),
        help="MariaDB server to create a scratch database on ('' to skip MariaDB)",
    )
    p.add_argument(
        "--postgres-db",
        default="",
        help="use this existing, empty database as is (not created or dropped; for tests)",
    )
    p.add_argument("--data-root", type=Path, default=DATA_ROOT)
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS[1:]),
        help="comma-separated workloads to run after the ingest (which always runs)",
    )
    p.add_argument(
        "--keep-stores",
        action="store_true",
        help="keep the SQLite file and the PostgreSQL database (crmcore_bench_<size>_kept) for a "
        "later --reuse-stores run; not with the incremental workload, which changes them",
    )
    p.add_argument(
        "--reuse-stores",
        action="store_true",
        help="crmcore's SQL stores open what a --keep-stores run loaded instead of loading "
        "it again (their ingest is checked, not timed); kept again unless the incremental "
        "workload runs",
    )
    p.add_argument("--seed", type=int, default=20250101)
    args = p.parse_args(argv)
    unknown = set(args.workloads.split(",")) - set(WORKLOADS[1:]) - {""}
    if unknown:
        p.error(f"unknown workloads: {sorted(unknown)}")
    if args.keep_stores and "incremental" in args.workloads.split(","):
        p.error("--keep-stores: leave out the incremental workload (it adds transactions)")
    return args


@contextlib.contextmanager
def scratch_postgres(
    base_url: str, given: str = "", *, kept: str = "", keep: bool = False, reuse: bool = False
) -> Iterator[str | None]:
    """A fresh database on the server for this run, dropped afterwards.

    With ``kept`` the database has that fixed name: ``reuse`` opens it as an earlier run left
    it (it must exist), ``keep`` leaves it on the server afterwards."""
    if given:
        yield given
        return
    if not base_url:
        yield None
        return
    import sqlalchemy as sa

    url = sa.engine.make_url(base_url)
    name = kept or f"crmcore_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if reuse and not exists:
                raise SystemExit(f"--reuse-stores: no database {name} (run with --keep-stores)")
            if exists and not reuse:
                conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
            if not reuse:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL unavailable, skipped: {exc}".splitlines()[0], file=sys.stderr)
        admin.dispose()
        yield None
        return
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@contextlib.contextmanager
def scratch_mariadb(base_url: str) -> Iterator[str | None]:
    """A fresh database on the MariaDB server for this run, dropped afterwards."""
    if not base_url:
        yield None
        return
    import sqlalchemy as sa

    url = sa.engine.make_url(base_url)
    name = f"crmcore_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    except sa.exc.OperationalError as exc:
        print(f"MariaDB unavailable, skipped: {exc}".splitlines()[0], file=sys.stderr)
        admin.dispose()
        yield None
        return
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def run_worker(spec: dict[str, Any], work: Path) -> bool:
    path = work / f"{spec['implementation']}.spec.json"
    path.write_text(json.dumps(spec))
    started = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.worker", str(path)],
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    print(
        f"  {spec['implementation']}: {time.perf_counter() - started:.1f} s wall "
        f"(exit {proc.returncode})",
        file=sys.stderr,
    )
    return proc.returncode == 0


def compare(results: dict[str, dict[str, np.ndarray]]) -> dict[tuple[str, str], bool]:
    """(implementation, workload) -> equal to the reference (the first in ORDER that ran)."""
    verdict: dict[tuple[str, str], bool] = {}
    for workload in WORKLOADS:
        keys_of = {
            name: sorted(k for k in res if k == workload or k.startswith(workload + "."))
            for name, res in results.items()
        }
        having = [name for name in ORDER if keys_of.get(name)]
        if not having:
            continue
        ref = having[0]
        for name in having:
            same = keys_of[name] == keys_of[ref] and all(
                np.array_equal(results[name][k], results[ref][k]) for k in keys_of[ref]
            )
            verdict[(name, workload)] = same
            if not same:
                _explain(workload, name, ref, results, keys_of[ref])
    return verdict


def _explain(workload: str, name: str, ref: str, results: dict[str, Any], keys: list[str]) -> None:
    for key in keys:
        a, b = results[name].get(key), results[ref][key]
        if a is None or a.shape != b.shape:
            print(f"DISAGREE {workload}: {name} has no/odd {key}", file=sys.stderr)
            continue
        diff = np.nonzero(a != b)[0] if a.ndim == 1 else np.nonzero((a != b).any(axis=1))[0]
        if len(diff):
            print(
                f"DISAGREE {workload}: {name} vs {ref} on {key}: {len(diff)} rows differ, "
                f"first at {diff[:5].tolist()}: {a[diff[:3]].tolist()} vs {b[diff[:3]].tolist()}",
                file=sys.stderr,
            )


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def tables(records: list[dict[str, Any]]) -> str:
    """One Markdown table per workload; ``x`` columns are baseline time / this time."""
    out: list[str] = []
    for workload in WORKLOADS:
        rows = [r for r in records if r["workload"] == workload]
        if not rows:
            continue
        base = {
            r["implementation"]: r["median_s"] for r in rows if r["implementation"] in BASELINES
        }
        head = ["implementation", "median", "p99" if workload == "incremental" else "runs"]
        head += ["peak RSS MiB", "agrees", *[f"vs {b}" for b in base]]
        out.append(f"\n{workload} ({rows[0]['size']})\n")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for r in rows:
            cells = [
                r["implementation"],
                _fmt_time(r["median_s"]),
                _fmt_time(r["p99_s"]) if workload == "incremental" else str(r["runs"]),
                f"{r['peak_rss_mib']:.0f}",
                "yes" if r["agrees"] else "**NO**",
                *[f"{t / r['median_s']:.2f}x" for t in base.values()],
            ]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024**2
    versions = {}
    for dist in ("crmcore", "numpy", "pandas", "polars", "duckdb", "pyarrow", "sqlalchemy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": mem,
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
        "versions": versions,
    }


def segment_table() -> tuple[list[str], list[int]]:
    """crmcore's default named-segment map as data, or the stand-in until analytics exists."""
    try:
        from benchmarks.crm import crmcore_segment_map
    except ImportError as exc:
        print(f"crmcore analytics unavailable ({exc}); stand-in segment map", file=sys.stderr)
        segments = FALLBACK_SEGMENT_MAP
    else:
        segments = crmcore_segment_map()
    return list(segments.names), segments.table.ravel().tolist()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [n for n in args.only.split(",") if n and n not in args.skip.split(",")]
    unknown = set(chosen) - set(ORDER)
    if unknown:
        raise SystemExit(f"unknown implementations: {sorted(unknown)}")
    started = time.perf_counter()
    print(f"machine: {json.dumps(machine())}", file=sys.stderr)
    data_dir = data.ensure(args.size, args.data_root, args.seed)
    print(f"data: {data_dir} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    customers = data.SIZES[args.size]
    events = args.events or (200 if args.size == "tiny" else 1000)
    if not (args.postgres_url or args.postgres_db):
        chosen = [n for n in chosen if "postgresql" not in n]

    segments = segment_table()
    work = Path(tempfile.mkdtemp(prefix="crmcore-bench-"))
    kept_stores = args.keep_stores or args.reuse_stores
    # Kept stores have their own names, so an ordinary run never deletes one.
    sqlite_path = args.data_root / f"bench-{args.size}{'-kept' if kept_stores else ''}.sqlite"
    workloads = ["ingest", *(w for w in args.workloads.split(",") if w)]
    # A store the incremental workload changed no longer matches the generated data.
    keep = kept_stores and "incremental" not in workloads
    if args.reuse_stores and not sqlite_path.exists() and "crmcore-sqlite" in chosen:
        raise SystemExit(f"--reuse-stores: no {sqlite_path} (run with --keep-stores)")
    ok = True
    if not args.mariadb_url:
        chosen = [n for n in chosen if "mariadb" not in n]
    with (
        scratch_postgres(
            args.postgres_url if any("postgresql" in n for n in chosen) else "",
            args.postgres_db,
            kept=f"crmcore_bench_{args.size.lower()}_kept" if kept_stores else "",
            keep=keep,
            reuse=args.reuse_stores,
        ) as pg,
        scratch_mariadb(args.mariadb_url if any("mariadb" in n for n in chosen) else "") as maria,
    ):
        if not args.reuse_stores and any("sqlite" in n for n in chosen):
            sqlite_path.unlink(missing_ok=True)
        for name in chosen:
            if "postgresql" in name and pg is None:
                print(f"  {name}: skipped (no PostgreSQL)", file=sys.stderr)
                continue
            if "mariadb" in name and maria is None:
                print(f"  {name}: skipped (no MariaDB)", file=sys.stderr)
                continue
            mine = workloads
            if name in INGEST_ONLY and len(workloads) > 1:
                mine = ["ingest"]
                print(
                    f"  {name}: ingest only (leaves out {', '.join(workloads[1:])})",
                    file=sys.stderr,
                )
            spec = {
                "implementation": name,
                "data_dir": str(data_dir),
                "sqlite_path": str(sqlite_path),
                "postgres_url": pg,
                "mariadb_url": maria,
                "customers": customers,
                "workloads": mine,
                "reuse_store": args.reuse_stores and name in KEPT_STORES,
                "repeat": args.repeat,
                "budget_s": args.budget,
                "events": events,
                "out_dir": str(work),
                "segments": segments,
            }
            ok &= run_worker(spec, work)
    if not keep and any("sqlite" in n for n in chosen):
        sqlite_path.unlink(missing_ok=True)

    results: dict[str, dict[str, np.ndarray]] = {}
    records: list[dict[str, Any]] = []
    for name in ORDER:
        if (work / f"{name}.npz").exists():
            with np.load(work / f"{name}.npz") as npz:
                results[name] = {k: npz[k] for k in npz.files}
            for rec in json.loads((work / f"{name}.json").read_text()):
                records.append({"size": args.size, "implementation": name, **rec})
    verdict = compare(results)
    for rec in records:
        rec["agrees"] = verdict.get((rec["implementation"], rec["workload"]), False)
        rec["customers"] = customers
    shutil.rmtree(work, ignore_errors=True)

    print(tables(records))
    if args.json:
        args.json.write_text(json.dumps(records, indent=1) + "\n")
    total = time.perf_counter() - started
    agree = all(rec["agrees"] for rec in records)
    print(f"\ntotal {total:.0f} s; all agree: {agree}; all ran: {ok}", file=sys.stderr)
    return 0 if ok and agree and records else 1
