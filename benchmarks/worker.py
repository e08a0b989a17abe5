"""Runs one implementation through every workload, in its own process.

A fresh process per implementation makes its peak RSS its own: nothing another contender
allocated (or freed back to a fragmented heap) is counted. Before each workload the kernel's
high-water mark is reset (``/proc/self/clear_refs``, Linux >= 4.0), so each workload's peak is
the most the process held during that workload, including the data it keeps resident (the
DataFrames, the in-memory store), which is what a host would have to provision.

Usage (the harness does this): ``python -m benchmarks.worker SPEC.json``.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.data import incremental_events, read_arrays
from benchmarks.impl import Context, Implementation
from benchmarks.spec import K, SegmentMap

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset the peak-RSS high-water mark to the current RSS; False if unsupported."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_mib() -> float:
    kib = _status_kib("VmHWM")
    if kib is None:  # not Linux: the process-lifetime peak (never reset)
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return (kib or 0) / 1024


IMPLEMENTATIONS = {
    "pandas": "benchmarks.baselines:Pandas",
    "polars": "benchmarks.baselines:Polars",
    "duckdb": "benchmarks.baselines:DuckDB",
    "sql-sqlite": "benchmarks.sqlbase:SqlSqlite",
    "sql-postgresql": "benchmarks.sqlbase:SqlPostgres",
    "crmcore-memory": "benchmarks.crm:CrmMemory",
    "crmcore-sqlite": "benchmarks.crm:CrmSqlite",
    "crmcore-postgresql": "benchmarks.crm:CrmPostgres",
    "sql-mariadb": "benchmarks.sqlbase:SqlMariadb",
    "crmcore-mariadb": "benchmarks.crm:CrmMariadb",
    "sql-sqlite-keyed": "benchmarks.sqlkeyed:KeyedSqlite",
    "sql-postgresql-keyed": "benchmarks.sqlkeyed:KeyedPostgres",
    "sql-mariadb-keyed": "benchmarks.sqlkeyed:KeyedMariadb",
}


def load_implementation(name: str) -> Callable[[Context], Implementation]:
    """Import only the implementation's own module (its libraries count in its memory)."""
    module, cls = IMPLEMENTATIONS[name].split(":")
    found: Callable[[Context], Implementation] = getattr(importlib.import_module(module), cls)
    return found


def segment_map(spec: dict[str, Any]) -> SegmentMap:
    """The named-segment table chosen by the harness (it imports crmcore; workers of the
    baselines do not, so crmcore's modules never count in their memory)."""
    names, table = spec["segments"]
    return SegmentMap(tuple(names), np.array(table, dtype=np.int16).reshape(K, K, K))


class _Recorder:
    def __init__(self, name: str, spec: dict[str, Any]) -> None:
        self.name = name
        self.spec = spec
        self.records: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}

    def measure(self, workload: str, run: Callable[[], Any], repeat: int) -> Any:
        """Time ``run`` up to ``repeat`` times (fewer if over the time budget)."""
        gc.collect()
        before = rss_mib()
        reset_peak()
        times: list[float] = []
        result: Any = None
        budget = self.spec["budget_s"]
        while len(times) < repeat and (not times or sum(times) < budget):
            start = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - start)
        self.records.append(
            {
                "workload": workload,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "runs": len(times),
                "peak_rss_mib": round(peak_mib(), 1),
                "rss_before_mib": round(before, 1),
            }
        )
        print(
            f"  {self.name:20s} {workload:12s} median {statistics.median(times):9.4f} s "
            f"({len(times)} runs) peak {peak_mib():8.1f} MiB",
            file=sys.stderr,
            flush=True,
        )
        return result


def run(spec: dict[str, Any]) -> None:
    name = spec["implementation"]
    ctx = Context(
        data_dir=Path(spec["data_dir"]),
        segments=segment_map(spec),
        sqlite_path=Path(spec["sqlite_path"]),
        postgres_url=spec.get("postgres_url"),
        mariadb_url=spec.get("mariadb_url"),
        customers=spec["customers"],
    )
    impl = load_implementation(name)(ctx)
    rec = _Recorder(name, spec)
    workloads = spec["workloads"]
    repeat = spec["repeat"]
    try:
        if spec.get("reuse_store"):
            # The store an earlier --keep-stores run loaded: opened, checked, not timed.
            impl.attach()
            check = impl.convert("ingest", None)
        else:
            check = impl.convert("ingest", rec.measure("ingest", impl.ingest, 1))
        rec.results["ingest"] = check.array()
        if "rfm" in workloads:
            res = impl.convert("rfm", rec.measure("rfm", impl.rfm, repeat))
            for key, value in res.arrays().items():
                rec.results[f"rfm.{key}"] = value
        if "scores" in workloads:
            impl.prepare_scores()
            if impl.scores() is not None:
                res = impl.convert("scores", rec.measure("scores", impl.scores, repeat))
                for key in ("r", "f", "m"):
                    rec.results[f"scores.{key}"] = getattr(res, key)
        if "rules" in workloads:
            rec.results["rules"] = impl.convert("rules", rec.measure("rules", impl.rules, repeat))
        if "incremental" in workloads:
            _incremental(impl, rec, spec)
    finally:
        impl.close()
    for record in rec.records:
        record.update(impl.notes().get(record["workload"], {}))
    out = Path(spec["out_dir"])
    np.savez(out / f"{name}.npz", **rec.results)
    (out / f"{name}.json").write_text(json.dumps(rec.records))


def _incremental(impl: Implementation, rec: _Recorder, spec: dict[str, Any]) -> None:
    store = read_arrays(Path(spec["data_dir"]))
    events = incremental_events(store, spec["events"])
    del store
    impl.prepare_incremental()
    gc.collect()
    before = rss_mib()
    reset_peak()
    latencies: list[float] = []
    outputs = []
    for event in events:
        impl.refresh_s = None
        start = time.perf_counter()
        outputs.append(impl.refresh(event))
        elapsed = time.perf_counter() - start
        latencies.append(elapsed if impl.refresh_s is None else impl.refresh_s)
    lat = np.array(latencies)
    rec.records.append(
        {
            "workload": "incremental",
            "median_s": float(np.median(lat)),
            "p99_s": float(np.percentile(lat, 99)),
            "min_s": float(lat.min()),
            "runs": len(lat),
            "peak_rss_mib": round(peak_mib(), 1),
            "rss_before_mib": round(before, 1),
        }
    )
    print(
        f"  {impl.name:20s} incremental  p50 {np.median(lat) * 1e6:9.1f} us "
        f"p99 {np.percentile(lat, 99) * 1e6:9.1f} us",
        file=sys.stderr,
        flush=True,
    )
    rec.results["incremental"] = np.array(outputs, dtype=np.int64)


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
    # Results are written and connections closed; skip tearing down millions of objects
    # (minutes for a 1M-customer in-memory store), which nobody measures.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
