"""``crmcore predict`` and ``crmcore lifecycle reclassify`` on a SQLite file."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from crmcore import Crm, LifecycleStage, Money, Transaction
from crmcore.adapters.sqlalchemy import SqlStore, upgrade
from crmcore.cli import cli
from crmcore.cli._predict import PREDICT_COLUMNS
from crmcore.services import Analytics

END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[str, Crm]]:
    """300 customers buying on a few random days of the last year (seeded)."""
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    upgrade(url, currency="EUR")
    store = SqlStore.from_url(url)
    crm = Crm(store)
    rng = np.random.default_rng(7)
    registered = END - dt.timedelta(days=400)
    drafts = [crm.new_customer(f"P{i}", registered_at=registered) for i in range(300)]
    customers = crm.register_many(drafts).registered
    transactions = []
    for customer in customers[:280]:
        days = sorted(rng.choice(360, size=int(rng.integers(1, 6)), replace=False).tolist())
        for day in days:
            cents = int(rng.integers(500, 20_000))
            transactions.append(
                Transaction(
                    customer.number,
                    END - dt.timedelta(days=365 - day),
                    "purchase",
                    Money.from_minor_units(cents, "EUR"),
                )
            )
    crm.record_transactions(transactions)
    try:
        yield url, crm
    finally:
        store.close()


def test_predict_writes_every_buyer_with_the_library_figures(
    shop: tuple[str, Crm], tmp_path: Path
) -> None:
    url, crm = shop
    result = CliRunner().invoke(
        cli,
        ["predict", "--db", url, "--as-of", END.isoformat(), "--horizon-days", "180"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == PREDICT_COLUMNS
    assert len(rows) == 280  # the 20 customers without a purchase are not listed
    analytics = Analytics(crm)
    fit = analytics.fit_bgnbd(END)
    spend = analytics.fit_gamma_gamma(END)
    clv = analytics.customer_lifetime_value(fit, spend, horizon_days=180)
    assert [r["crm_number"] for r in rows] == fit.numbers.tolist()
    np.testing.assert_allclose(
        [float(r["probability_alive"]) for r in rows], fit.probability_alive(), rtol=1e-12
    )
    np.testing.assert_allclose(
        [float(r["expected_purchases"]) for r in rows], fit.expected_purchases(180), rtol=1e-12
    )
    np.testing.assert_allclose([float(r["clv"]) for r in rows], clv, rtol=1e-12)
    assert "BG/NBD r=" in result.stderr

    parquet = tmp_path / "predictions.parquet"
    pq = pytest.importorskip("pyarrow.parquet")
    result = CliRunner().invoke(
        cli, ["predict", "--db", url, "--as-of", "2026-01-01", "--out", str(parquet)]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(parquet)
    assert table.column_names == list(PREDICT_COLUMNS)
    assert table.num_rows == 280

    pareto = CliRunner().invoke(
        cli, ["predict", "--db", url, "--as-of", "2026-01-01", "--model", "pareto-nbd"]
    )
    assert pareto.exit_code == 0, pareto.output
    assert "Pareto/NBD r=" in pareto.stderr
    assert len(list(csv.DictReader(io.StringIO(pareto.stdout)))) == 280


def test_predict_reports_bad_input_cleanly(shop: tuple[str, Crm]) -> None:
    url, _ = shop
    runner = CliRunner()
    early = runner.invoke(cli, ["predict", "--db", url, "--as-of", "2020-01-01"])
    assert early.exit_code == 2
    assert "no customer has a purchase" in early.output
    zone = runner.invoke(cli, ["predict", "--db", url, "--as-of", "2026-01-01", "--tz", "Nowhere"])
    assert zone.exit_code == 2
    assert "time zone" in zone.output


def test_lifecycle_reclassify_moves_buyers_out_of_lead(shop: tuple[str, Crm]) -> None:
    url, crm = shop
    with crm.store.unit_of_work() as uow:
        assert {c.stage for c in uow.customers.iter_all()} == {LifecycleStage.LEAD}
    result = CliRunner().invoke(
        cli, ["lifecycle", "reclassify", "--db", url, "--as-of", "2026-01-01"]
    )
    assert result.exit_code == 0, result.output
    assert "customers moved" in result.stderr
    with crm.store.unit_of_work() as uow:
        stages = [c.stage for c in uow.customers.iter_all()]
    assert stages.count(LifecycleStage.LEAD) == 20  # those who never bought
    again = CliRunner().invoke(
        cli, ["lifecycle", "reclassify", "--db", url, "--as-of", "2026-01-01"]
    )
    assert "0 customers moved" in again.stderr  # idempotent


def test_report_has_value_and_churn_sections(shop: tuple[str, Crm], tmp_path: Path) -> None:
    url, crm = shop
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli, ["report", "--db", url, "--as-of", "2026-01-01", "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert "Value and churn: the next 365 days" in text
    assert "likely lost (P(alive) &lt; 0.2)" in text

    from crmcore.cli._analysis import VALUE_BANDS, value_section

    section = value_section(Analytics(crm), END, 365)
    assert section.note == ""
    assert section.buyers == 280
    assert sum(b.customers for b in section.bands) == 280
    assert [b.label for b in section.bands] == [label for _, label in VALUE_BANDS]
    assert 0.1 <= section.top_decile_clv_share <= 1.0
    clv = Analytics(crm).customer_lifetime_value(
        Analytics(crm).fit_bgnbd(END), Analytics(crm).fit_gamma_gamma(END), horizon_days=365
    )
    assert sum(b.clv_minor for b in section.bands) == pytest.approx(clv.sum() * 100, abs=5)


def test_value_section_explains_why_it_is_empty(tmp_path: Path) -> None:
    from crmcore import InMemoryStore
    from crmcore.cli._analysis import value_section

    section = value_section(Analytics(Crm(InMemoryStore(reporting_currency="EUR"))), END, 90)
    assert section.bands == ()
    assert "no customer has a purchase" in section.note
