"""The analytic commands: ``demo``, ``rfm``, ``segment``, ``report``.

Each runs on a SQLite file (the embedded default) and on an in-memory store a host supplies
through :class:`crmcore.cli.CliConfig`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crmcore import Crm, CrmNumber, FixedClock, InMemoryStore, Money, Transaction
from crmcore.adapters.sqlalchemy import SqlStore, upgrade
from crmcore.cli import CliConfig, cli
from crmcore.ports import Store

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

Run = Callable[..., Result]


class Target:
    """Where a command runs: ``--db`` args for SQLite, or a host-supplied store."""

    def __init__(self, store: Store, args: list[str], obj: CliConfig | None) -> None:
        self.store = store
        self.args = args
        self.obj = obj

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, [*args, *self.args], obj=self.obj, catch_exceptions=False)


@pytest.fixture(params=["sqlite", "memory"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "memory":
        memory = InMemoryStore(reporting_currency="EUR")
        yield Target(memory, [], CliConfig(open_store=lambda _db: memory))
        return
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    upgrade(url, currency="EUR")
    store = SqlStore.from_url(url)
    try:
        yield Target(store, ["--db", url], None)
    finally:
        store.close()


def _buy(crm: Crm, number: str, days_ago: int, amount: str, ref: str) -> None:
    crm.record_transaction(
        Transaction(
            CrmNumber(number),
            T0 - dt.timedelta(days=days_ago),
            "purchase",
            Money(amount, "EUR"),
            source="erp",
            external_ref=ref,
        )
    )


@pytest.fixture
def shop(target: Target) -> dict[str, str]:
    """Four customers: three buyers of different value and recency, one who never bought."""
    crm = Crm(target.store, clock=FixedClock(T0 - dt.timedelta(days=400)))
    numbers = {}
    for key, tags in (("A", ["vip"]), ("B", []), ("C", ["vip"]), ("D", [])):
        customer = crm.register(f"Person {key}", tags=tags, source="csv", external_id=key)
        numbers[key] = customer.number.value
    _buy(crm, numbers["A"], 3, "100.00", "a1")
    _buy(crm, numbers["A"], 10, "50.50", "a2")
    _buy(crm, numbers["A"], 20, "10.00", "a3")
    _buy(crm, numbers["B"], 40, "20.00", "b1")
    _buy(crm, numbers["B"], 45, "20.00", "b2")
    _buy(crm, numbers["C"], 200, "5.00", "c1")
    return numbers


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_rfm_writes_one_row_per_customer(target: Target, shop: dict[str, str]) -> None:
    result = target.run("rfm", "--as-of", "2026-01-01")
    assert result.exit_code == 0, result.output
    rows = _csv(result.stdout)
    assert list(rows[0]) == [
        "crm_number",
        "external_id",
        "recency_days",
        "frequency",
        "monetary",
        "r",
        "f",
        "m",
        "segment",
    ]
    by_id = {row["external_id"]: row for row in rows}
    assert [row["crm_number"] for row in rows] == sorted(shop.values())
    a, b, c, d = by_id["A"], by_id["B"], by_id["C"], by_id["D"]
    assert (a["recency_days"], a["frequency"], a["monetary"]) == ("3", "3", "160.50")
    assert (b["recency_days"], b["frequency"], b["monetary"]) == ("40", "2", "40.00")
    assert (c["recency_days"], c["frequency"], c["monetary"]) == ("200", "1", "5.00")
    assert int(a["r"]) > int(b["r"]) > int(c["r"])
    assert int(a["m"]) > int(b["m"]) > int(c["m"])
    assert a["segment"] and c["segment"]
    assert (d["recency_days"], d["r"], d["f"], d["m"], d["segment"]) == ("", "", "", "", "")
    assert (d["frequency"], d["monetary"]) == ("0", "0.00")


def test_rfm_as_of_the_past_ignores_later_purchases(target: Target, shop: dict[str, str]) -> None:
    result = target.run("rfm", "--as-of", "2025-11-01T00:00:00+00:00")
    by_id = {row["external_id"]: row for row in _csv(result.stdout)}
    assert by_id["B"]["recency_days"] == ""
    assert by_id["C"]["frequency"] == "1"


def test_rfm_options_and_output_file(target: Target, shop: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    result = target.run(
        "rfm", "--as-of", "2026-01-01", "--bins", "3", "--ties", "ordinal", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    rows = _csv(out.read_text(encoding="utf-8"))
    assert len(rows) == 4
    scored = [row for row in rows if row["r"]]
    assert sorted(int(row["f"]) for row in scored) == [1, 2, 3]
    assert all(row["segment"] == "" for row in rows)  # the named map is defined for k=5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2026-01-01T00:00:00"], "no UTC offset"),
        (["--as-of", "yesterday"], "not an ISO 8601"),
        (["--as-of", "2026-01-01", "--bins", "1"], "--bins"),
        (["--as-of", "2026-01-01", "--ties", "random"], "--ties"),
        ([], "--as-of"),
    ],
)
def test_rfm_bad_arguments(target: Target, args: list[str], message: str) -> None:
    result = target.run("rfm", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_segment_lists_the_matching_customers(target: Target, shop: dict[str, str]) -> None:
    result = target.run(
        "segment", "--rule", '"vip" in tags and frequency >= 1', "--as-of", "2026-01-01"
    )
    assert result.exit_code == 0, result.output
    rows = _csv(result.stdout)
    assert [(r["crm_number"], r["external_id"]) for r in rows] == sorted(
        [(shop["A"], "A"), (shop["C"], "C")]
    )
    assert "2 customers match" in result.stderr


def test_segment_save_reports_who_entered_and_left(
    target: Target, shop: dict[str, str], tmp_path: Path
) -> None:
    rule = "recency_days <= 30"
    first = target.run(
        "segment", "--rule", rule, "--save", "recent", "--as-of", "2025-12-01",
        "--out", str(tmp_path / "first.csv"),
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    assert "(first run)" in first.stderr
    second = target.run(
        "segment", "--rule", rule, "--save", "recent", "--as-of", "2026-01-01",
        "--out", str(tmp_path / "second.csv"),
    )  # fmt: skip
    assert second.exit_code == 0, second.output
    # On Dec 1st only B had bought in the last 30 days; on Jan 1st only A has.
    assert "1 entered, 1 left" in second.stderr
    assert [m["external_id"] for m in _csv((tmp_path / "first.csv").read_text())] == ["B"]
    members = _csv((tmp_path / "second.csv").read_text(encoding="utf-8"))
    assert [m["external_id"] for m in members] == ["A"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("recency_days <== 30", "position"),
        ("shoe_size > 3", "unknown field 'shoe_size'"),
        ("__import__('os').system('true')", "bad rule"),
    ],
)
def test_segment_bad_rule(target: Target, rule: str, message: str) -> None:
    result = target.run("segment", "--rule", rule)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_report_writes_a_self_contained_html_page(
    target: Target, shop: dict[str, str], tmp_path: Path
) -> None:
    target.run("segment", "--rule", '"vip" in tags', "--save", "vips", "--out", os_devnull())
    page = tmp_path / "report.html"
    result = target.run("report", "--html", str(page), "--as-of", "2026-01-01")
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<svg" in text
    assert "RFM heat map" in text
    assert "Lifecycle funnel" in text
    assert "vips" in text
    for external in ("<script src", "<link", "http://", "https://", "url("):
        assert external not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Person A" not in text  # counts and sums only
    assert shop["A"] not in text


def os_devnull() -> str:
    import os

    return os.devnull


def test_demo_generates_scores_and_reports(target: Target) -> None:
    result = target.run("demo", "--customers", "120", "--seed", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "120 customers" in out
    for section in ("RFM segments", "RFM grid", "Lifecycle", "Segment runs", "vip-lapsed"):
        assert section in out
    assert "Champions" in out or "Loyal" in out
    with target.store.unit_of_work() as uow:
        assert uow.customers.count() == 120
        assert uow.segments.latest_membership("big-spenders") is not None
    again = target.run("demo", "--customers", "10")
    assert again.exit_code == 1
    assert "empty database" in again.stderr


def test_demo_default_database_is_recreated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["demo", "--customers", "40"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert (tmp_path / "crmcore-demo.sqlite").is_file()
    shown = runner.invoke(cli, ["report", "--db", "crmcore-demo.sqlite", "--html", "r.html"])
    assert shown.exit_code == 0, shown.output
    assert (tmp_path / "r.html").is_file()
    scores = runner.invoke(cli, ["rfm", "--db", "crmcore-demo.sqlite", "--as-of", "2026-01-01"])
    assert scores.exit_code == 0
    assert len(scores.stdout.splitlines()) == 41
