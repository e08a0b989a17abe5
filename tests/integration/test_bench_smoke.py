"""The benchmark suite at its tiny size: every workload runs and every implementation agrees.

Only agreement is checked here (the harness exits non-zero on any mismatch); timings are
never asserted. PostgreSQL runs in its own test so a missing server skips only that part.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("sqlalchemy")

ROOT = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, only: str, *extra: str) -> list[dict[str, object]]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(  # noqa: S603 - our interpreter, our module, fixed arguments
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--size",
            "tiny",
            "--repeat",
            "1",
            "--events",
            "20",
            "--only",
            only,
            "--data-root",
            str(tmp_path / "data"),
            "--json",
            str(out),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records: list[dict[str, object]] = json.loads(out.read_text())
    return records


def assert_all_agree(records: list[dict[str, object]], implementations: set[str]) -> None:
    assert {r["implementation"] for r in records} == implementations
    workloads = {r["workload"] for r in records}
    assert {"ingest", "rfm", "rules", "incremental"} <= workloads
    assert all(r["agrees"] for r in records), [r for r in records if not r["agrees"]]
    for record in records:
        assert {"size", "workload", "implementation", "median_s", "peak_rss_mib"} <= set(record)
    # The keyed SQL baselines measure the ingest alone; their ingest agreed above.
    keyed = [r for r in records if str(r["implementation"]).endswith("-keyed")]
    assert all(r["workload"] == "ingest" for r in keyed), keyed


def crmcore_sql_ready() -> bool:
    from crmcore.adapters.sqlalchemy import SqlStore

    return hasattr(SqlStore, "metrics_source")


def test_memory_and_sql_sqlite_agree_with_pandas(tmp_path: Path) -> None:
    names = {"pandas", "crmcore-memory", "sql-sqlite", "sql-sqlite-keyed"}
    records = run_bench(tmp_path, ",".join(names), "--postgres-url", "")
    assert_all_agree(records, names)


def test_crmcore_sqlite_agrees_with_pandas(tmp_path: Path) -> None:
    if not crmcore_sql_ready():
        pytest.skip("SqlStore offers no metrics_source() yet")
    names = {"pandas", "crmcore-sqlite"}
    records = run_bench(tmp_path, ",".join(names), "--postgres-url", "")
    assert_all_agree(records, names)


@pytest.mark.postgresql
def test_postgresql_agrees_with_pandas(tmp_path: Path, postgres_url: str) -> None:
    names = {"pandas", "sql-postgresql", "sql-postgresql-keyed"}
    if crmcore_sql_ready():
        names.add("crmcore-postgresql")
    records = run_bench(tmp_path, ",".join(names), "--postgres-url", postgres_url)
    assert_all_agree(records, names)


def test_mariadb_agrees_with_pandas(tmp_path: Path, mariadb_url: str) -> None:
    names = {"pandas", "sql-mariadb", "sql-mariadb-keyed", "crmcore-mariadb"}
    records = run_bench(
        tmp_path, ",".join(names), "--postgres-url", "", "--mariadb-url", mariadb_url
    )
    assert_all_agree(records, names)


def test_kept_sqlite_store_is_reused_then_dropped(tmp_path: Path) -> None:
    kept = tmp_path / "data" / "bench-tiny-kept.sqlite"
    loaded = run_bench(
        tmp_path, "pandas,crmcore-sqlite", "--postgres-url", "", "--workloads", "", "--keep-stores"
    )
    assert {(r["implementation"], r["workload"]) for r in loaded} == {
        ("pandas", "ingest"),
        ("crmcore-sqlite", "ingest"),
    }
    assert kept.exists()
    again = run_bench(
        tmp_path,
        "pandas,crmcore-sqlite",
        "--postgres-url",
        "",
        "--workloads",
        "rfm",
        "--reuse-stores",
    )
    # The reused store's ingest is checked (it agreed, or the run would have failed) and
    # not timed: no ingest record of crmcore-sqlite.
    assert {(r["implementation"], r["workload"]) for r in again} == {
        ("pandas", "ingest"),
        ("pandas", "rfm"),
        ("crmcore-sqlite", "rfm"),
    }
    assert all(r["agrees"] for r in again)
    assert kept.exists()  # no incremental workload: kept again
    last = run_bench(tmp_path, "pandas,crmcore-sqlite", "--postgres-url", "", "--reuse-stores")
    assert_all_agree(last, {"pandas", "crmcore-sqlite"})
    assert not kept.exists()  # the incremental workload changed it: dropped


def _schema(engine: object, prefix: str) -> dict[str, object]:
    """Columns, keys, unique constraints, indexes, foreign keys (and MariaDB's charset) of
    the five tables the keyed baselines mirror, table names without ``prefix``."""
    import sqlalchemy as sa

    insp = sa.inspect(engine)
    out: dict[str, object] = {}
    for name in ("customers", "customer_tags", "aggregates", "transactions", "interactions"):
        table = prefix + name
        options = insp.get_table_options(table)
        out[name] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            insp.get_pk_constraint(table)["constrained_columns"],
            sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
            sorted((tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)),
            [
                (f["constrained_columns"], f["referred_table"].removeprefix(prefix))
                for f in insp.get_foreign_keys(table)
            ],
            sorted((k, v) for k, v in options.items() if "charset" in k or "collat" in k),
        )
    return out


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_keyed_baseline_tables_mirror_crmcore(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    # `benchmarks` is a top-level folder, not an installed package: importable in-process
    # only with the repository root on the path (plain `pytest` does not add it).
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.sqlkeyed import PREFIX, keyed_ddl

    from crmcore.adapters.sqlalchemy import SqlStore

    url = (
        f"sqlite:///{tmp_path / 'mirror.sqlite'}"
        if backend == "sqlite"
        else request.getfixturevalue({"postgresql": "postgres_url"}.get(backend, "mariadb_url"))
    )
    engine = sa.create_engine(url)
    store = SqlStore(engine, table_prefix="mirror_")
    try:
        store.tables.metadata.create_all(engine)
        with engine.begin() as conn:
            for ddl in keyed_ddl(backend):
                conn.exec_driver_sql(ddl)
        assert _schema(engine, PREFIX) == _schema(engine, "mirror_")
    finally:
        with engine.begin() as conn:
            for ddl in keyed_ddl(backend)[:5]:  # the DROP TABLE statements
                conn.exec_driver_sql(ddl)
        store.tables.metadata.drop_all(engine)
        engine.dispose()


def test_predictive_benchmark_fits_what_lifetimes_fits() -> None:
    pytest.importorskip("lifetimes", reason="lifetimes (the baseline) is not installed")
    pytest.importorskip("scipy", reason="the predictive models need the [predictive] extra")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.predictive", "--customers", "3000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    ours = lines["crmcore"].split(" s ", 1)[1].strip()
    theirs = lines["lifetimes"].split(" s ", 1)[1].strip()
    assert ours == theirs  # the same parameters to four decimals
    assert "ratio lifetimes / crmcore" in proc.stdout
