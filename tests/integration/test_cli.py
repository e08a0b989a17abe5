"""The ``crmcore`` command line: database set-up, CSV imports, customer lookup, errors."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from crmcore import Crm, InMemoryStore
from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.cli import CliConfig, cli

Run = Callable[..., Result]


@pytest.fixture
def run() -> Run:
    runner = CliRunner()

    def invoke(*args: str, obj: object = None) -> Result:
        return runner.invoke(cli, list(args), obj=obj, catch_exceptions=False)

    return invoke


@pytest.fixture
def db(tmp_path: Path, run: Run) -> str:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    result = run("db", "upgrade", "--db", url, "--currency", "EUR")
    assert result.exit_code == 0, result.output
    return url


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


def read_errors(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def customer_count(url: str) -> int:
    store = SqlStore.from_url(url)
    try:
        with store.unit_of_work() as uow:
            return uow.customers.count()
    finally:
        store.close()


CUSTOMERS = """
tags,external_id,given_name,family_name,email,phone,birth_date
vip;newsletter,A1,Ann,Lee,ann@example.com,+442079460000,1980-02-03
,A2,Bob,Stone,bob@@example.com,,,
,A3,,,nameless@example.com,,
,A4,Cy,Dee,,,1980-13-01
,A5,Di,,di@example.com,020 7946 0001,
"""


def test_db_upgrade_records_the_reporting_currency(db: str, run: Run) -> None:
    store = SqlStore.from_url(db)
    try:
        assert store.reporting_currency == "EUR"
    finally:
        store.close()
    again = run("db", "upgrade", "--db", db)
    assert again.exit_code == 0
    conflict = run("db", "upgrade", "--db", db, "--currency", "USD")
    assert conflict.exit_code == 1
    assert "conflicts" in conflict.stderr
    assert "Traceback" not in conflict.output


def test_db_upgrade_rejects_an_unknown_currency(tmp_path: Path, run: Run) -> None:
    result = run("db", "upgrade", "--db", str(tmp_path / "x.sqlite"), "--currency", "XYZ")
    assert result.exit_code == 2
    assert "ISO 4217" in result.stderr
    assert not (tmp_path / "x.sqlite").exists()


def test_import_customers_loads_good_rows_and_reports_bad_ones(
    db: str, run: Run, tmp_path: Path
) -> None:
    source = write(tmp_path / "customers.csv", CUSTOMERS)
    result = run("import", "customers", str(source), "--db", db, "--phone-region", "GB")
    assert result.exit_code == 1
    assert "2 added, 0 already present, 3 rejected" in result.stderr
    errors = read_errors(tmp_path / "customers.errors.csv")
    assert [(e["line"], e["field"]) for e in errors] == [
        ("3", "(row)"),
        ("4", "given_name"),
        ("5", "birth_date"),
    ]
    assert errors[2]["value"] == "1980-13-01"
    assert customer_count(db) == 2


def test_bad_cell_values_are_reported_with_line_field_value_and_reason(
    db: str, run: Run, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "people.csv",
        """
given_name,email,birth_date
Ann,ann@@example.com,
Bob,,03/02/1980
""",
    )
    report = tmp_path / "reports" / "bad.csv"
    report.parent.mkdir()
    result = run("import", "customers", str(source), "--db", db, "--errors", str(report))
    assert result.exit_code == 1
    assert not (tmp_path / "people.errors.csv").exists()
    errors = read_errors(report)
    assert errors == [
        {
            "line": "2",
            "field": "email",
            "value": "ann@@example.com",
            "reason": errors[0]["reason"],
        },
        {
            "line": "3",
            "field": "birth_date",
            "value": "03/02/1980",
            "reason": "must be a date as YYYY-MM-DD",
        },
    ]
    assert "e-mail" in errors[0]["reason"]


def test_reimporting_customers_adds_nothing_twice(db: str, run: Run, tmp_path: Path) -> None:
    source = write(
        tmp_path / "c.csv",
        """
external_id,given_name,family_name
A1,Ann,Lee
A2,Bob,Stone
A1,Ann,Lee
""",
    )
    first = run("import", "customers", str(source), "--db", db)
    assert first.exit_code == 0, first.output
    assert "2 added, 1 already present, 0 rejected" in first.stderr
    second = run("import", "customers", str(source), "--db", db)
    assert second.exit_code == 0
    assert "0 added, 3 already present, 0 rejected" in second.stderr
    assert customer_count(db) == 2
    assert not (tmp_path / "c.errors.csv").exists()


def _customers(db: str, run: Run, tmp_path: Path) -> None:
    source = write(
        tmp_path / "c.csv",
        """
external_id,given_name,family_name,email
A1,Ann,Lee,ann@example.com
A2,Bob,Stone,
""",
    )
    assert run("import", "customers", str(source), "--db", db).exit_code == 0


def test_import_transactions_is_idempotent_and_rejects_foreign_currency(
    db: str, run: Run, tmp_path: Path
) -> None:
    _customers(db, run, tmp_path)
    source = write(
        tmp_path / "tx.csv",
        """
customer_external_id,occurred_at,kind,amount,currency,channel,source,external_ref
A1,2025-01-02T10:00:00+00:00,purchase,19.90,EUR,online,erp,o1
A1,2025-01-03T10:00:00+01:00,purchase,5.00,USD,online,erp,o2
A9,2025-01-03T10:00:00Z,purchase,5.00,EUR,store,erp,o3
A1,2025-01-03T10:00:00,purchase,5.00,EUR,online,erp,o4
A2,2025-01-03T10:00:00Z,refund,-5,EUR,online,erp,o5
A2,2025-01-03T10:00:00Z,gift,5,EUR,online,erp,o6
A2,2025-01-04T10:00:00Z,purchase,7.5,EUR,,erp,o7
A2,2025-01-05T10:00:00Z,refund,2.50,EUR,store,erp,o8
""",
    )
    first = run("import", "transactions", str(source), "--db", db)
    assert first.exit_code == 1
    assert "3 added, 0 already present, 5 rejected" in first.stderr
    errors = read_errors(tmp_path / "tx.errors.csv")
    assert [(e["line"], e["field"], e["value"]) for e in errors] == [
        ("3", "currency", "USD"),
        ("4", "customer_external_id", "A9"),
        ("5", "occurred_at", "2025-01-03T10:00:00"),
        ("6", "amount", "-5"),
        ("7", "kind", "gift"),
    ]
    assert "no converter" in errors[0]["reason"]
    second = run("import", "transactions", str(source), "--db", db)
    assert "0 added, 3 already present, 5 rejected" in second.stderr

    store = SqlStore.from_url(db)
    try:
        bob = Crm(store).find_by_external_id("csv", "A2")
        assert bob is not None
        view = Crm(store).customer_360(bob.number)
        assert view.aggregate.purchase_count == 1
        assert view.aggregate.net_minor == 500
    finally:
        store.close()


def test_import_transactions_by_crm_number(db: str, run: Run, tmp_path: Path) -> None:
    _customers(db, run, tmp_path)
    store = SqlStore.from_url(db)
    try:
        ann = Crm(store).find_by_external_id("csv", "A1")
    finally:
        store.close()
    assert ann is not None
    number = ann.number.value
    typo = number[:-1] + str((int(number[-1]) + 1) % 10)
    source = write(
        tmp_path / "tx.csv",
        f"""
crm_number,occurred_at,kind,amount,currency,external_ref
{number.lower()},2025-01-02T10:00:00Z,purchase,10,EUR,r1
{typo},2025-01-02T10:00:00Z,purchase,10,EUR,r2
""",
    )
    result = run("import", "transactions", str(source), "--db", db)
    assert result.exit_code == 1
    errors = read_errors(tmp_path / "tx.errors.csv")
    assert [(e["line"], e["field"]) for e in errors] == [("3", "crm_number")]
    assert "check digit" in errors[0]["reason"]


def test_import_interactions(db: str, run: Run, tmp_path: Path) -> None:
    _customers(db, run, tmp_path)
    source = write(
        tmp_path / "ix.csv",
        """
customer_external_id,occurred_at,channel,direction,kind,subject,notes,source,external_ref
A1,2025-01-02T10:00:00Z,phone,inbound,complaint,"late, again","line one
line two",pbx,c1
A1,2025-01-03T10:00:00Z,pigeon,inbound,inquiry,,,pbx,c2
A2,2025-01-03T10:00:00Z,email,outbound,care,,,pbx,c3
""",
    )
    result = run("import", "interactions", str(source), "--db", db)
    assert result.exit_code == 1
    assert "2 added, 0 already present, 1 rejected" in result.stderr
    errors = read_errors(tmp_path / "ix.errors.csv")
    assert [(e["line"], e["field"], e["value"]) for e in errors] == [("4", "channel", "pigeon")]
    again = run("import", "interactions", str(source), "--db", db)
    assert "0 added, 2 already present, 1 rejected" in again.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("given_name,shoe_size\nAnn,38\n", "unknown column(s) 'shoe_size'"),
        ("", "empty file"),
        ("email\nann@example.com\n", "given_name or family_name"),
        ("given_name,given_name\nAnn,Ann\n", "more than once"),
        ('given_name\n"Ann\n', "malformed CSV"),
    ],
)
def test_malformed_files_are_usage_errors(
    db: str, run: Run, tmp_path: Path, content: str, message: str
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(content, encoding="utf-8")
    result = run("import", "customers", str(source), "--db", db)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert customer_count(db) == 0


def test_a_row_with_the_wrong_number_of_cells_is_rejected(
    db: str, run: Run, tmp_path: Path
) -> None:
    source = write(tmp_path / "c.csv", "given_name,family_name\nAnn,Lee,extra\nBob,Stone\n")
    result = run("import", "customers", str(source), "--db", db)
    assert result.exit_code == 1
    assert read_errors(tmp_path / "c.errors.csv")[0]["reason"] == "has 3 cells; the header has 2"
    assert customer_count(db) == 1


def test_non_utf8_file_is_a_usage_error(db: str, run: Run, tmp_path: Path) -> None:
    source = tmp_path / "latin1.csv"
    source.write_bytes("given_name\nJosé\n".encode("latin-1"))
    result = run("import", "customers", str(source), "--db", db)
    assert result.exit_code == 2
    assert "not UTF-8" in result.stderr


def test_a_read_error_mid_file_keeps_and_reports_the_rows_before_it(
    db: str, run: Run, tmp_path: Path
) -> None:
    # Thousands of good rows and one rejected row, then bytes that are not UTF-8: what was
    # read before the bad spot is stored and its errors written, and the message says so.
    source = tmp_path / "mixed.csv"
    rows = [f"P{i},p{i}@example.com" for i in range(3000)]
    rows[1] = "Bob,not-an-email"
    text = "given_name,email\n" + "\n".join(rows) + "\n"
    source.write_bytes(text.encode("utf-8") + "José,jose@example.com\n".encode("latin-1"))
    result = run("import", "customers", str(source), "--db", db, "--batch-size", "100")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "not UTF-8" in message
    found = re.search(r"after (\d+) added, 0 already present and 1 rejected", message)
    assert found is not None, message
    added = int(found.group(1))
    assert added > 100  # more than the batches committed before the error
    assert customer_count(db) == added
    assert [e["line"] for e in read_errors(tmp_path / "mixed.errors.csv")] == ["3"]


def test_missing_input_file(db: str, run: Run, tmp_path: Path) -> None:
    result = run("import", "customers", str(tmp_path / "nope.csv"), "--db", db)
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_customer_show_prints_the_profile_and_history(db: str, run: Run, tmp_path: Path) -> None:
    _customers(db, run, tmp_path)
    store = SqlStore.from_url(db)
    try:
        ann = Crm(store).find_by_external_id("csv", "A1")
    finally:
        store.close()
    assert ann is not None
    result = run("customer", "show", ann.number.value, "--db", db)
    assert result.exit_code == 0
    assert ann.number.value in result.stdout
    assert "Ann Lee" in result.stdout
    assert "ann@example.com" in result.stdout


def test_customer_show_errors(db: str, run: Run) -> None:
    mistyped = run("customer", "show", "C0000000014", "--db", db)
    assert mistyped.exit_code == 2
    assert "check digit" in mistyped.stderr
    unknown = run("customer", "show", "C0000009999", "--db", db)
    assert unknown.exit_code != 0
    missing = run("customer", "show", "C0000000013", "--db", db)
    assert missing.exit_code == 1
    assert "not found" in missing.stderr


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("nosuchdb://x", 2, "--db"),
        ("postgresql+psycopg://someone:s3cret@127.0.0.1:1/none", 1, "not reachable"),
    ],
)
def test_bad_database_urls(run: Run, tmp_path: Path, url: str, code: int, message: str) -> None:
    result = run("customer", "show", "C0000000013", "--db", url)
    assert result.exit_code == code
    assert message in result.stderr
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output


def test_missing_sqlite_file_is_not_created(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite"
    result = run("customer", "show", "C0000000013", "--db", str(path))
    assert result.exit_code == 1
    assert "crmcore db upgrade" in result.stderr
    assert not path.exists()


def test_database_without_schema(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    SqlStore.from_url(f"sqlite:///{path}").close()
    result = run("customer", "show", "C0000000013", "--db", str(path))
    assert result.exit_code == 1
    assert "no crmcore schema" in result.stderr


def test_no_database_given(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMCORE_DB", raising=False)
    result = run("customer", "show", "C0000000013")
    assert result.exit_code == 2
    assert "--db" in result.stderr


def test_database_from_the_environment(db: str, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMCORE_DB", db)
    result = run("customer", "show", "C0000000013")
    assert result.exit_code == 1
    assert "not found" in result.stderr


def test_bad_option_values_are_usage_errors(run: Run) -> None:
    result = run("import", "orders", "x.csv")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_a_host_can_mount_the_group_and_supply_its_store(tmp_path: Path) -> None:
    store = InMemoryStore(reporting_currency="EUR")

    @click.group()
    @click.pass_context
    def host(ctx: click.Context) -> None:
        ctx.obj = CliConfig(open_store=lambda _db: store)

    host.add_command(cli, name="crm")
    source = write(tmp_path / "c.csv", "external_id,given_name\nA1,Ann\n")
    result = CliRunner().invoke(host, ["crm", "import", "customers", str(source)])
    assert result.exit_code == 0, result.output
    ann = Crm(store).find_by_external_id("csv", "A1")
    assert ann is not None
    shown = CliRunner().invoke(host, ["crm", "customer", "show", ann.number.value])
    assert shown.exit_code == 0
    assert "Ann" in shown.stdout


def test_version(run: Run) -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert "crmcore" in result.stdout


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_bulk_lookups_agree_with_the_ports(kind: str, db: str) -> None:
    store = SqlStore.from_url(db) if kind == "sqlite" else InMemoryStore(reporting_currency="EUR")
    try:
        crm = Crm(store)
        ann = crm.register("Ann", source="crm", external_id="A1")
        bob = crm.register("Bob", source="crm", external_id="B1")
        cy = crm.register("Cy")
        gone = crm.register("Gone", source="crm", external_id="G1")
        crm.erase(gone.number)
        assert crm.numbers_by_external_id("crm", {"A1", "B1", "G1", "X"}) == {
            "A1": ann.number,
            "B1": bob.number,
        }
        assert crm.numbers_by_external_id("other", {"A1"}) == {}
        assert crm.existing_numbers({ann.number, cy.number, gone.number}) == {
            ann.number,
            cy.number,
        }
        assert crm.external_ids() == {ann.number: "A1", bob.number: "B1"}
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def test_unwritable_output_is_an_error_not_a_traceback(db: str, run: Run, tmp_path: Path) -> None:
    source = write(tmp_path / "c.csv", "given_name\nAnn\n")
    result = run(
        "import", "customers", str(source), "--db", db,
        "--errors", str(tmp_path / "missing-dir" / "e.csv"),
    )  # fmt: skip
    assert result.exit_code == 0  # no row rejected: the report is never opened
    bad = write(tmp_path / "b.csv", "given_name,birth_date\nAnn,nope\n")
    result = run(
        "import", "customers", str(bad), "--db", db,
        "--errors", str(tmp_path / "missing-dir" / "e.csv"),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "No such file or directory" in result.stderr
    assert "Traceback" not in result.output


def test_the_error_report_may_not_overwrite_the_input(db: str, run: Run, tmp_path: Path) -> None:
    source = write(tmp_path / "c.csv", "external_id,given_name\nA1,Ann\n")
    result = run("import", "customers", str(source), "--db", db, "--errors", str(source))
    assert result.exit_code == 2
    assert "input file" in result.output
    assert source.read_text(encoding="utf-8") == "external_id,given_name\nA1,Ann\n"


def test_out_of_range_instants_and_amounts_are_clean_errors(
    db: str, run: Run, tmp_path: Path
) -> None:
    result = run("rfm", "--db", db, "--as-of", "0001-01-01T00:00:00+05:00")
    assert result.exit_code == 2
    assert "range" in result.output
    _customers(db, run, tmp_path)
    source = write(
        tmp_path / "t.csv",
        """
customer_external_id,occurred_at,kind,amount,currency,channel,source,external_ref
A1,2026-01-01T00:00:00+00:00,purchase,1e999999,EUR,online,erp,T1
""",
    )
    result = run("import", "transactions", str(source), "--db", db)
    assert result.exit_code == 1
    errors = read_errors(tmp_path / "t.errors.csv")
    assert errors[0]["field"] == "amount"


def test_a_refused_segment_run_leaves_the_saved_rule_alone(
    db: str, run: Run, tmp_path: Path
) -> None:
    _customers(db, run, tmp_path)
    first = ("segment", "--db", db, "--save", "s1", "--as-of", "2026-01-01")
    assert run(*first, "--rule", "frequency >= 0").exit_code == 0
    again = run(*first, "--rule", "frequency >= 99")
    assert again.exit_code == 1
    assert "already has a run" in again.output
    store = SqlStore.from_url(db)
    try:
        with store.unit_of_work() as uow:
            assert uow.segments.get("s1").rule == "frequency >= 0"
    finally:
        store.close()


def test_a_segment_can_require_a_consent(db: str, run: Run, tmp_path: Path) -> None:
    _customers(db, run, tmp_path)
    store = SqlStore.from_url(db)
    try:
        with store.unit_of_work() as uow:
            by_key = {c.external_id: c for c in uow.customers.iter_all()}
        ann = by_key["A1"]
        when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        Crm(store).grant_consent(ann.number, "marketing", "email", at=when)
    finally:
        store.close()
    out = tmp_path / "members.csv"
    args = ("segment", "--db", db, "--rule", "frequency >= 0", "--as-of", "2026-01-01")
    saving = ("--requires-consent", "marketing:email", "--save", "mail", "--out", str(out))
    result = run(*args, *saving)
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == ["crm_number,external_id", f"{ann.number.value},A1"]
    assert "requires consent to marketing on email" in result.output
    assert "consented('marketing', 'email')" in result.output
    everywhere = run(*args, "--requires-consent", "marketing", "--out", str(out))
    assert everywhere.exit_code == 0 and "on every channel" in everywhere.output
    assert out.read_text().splitlines() == ["crm_number,external_id"]
    bad = run(*args, "--requires-consent", "Marketing:fax")
    assert bad.exit_code == 2 and "--requires-consent" in bad.output
    store = SqlStore.from_url(db)
    try:
        with store.unit_of_work() as uow:
            assert uow.segments.get("mail").requires_consent == ("marketing", "email")
    finally:
        store.close()


def _export_ann(db: str, run: Run, tmp_path: Path) -> str:
    _customers(db, run, tmp_path)
    store = SqlStore.from_url(db)
    try:
        ann = Crm(store).find_by_external_id("csv", "A1")
    finally:
        store.close()
    assert ann is not None
    return ann.number.value


def test_customer_export_writes_the_subject_access_json(db: str, run: Run, tmp_path: Path) -> None:
    import json
    import stat

    number = _export_ann(db, run, tmp_path)
    out = tmp_path / "ann.json"
    result = run("customer", "export", number, "--db", db, "--out", str(out))
    assert result.exit_code == 0, result.output
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["schema"] == "crmcore.subject-export"
    assert exported["crm_number"] == number
    assert exported["contact_points"]["emails"][0]["address"] == "ann@example.com"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "ann@example.com" not in result.stderr  # only the file holds personal data
    # An existing file is kept unless --force.
    out.write_text("keep me", encoding="utf-8")
    refused = run("customer", "export", number, "--db", db, "--out", str(out))
    assert refused.exit_code == 2
    assert "--force" in refused.stderr
    assert out.read_text(encoding="utf-8") == "keep me"
    forced = run("customer", "export", number, "--db", db, "--out", str(out), "--force")
    assert forced.exit_code == 0, forced.output
    rewritten = json.loads(out.read_text(encoding="utf-8"))
    assert rewritten["profile"] == exported["profile"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # '-' is standard output.
    piped = run("customer", "export", number, "--db", db, "--out", "-")
    assert piped.exit_code == 0
    assert json.loads(piped.stdout)["crm_number"] == number


def test_customer_export_errors(db: str, run: Run, tmp_path: Path) -> None:
    number = _export_ann(db, run, tmp_path)
    out = tmp_path / "x.json"
    mistyped = run("customer", "export", "C0000000014", "--db", db, "--out", str(out))
    assert mistyped.exit_code == 2
    assert "check digit" in mistyped.stderr
    missing = run("customer", "export", "C0000009999", "--db", db, "--out", str(out))
    assert missing.exit_code != 0
    store = SqlStore.from_url(db)
    try:
        Crm(store).erase(number)
    finally:
        store.close()
    erased = run("customer", "export", number, "--db", db, "--out", str(out))
    assert erased.exit_code == 1
    assert "erased" in erased.stderr
    assert not out.exists()
    no_db = run("customer", "export", number, "--out", str(out))
    assert no_db.exit_code == 2


RULES = """
[[rule]]
kind = "blank_interaction_notes"
older_than = { years = 3 }

[[rule]]
kind = "anonymise_inactive_customers"
inactive_for = { years = 7, days = 1 }
"""


def test_retention_run_dry_run_then_run_then_nothing_left(
    db: str, run: Run, tmp_path: Path
) -> None:
    _customers(db, run, tmp_path)
    rules = write(tmp_path / "rules.toml", RULES)
    args = ("retention", "run", "--db", db, "--rules", str(rules), "--as-of", "2100-01-01")
    dry = run(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "anonymise customers inactive for 7 years 1 days: would change 2" in dry.stdout
    assert "nothing changed" in dry.stderr
    store = SqlStore.from_url(db)
    try:
        ann = Crm(store).find_by_external_id("csv", "A1")
        assert ann is not None and ann.anonymised_at is None
    finally:
        store.close()
    done = run(*args, "--batch-size", "1")
    assert done.exit_code == 0, done.output
    assert "anonymise customers inactive for 7 years 1 days: changed 2" in done.stdout
    store = SqlStore.from_url(db)
    try:
        assert Crm(store).find_by_external_id("csv", "A1") is None  # the import key is gone
        with store.unit_of_work() as uow:
            assert all(c.anonymised_at is not None for c in uow.customers.iter_all())
    finally:
        store.close()
    again = run(*args)
    assert again.exit_code == 0
    assert "0 records changed" in again.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]\nkind=", "not valid TOML"),
        ('[[rule]]\nkind = "shred"\n', "rule[0].kind"),
        ('[[rule]]\nkind = "blank_interaction_notes"\nolder_than = { weeks = 2 }\n', "older_than"),
        ("[settings]\n", "[[rule]]"),
    ],
)
def test_retention_run_refuses_a_bad_rules_file(
    db: str, run: Run, tmp_path: Path, text: str, message: str
) -> None:
    rules = tmp_path / "bad.toml"
    rules.write_text(text, encoding="utf-8")
    result = run("retention", "run", "--db", db, "--rules", str(rules))
    assert result.exit_code == 2
    assert message in result.stderr
    bad_time = run(
        "retention",
        "run",
        "--db",
        db,
        "--rules",
        str(write(tmp_path / "r.toml", RULES)),
        "--as-of",
        "soon",
    )
    assert bad_time.exit_code == 2
