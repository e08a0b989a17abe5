"""Inputs at the edges, on every backend: a crmcore error (or a clean result), never a raw
Python or driver exception, and nothing sent to a database that it cannot take."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.helpers import backend_url, sql_store, unique_prefix

from crmcore import Crm, FixedClock, InMemoryStore, Interaction, Money, Transaction
from crmcore.analytics import MAX_RULE_DEPTH, Or, Rule, field, tag
from crmcore.cli import cli
from crmcore.domain import Direction, InteractionChannel, InteractionKind, PostalAddress
from crmcore.errors import RuleSyntaxError, ValidationError
from crmcore.ports import Store
from crmcore.services import Analytics

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SURROGATE = "\ud800"


@pytest.fixture(params=["memory", "sqlite-file", "postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore(reporting_currency="USD")
        return
    url = backend_url(request, request.param, tmp_path)
    with sql_store(url, unique_prefix("ed", 6)) as s:
        yield s


@pytest.fixture
def crm(store: Store) -> Crm:
    return Crm(store, clock=FixedClock(NOW))


def _buy(crm: Crm, number: object, minor: int, ref: str) -> None:
    crm.record_transaction(
        Transaction(
            customer=number,  # type: ignore[arg-type]
            occurred_at=NOW - dt.timedelta(days=minor),
            kind="purchase",  # type: ignore[arg-type]
            total=Money.from_minor_units(minor, "USD"),
            source="edge",
            external_ref=ref,
        )
    )


@pytest.mark.parametrize(
    "rule",
    [
        lambda: tag(SURROGATE),
        lambda: field("owner").startswith(SURROGATE),
        lambda: field("owner") == SURROGATE,
        lambda: f"owner == '{SURROGATE}'",
        lambda: f"'{SURROGATE}' in tags",
    ],
    ids=["tag", "startswith", "compare", "text-compare", "text-tag"],
)
def test_a_lone_surrogate_in_a_rule_is_a_rule_syntax_error(crm: Crm, rule: object) -> None:
    crm.register("Ann", owner="o", tags=["x"])
    with pytest.raises(RuleSyntaxError):
        Analytics(crm).evaluate(rule())  # type: ignore[operator]


def test_a_lone_surrogate_in_an_external_id_lookup_is_a_validation_error(crm: Crm) -> None:
    crm.register("Ann", source="erp", external_id="A-1")
    with pytest.raises(ValidationError, match="external_id"):
        crm.find_by_external_id("erp", SURROGATE)
    with pytest.raises(ValidationError, match="source"):
        crm.find_by_external_id(SURROGATE, "A-1")
    with pytest.raises(ValidationError, match="external_ids"):
        crm.numbers_by_external_id("erp", ["A-1", SURROGATE])
    found = crm.find_by_external_id("erp", "A-1")
    assert found is not None


def test_customer_360_takes_any_recent_count(crm: Crm) -> None:
    number = crm.register("Ann").number
    for i in range(3):
        _buy(crm, number, 100 + i, f"r{i}")
        crm.record_interaction(
            Interaction(
                customer=number,
                occurred_at=NOW,
                channel=InteractionChannel.PHONE,
                direction=Direction.INBOUND,
                kind=InteractionKind.CARE,
                source="edge",
                external_ref=f"i{i}",
            )
        )
    view = crm.customer_360(number, recent=10**20)
    assert len(view.recent_transactions) == 3
    assert len(view.recent_interactions) == 3
    with pytest.raises(ValidationError, match="recent"):
        crm.customer_360(number, recent=-1)


def _nested(depth: int) -> Rule:
    rule: Rule = field("frequency") >= 1
    for _ in range(depth - 1):
        rule = ~rule
    return rule


def test_rules_nest_up_to_the_documented_depth_and_no_deeper(crm: Crm) -> None:
    number = crm.register("Buyer").number
    _buy(crm, number, 100, "b")
    crm.register("Browser")
    analytics = Analytics(crm)
    # MAX_RULE_DEPTH - 1 negations of "frequency >= 1": odd count -> not a buyer.
    deepest = _nested(MAX_RULE_DEPTH)
    expected = {number} if (MAX_RULE_DEPTH - 1) % 2 == 0 else set()
    assert {n for n in analytics.evaluate(deepest) if n == number} == expected
    with pytest.raises(RuleSyntaxError, match=str(MAX_RULE_DEPTH)):
        ~deepest  # noqa: B018 - building it is what fails
    with pytest.raises(RuleSyntaxError):
        _nested(5000)
    text = "not (" * 5000 + "frequency >= 1" + ")" * 5000
    with pytest.raises(RuleSyntaxError):
        analytics.evaluate(text)


def test_a_wide_rule_is_evaluated_by_every_backend(crm: Crm) -> None:
    buyers = []
    for i in range(3):
        number = crm.register(f"Buyer {i}").number
        for k in range(i + 1):
            _buy(crm, number, 100 + k, f"w{i}-{k}")
        buyers.append(number)
    # 3,000 alternatives: SQLite refuses an expression tree deeper than 1,000 if compiled flat.
    wide = Or(tuple(field("frequency") == 2 + 1000 * i for i in range(3000)))
    assert Analytics(crm).evaluate(wide) == {buyers[1]}


def test_a_postal_address_takes_only_assigned_iso_3166_codes() -> None:
    assert PostalAddress(country=" de ").country == "DE"
    assert PostalAddress(country="AX").country == "AX"
    for code in ("ZZ", "UK", "EU", "XK", "D", "DEU", "\uff24\uff25", 49):
        with pytest.raises(ValidationError, match="country"):
            PostalAddress(country=code)  # type: ignore[arg-type]


def test_the_cli_reports_a_url_with_a_non_numeric_port_as_an_error_line() -> None:
    url = "postgresql+psycopg://someone@127.0.0.1:notaport/crm"
    for args in (
        ["db", "upgrade", "--db", url],
        ["segment", "--rule", "frequency >= 1", "--db", url],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "Error: --db:" in result.stderr
        assert "port" in result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output


def test_the_cli_import_refuses_amounts_outside_the_documented_format(tmp_path: Path) -> None:
    db = tmp_path / "crm.sqlite"
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade", "--db", str(db)]).exit_code == 0
    customers = tmp_path / "customers.csv"
    customers.write_text("external_id,given_name\nc1,Ann\n", encoding="utf-8")
    assert (
        runner.invoke(cli, ["import", "customers", str(customers), "--db", str(db)]).exit_code == 0
    )
    amounts = ["1e2", "\uff15.00", "+5.00", "\u0665", " 5.00", "5.", "5.00"]
    lines = ["customer_external_id,occurred_at,kind,amount,currency,external_ref"]
    lines += [f"c1,2025-01-01T00:00:00+00:00,purchase,{a},USD,t{i}" for i, a in enumerate(amounts)]
    transactions = tmp_path / "transactions.csv"
    transactions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(cli, ["import", "transactions", str(transactions), "--db", str(db)])
    assert result.exit_code == 1
    assert "1 added" in result.stderr, result.stderr
    report = (tmp_path / "transactions.errors.csv").read_text(encoding="utf-8")
    assert report.count("is not a decimal number") == len(amounts) - 1
