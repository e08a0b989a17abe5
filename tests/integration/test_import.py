"""The columnar import: the same verdicts and the same store as the per-row API, on every
backend; text formats; files streamed in batches; a killed import completed by a re-run."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers import empty_store_pairs

from crmcore import Crm, FixedClock, InMemoryStore, Interaction, Money, Transaction
from crmcore.domain import CheckAlgorithm, CrmNumberScheme
from crmcore.domain.aggregates import CustomerAggregate
from crmcore.errors import CrmError, ValidationError
from crmcore.events import DomainEvent, TransactionsImported
from crmcore.ports import Store

pa = pytest.importorskip("pyarrow")
pytest.importorskip("sqlalchemy")

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BACKENDS = ["memory", "sqlite-file", "postgresql", "mariadb"]


@pytest.fixture(params=BACKENDS)
def fresh_pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], tuple[Store, Store]]]:
    """Two empty stores of one backend on each call: one fed row by row, one by the import.

    SQL tables are emptied between hypothesis examples instead of created anew (numbers
    are never reused, so both stores' counters move on together)."""
    yield from empty_store_pairs(request, tmp_path, "i")


def _pair(stores: tuple[Store, Store], people: int) -> tuple[Crm, Crm, list[str]]:
    rows, bulk = (Crm(s, clock=FixedClock(T0)) for s in stores)
    numbers = []
    for i in range(people):
        a = rows.register(f"P{i}", source="crm", external_id=f"E{i}")
        b = bulk.register(f"P{i}", source="crm", external_id=f"E{i}")
        assert a.number == b.number
        numbers.append(a.number.value)
    return rows, bulk, numbers


AMOUNTS = st.sampled_from(
    [
        Decimal("12.50"),
        Decimal("0.01"),
        Decimal("3"),
        Decimal("0"),
        Decimal("-4.00"),
        Decimal("1.005"),
        Decimal("99999999.99"),
        Decimal("250"),
    ]
)
KINDS = st.sampled_from(["purchase", "refund", "gift"])
CURRENCIES = st.sampled_from(["EUR", "eur", " EUR ", "JPY", "ZZZ"])
CHANNELS = st.sampled_from(["online", "store", None, "shop"])
REFS = st.sampled_from([None, "r1", "r2", "r3", "r4", "r5", " r1 "])
SOURCES = st.sampled_from(["erp", None, "  "])


@st.composite
def transaction_rows(draw: st.DrawFn, numbers: list[str]) -> list[dict[str, Any]]:
    customers = st.sampled_from([*numbers, "C0000000000", numbers[0].lower()])
    return draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "crm_number": customers,
                    "days": st.integers(-400, 0),
                    "kind": KINDS,
                    "amount": AMOUNTS,
                    "currency": CURRENCIES,
                    "channel": CHANNELS,
                    "source": SOURCES,
                    "external_ref": REFS,
                }
            ),
            max_size=30,
        )
    )


def _as_table(rows: list[dict[str, Any]]) -> Any:
    return pa.table(
        {
            "crm_number": pa.array([r["crm_number"] for r in rows], pa.string()),
            "occurred_at": pa.array(
                [T0 + dt.timedelta(days=r["days"], seconds=7) for r in rows],
                pa.timestamp("us", "UTC"),
            ),
            "kind": pa.array([r["kind"] for r in rows], pa.string()),
            "amount": pa.array([r["amount"] for r in rows], pa.decimal128(12, 3)),
            "currency": pa.array([r["currency"] for r in rows], pa.string()),
            "channel": pa.array([r["channel"] for r in rows], pa.string()),
            "source": pa.array([r["source"] for r in rows], pa.string()),
            "external_ref": pa.array([r["external_ref"] for r in rows], pa.string()),
        }
    )


def _record_row_by_row(crm: Crm, rows: list[dict[str, Any]]) -> tuple[int, int, set[int]]:
    """The per-row API on the same rows: (created, duplicates, rejected row numbers)."""
    created = duplicates = 0
    rejected: set[int] = set()
    for i, r in enumerate(rows):
        try:
            tx = Transaction(
                crm.store.scheme.parse(r["crm_number"]),
                T0 + dt.timedelta(days=r["days"], seconds=7),
                r["kind"],  # type: ignore[arg-type]
                Money(r["amount"], r["currency"]),
                channel=r["channel"] or "other",  # type: ignore[arg-type]
                source=r["source"],
                external_ref=r["external_ref"],
            )
            if crm.record_transaction(tx).created:
                created += 1
            else:
                duplicates += 1
        except CrmError:
            rejected.add(i)
    return created, duplicates, rejected


def _state(crm: Crm, numbers: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number in numbers:
        view = crm.customer_360(number, recent=100)
        out[number] = (
            view.aggregate,
            sorted(
                (
                    t.occurred_at,
                    t.kind.value,
                    str(t.total),
                    t.channel.value,
                    t.source,
                    t.external_ref,
                )
                for t in view.recent_transactions
            ),
        )
    snapshot = crm.store.metrics_source().snapshot(T0 + dt.timedelta(days=1))
    rows = {
        str(n): {f: snapshot.column(f)[i].item() for f in ("frequency", "monetary", "refunds")}
        for i, n in enumerate(snapshot.numbers().tolist())
    }
    out["snapshot"] = rows
    return out


@settings(
    max_examples=int(os.environ.get("CRMCORE_IMPORT_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_import_equals_recording_row_by_row(
    fresh_pair: Callable[[], tuple[Store, Store]], data: st.DataObject
) -> None:
    rows_crm, bulk_crm, numbers = _pair(fresh_pair(), 3)
    first = data.draw(transaction_rows(numbers))
    second = data.draw(transaction_rows(numbers))
    for rows in (first, second):  # the second import meets the first one's references
        created, duplicates, rejected = _record_row_by_row(rows_crm, rows)
        result = bulk_crm.import_transactions(_as_table(rows), batch_size=7)
        assert {r.row for r in result.rejected} == rejected
        assert (result.created, result.duplicates) == (created, duplicates)
        assert [r.row for r in result.rejected] == sorted(rejected)
    assert _state(bulk_crm, numbers) == _state(rows_crm, numbers)


def _memory_crm() -> tuple[Crm, str]:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(T0))
    return crm, crm.register("Ann", source="shop", external_id="A").number.value


def _reasons(result: Any) -> list[tuple[int, str, str | None, str]]:
    return [(r.row, r.field, r.value, r.reason) for r in result.rejected]


def test_text_amounts_and_instants_follow_the_documented_formats() -> None:
    crm, ann = _memory_crm()
    table = pa.table(
        {
            "crm_number": [ann] * 8,
            "occurred_at": [
                "2025-01-01T10:00:00Z",
                "2025-01-01 10:00:00.123456+02:00",
                "2025-01-01T10:00:00",  # naive
                "2025-13-01T10:00:00Z",  # no such month
                "2025-01-01T10:00:00Z",
                "2025-01-01T10:00:00Z",
                "2025-01-01T10:00:00Z",
                "2025-01-01T10:00:00Z",
            ],
            "kind": ["purchase"] * 8,
            "amount": ["12.50", "7", "1.00", "1.00", "1e2", "+5.00", "\uff15", "5.000"],
            "currency": ["EUR"] * 8,
        }
    )
    result = crm.import_transactions(table)
    assert result.created == 3  # rows 0, 1 and 7 ("5.000" is 5.00: zeros beyond EUR's cents)
    assert _reasons(result) == [
        (2, "occurred_at", "2025-01-01T10:00:00", "must be a timezone-aware ISO 8601 instant"),
        (3, "occurred_at", "2025-13-01T10:00:00Z", "must be a timezone-aware ISO 8601 instant"),
        (4, "amount", "1e2", "is not a decimal number"),
        (5, "amount", "+5.00", "is not a decimal number"),
        (6, "amount", "\uff15", "is not a decimal number"),
    ]
    minor = crm.customer_360(ann).aggregate.purchase_minor
    assert minor == 1250 + 700 + 500


def test_schema_errors_refuse_the_whole_input_before_storing() -> None:
    crm, ann = _memory_crm()
    base = {
        "crm_number": [ann],
        "occurred_at": pa.array([T0], pa.timestamp("us", "UTC")),
        "kind": ["purchase"],
        "amount": ["1.00"],
        "currency": ["EUR"],
    }
    with pytest.raises(ValidationError, match="float"):
        crm.import_transactions(pa.table({**base, "amount": pa.array([1.0], pa.float64())}))
    with pytest.raises(ValidationError, match="time zone"):
        crm.import_transactions(
            pa.table(
                {**base, "occurred_at": pa.array([T0.replace(tzinfo=None)], pa.timestamp("us"))}
            )
        )
    with pytest.raises(ValidationError, match="amout"):
        crm.import_transactions(pa.table({**base, "amout": ["1.00"]}))
    with pytest.raises(ValidationError, match="must be an Arrow"):
        crm.import_transactions([{"crm_number": ann}])
    assert crm.customer_360(ann).aggregate.purchase_count == 0
    assert crm.import_transactions(pa.table(base)).created == 1


def test_customer_references_by_number_or_import_key() -> None:
    crm, ann = _memory_crm()
    table = pa.table(
        {
            "crm_number": [ann, None, ann, None, None],
            "customer_external_id": [None, "A", "A", None, "B"],
            "occurred_at": pa.array([T0] * 5, pa.timestamp("s", "UTC")),
            "kind": ["purchase"] * 5,
            "amount": pa.array([1, 2, 3, 4, 5], pa.int64()),
            "currency": ["EUR"] * 5,
        }
    )
    result = crm.import_transactions(table, customer_source="shop")
    assert result.created == 2
    assert _reasons(result) == [
        (2, "crm_number", ann, "give crm_number or customer_external_id, not both"),
        (3, "crm_number", None, "crm_number or customer_external_id is required"),
        (4, "customer_external_id", "B", "no such customer"),
    ]
    assert crm.customer_360(ann).aggregate.purchase_minor == 300
    assert result.rejected_table().num_rows == 3


def test_foreign_currencies_go_through_the_converter() -> None:
    class Halve:
        def convert(self, amount: Money, to_currency: str, at: dt.datetime) -> Money:
            if amount.currency == "GBP":
                raise ValidationError("currency", "GBP", "no rate")
            return Money.from_minor_units(amount.minor_units // 2, to_currency)

    crm, ann = _memory_crm()
    table = pa.table(
        {
            "crm_number": [ann, ann, ann],
            "occurred_at": ["2025-01-01T00:00:00Z"] * 3,
            "kind": ["purchase"] * 3,
            "amount": ["10.00", "10.00", "10.00"],
            "currency": ["USD", "GBP", "EUR"],
        }
    )
    refused = crm.import_transactions(table)
    assert next(r.reason for r in refused.rejected).startswith("differs from the reporting")
    crm.converter = Halve()
    result = crm.import_transactions(table.slice(0, 2))
    assert result.created == 1
    assert result.rejected[0].field == "currency"
    assert crm.customer_360(ann).aggregate.purchase_minor == 1000 + 500


def test_dataframes_and_files_stream_in_batches(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    crm, ann = _memory_crm()
    seen: list[DomainEvent] = []
    crm.subscribe(seen.append)
    n = 2500
    frame = pl.DataFrame(
        {
            "crm_number": [ann] * n,
            "occurred_at": [f"2025-01-01T00:00:{i % 60:02d}Z" for i in range(n)],
            "kind": ["purchase"] * n,
            "amount": ["1.00"] * n,
            "currency": ["EUR"] * n,
            "source": ["pl"] * n,
            "external_ref": [str(i) for i in range(n)],
        }
    )
    progress: list[int] = []
    result = crm.import_transactions(frame, batch_size=1000, on_progress=progress.append)
    assert (result.created, result.batches, progress) == (n, 3, [1000, 2000, 2500])
    assert [type(e) for e in seen] == [TransactionsImported] * 3
    assert sum(e.created for e in seen) == n  # type: ignore[attr-defined]
    csv_path = tmp_path / "tx.csv"
    frame.with_columns(source=pl.lit("csv")).write_csv(csv_path)
    assert crm.import_transactions(csv_path, batch_size=700).created == n
    parquet_path = tmp_path / "tx.parquet"
    pq.write_table(
        frame.with_columns(source=pl.lit("pq")).to_arrow(), parquet_path, row_group_size=500
    )
    assert crm.import_transactions(str(parquet_path), batch_size=900).created == n
    pandas_frame = pd.DataFrame({**frame.to_pandas(), "source": "pd"})
    assert crm.import_transactions(pandas_frame).created == n
    again = crm.import_transactions(csv_path)
    assert (again.created, again.duplicates) == (0, n)
    assert crm.customer_360(ann).aggregate.purchase_count == 4 * n


def test_interactions_import_with_optional_text_and_follow_ups() -> None:
    crm, ann = _memory_crm()
    table = pa.table(
        {
            "customer_external_id": ["A", "A", "A"],
            "occurred_at": pa.array([T0, T0, T0], pa.timestamp("ms", "UTC")),
            "channel": ["email", "phone", "fax"],
            "direction": ["inbound", "outbound", "inbound"],
            "kind": ["complaint", "inquiry", "care"],
            "notes": ["  late delivery ", "   ", None],
            "follow_up_due": pa.array(
                [T0 + dt.timedelta(days=2), None, None], pa.timestamp("us", "UTC")
            ),
            "source": ["desk"] * 3,
            "external_ref": ["1", "2", "3"],
        }
    )
    result = crm.import_interactions(table, customer_source="shop")
    assert result.created == 2
    assert _reasons(result) == [
        (2, "channel", "fax", "must be one of: phone, email, sms, chat, social, visit, web, other")
    ]
    stored = crm.customer_360(ann).recent_interactions
    by_ref = {i.external_ref: i for i in stored}
    assert by_ref["1"].notes == "late delivery"
    assert by_ref["1"].follow_up_due == T0 + dt.timedelta(days=2)
    assert by_ref["2"].notes is None
    assert crm.customer_360(ann).aggregate.complaint_count == 1
    per_row = Interaction(
        crm.store.scheme.parse(ann), T0, "email", "inbound", "complaint", notes="  late delivery "
    )
    assert per_row.notes == by_ref["1"].notes


def test_customers_import_checks_each_row_like_new_customer() -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(T0))
    table = pa.table(
        {
            "given_name": ["Cy", None, "Dee", "Eve"],
            "family_name": ["Xu", None, "Yo", None],
            "external_id": ["C1", "C2", "C1", "C3"],
            "emails": [["cy@example.com"], None, None, ["not-an-address"]],
            "tags": ["vip;newsletter", None, None, None],
            "registered_at": pa.array([T0 - dt.timedelta(days=9)] * 4, pa.timestamp("us", "UTC")),
        }
    )
    result = crm.import_customers(table, source="crm")
    assert (result.created, result.duplicates) == (1, 1)
    assert [(r.row, r.field) for r in result.rejected] == [(1, "given_name"), (3, "emails[0]")]
    number = crm.numbers_by_external_id("crm", ["C1"])["C1"]
    cy = crm.get(number)
    assert cy.tags == {"vip", "newsletter"}
    assert cy.created_at == T0 - dt.timedelta(days=9)
    assert crm.import_customers(table, source="crm").created == 0


_KILLED_IMPORT = textwrap.dedent(
    """
    import os, sys
    import pyarrow as pa
    from crmcore import Crm
    from crmcore.adapters.sqlalchemy import SqlStore

    crm = Crm(SqlStore.from_url(sys.argv[1]))
    table = pa.table(
        {
            "customer_external_id": [f"K{i % 50}" for i in range(5000)],
            "occurred_at": ["2025-01-01T00:00:00Z"] * 5000,
            "kind": ["purchase"] * 5000,
            "amount": ["2.50"] * 5000,
            "currency": ["EUR"] * 5000,
            "source": ["erp"] * 5000,
            "external_ref": [str(i) for i in range(5000)],
        }
    )

    def die(done: int) -> None:
        if done >= 2000:
            os._exit(9)  # the process is killed between two batches

    crm.import_transactions(table, batch_size=1000, customer_source="crm", on_progress=die)
    """
)


def test_a_killed_import_leaves_consistent_aggregates_and_a_rerun_completes_it(
    tmp_path: Path,
) -> None:
    from crmcore.adapters.sqlalchemy import SqlStore

    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    store = SqlStore.from_url(url, create_schema=True, reporting_currency="EUR")
    crm = Crm(store)
    crm.register_many(
        [crm.new_customer(f"K{i}", source="crm", external_id=f"K{i}") for i in range(50)]
    )
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_IMPORT)
    done = subprocess.run([sys.executable, str(script), url], check=False, timeout=300)  # noqa: S603
    assert done.returncode == 9
    totals = _aggregates_and_folds(crm)
    assert all(agg == fold for agg, fold in totals.values())
    assert sum(agg.purchase_count for agg, _ in totals.values()) == 2000
    rerun = crm.import_transactions(
        pa.table(
            {
                "customer_external_id": [f"K{i % 50}" for i in range(5000)],
                "occurred_at": ["2025-01-01T00:00:00Z"] * 5000,
                "kind": ["purchase"] * 5000,
                "amount": ["2.50"] * 5000,
                "currency": ["EUR"] * 5000,
                "source": ["erp"] * 5000,
                "external_ref": [str(i) for i in range(5000)],
            }
        ),
        customer_source="crm",
    )
    assert (rerun.created, rerun.duplicates) == (3000, 2000)
    totals = _aggregates_and_folds(crm)
    assert all(agg == fold for agg, fold in totals.values())
    assert sum(agg.purchase_count for agg, _ in totals.values()) == 5000
    store.close()


def _aggregates_and_folds(crm: Crm) -> dict[str, tuple[CustomerAggregate, CustomerAggregate]]:
    out = {}
    for number in crm.external_ids():
        view = crm.customer_360(number, recent=10_000)
        folded = CustomerAggregate(customer=number)
        for item in [*view.recent_transactions, *view.recent_interactions]:
            folded = (
                folded.with_transaction(item)
                if isinstance(item, Transaction)
                else folded.with_interaction(item)
            )
        out[number.value] = (view.aggregate, folded)
    return out


@settings(max_examples=200, deadline=None)
@given(
    sequences=st.lists(st.integers(1, 10**9 - 1), min_size=1, max_size=20),
    edits=st.lists(
        st.tuples(st.integers(0, 19), st.sampled_from(["lower", "dash", "digit", "swap", "cut"])),
        max_size=10,
    ),
    algorithm=st.sampled_from(list(CheckAlgorithm)),
)
def test_column_number_parsing_equals_the_scheme_one_by_one(
    sequences: list[int], edits: list[tuple[int, str]], algorithm: CheckAlgorithm
) -> None:
    from crmcore.bulk._numbers import parse_numbers

    scheme = CrmNumberScheme(prefix="CX", width=9, algorithm=algorithm)
    texts = [scheme.format(s).value for s in sequences]
    for index, edit in dict(edits).items():  # at most one edit per number
        if index >= len(texts):
            continue
        text = texts[index]
        if edit == "lower":
            text = text.lower()
        elif edit == "dash":
            text = f"{text[:4]}-{text[4:]}"
        elif edit == "digit":
            text = f"{text[:5]}{(int(text[5]) + 1) % 10}{text[6:]}"
        elif edit == "swap":
            text = f"{text[:5]}{text[6]}{text[5]}{text[7:]}"
        else:
            text = text[:-1]
        texts[index] = text
    distinct = sorted(set(texts))
    canonical, reasons = parse_numbers(scheme, pa.array(distinct, pa.string()))
    for text, value, reason in zip(distinct, canonical, reasons, strict=True):
        expected: tuple[str | None, str | None]
        try:
            expected = (scheme.parse(text).value, None)
        except ValidationError as exc:
            expected = (None, exc.reason)
        assert (value, reason) == expected
