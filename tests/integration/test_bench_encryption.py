"""``benchmarks/encryption.py`` at a tiny size: both stores run every workload (timings are
never asserted), and the command line prints a ratio per workload."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_encryption_benchmark_runs(postgres_url: str) -> None:
    # The repository root holds the benchmarks package (plain pytest does not add it).
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.encryption import run
    finally:
        sys.path.remove(str(ROOT))
    for url in (None, postgres_url):
        out = run(customers=12, lookups=4, url=url)
        assert set(out["results"]) == {"register", "lookup", "rfm (sql)", "rfm (numpy)"}
        assert all(plain > 0 and sealed > 0 for plain, sealed in out["results"].values())


@pytest.mark.parametrize("argv", [["--customers", "8", "--lookups", "2"]])
def test_the_command_line_prints_ratios(argv: list[str]) -> None:
    proc = subprocess.run(  # noqa: S603 - our interpreter, our module, fixed arguments
        [sys.executable, "-m", "benchmarks.encryption", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("encryption at rest: 8 customers")
    assert [line.split()[0] for line in lines[2:]] == ["register", "lookup", "rfm", "rfm"]
