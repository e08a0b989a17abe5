"""The columnar customer import against registering the same rows one by one through
``Crm.new_customer`` + ``register_many``: the same verdicts, the same numbers in the same
order, the same stored customers, on every backend."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers import empty_store_pairs

from crmcore import Crm, FixedClock, InMemoryStore, PersonName
from crmcore.errors import ValidationError
from crmcore.events import CustomersImported, DomainEvent
from crmcore.ports import Store
from crmcore.testing import strategies as cst

pa = pytest.importorskip("pyarrow")
pytest.importorskip("sqlalchemy")

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BACKENDS = ["memory", "sqlite-file", "postgresql", "mariadb"]
NAME_REQUIRED = "a customer needs a given_name, family_name or display_name"
# What the per-row API calls the name parts, and the import's columns for them.
COLUMN_OF = {"given": "given_name", "family": "family_name", "display": "display_name"}


@pytest.fixture(params=BACKENDS)
def fresh_pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], tuple[Store, Store]]]:
    """Two empty stores of one backend per call: one fed row by row, one by the import."""
    yield from empty_store_pairs(request, tmp_path, "c")


# Cells chosen to reach every rule: blanks to strip, text too long, non-ASCII, control
# characters, wrong enumeration values, bad tags, addresses and numbers, old dates.
_TEXT = st.one_of(
    st.none(),
    st.sampled_from(["Ann", " Lee ", "", "   ", "Zoë", "x\x1cy", "Mc Coy", "\tTab"]),
    st.text(min_size=1, max_size=6),
    st.just("L" * 201),
)
_EMAILS = st.none() | st.lists(
    cst.email_addresses().map(str) | st.sampled_from(["not-an-address", " a@example.com "]),
    max_size=2,
)
_PHONES = st.none() | st.sampled_from(["+4930901820", "030 901820", "+4930901820;bad", ""])
_TAGS = st.none() | st.sampled_from(["vip;newsletter", " VIP ", "bad tag", "a;;b", ";"])
_TAG_LISTS = st.none() | st.lists(cst.tags() | st.just("no,comma"), max_size=3)
_KEY = st.none() | st.sampled_from(["A", "B", " A ", "  "])


@st.composite
def customer_tables(draw: st.DrawFn) -> Any:
    size = draw(st.integers(0, 8))

    def column(cells: st.SearchStrategy[Any]) -> list[Any]:
        return [draw(cells) for _ in range(size)]

    tags_as_lists = draw(st.booleans())
    data: dict[str, Any] = {
        "given_name": pa.array(column(_TEXT), pa.string()),
        "family_name": pa.array(column(_TEXT), pa.string()),
        "display_name": pa.array(column(st.none() | _TEXT), pa.string()),
        "emails": pa.array(column(_EMAILS), pa.list_(pa.string())),
        "phones": pa.array(column(_PHONES), pa.string()),
        "phone_region": pa.array(column(st.sampled_from([None, "DE", "XX"])), pa.string()),
        "birth_date": pa.array(
            column(st.none() | st.dates(dt.date(1890, 1, 1), dt.date(2020, 1, 1))), pa.date32()
        ),
        "gender": pa.array(
            column(st.sampled_from([None, "female", "FEMALE", "other"])), pa.string()
        ),
        "title": pa.array(column(_TEXT), pa.string()),
        "preferred_channel": pa.array(column(st.sampled_from([None, "email", "fax"])), pa.string()),
        "tags": pa.array(column(_TAG_LISTS), pa.list_(pa.string()))
        if tags_as_lists
        else pa.array(column(_TAGS), pa.string()),
        "stage": pa.array(column(st.sampled_from([None, "lead", "active", "nope"])), pa.string()),
        "owner": pa.array(column(_TEXT), pa.string()),
        "source": pa.array(column(st.sampled_from([None, "crm", "  ", "web"])), pa.string()),
        "external_id": pa.array(column(_KEY), pa.string()),
        "registered_at": pa.array(
            column(st.none() | cst.aware_datetimes(max_value=T0)), pa.timestamp("us", "UTC")
        ),
    }
    return pa.table(data)


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part for part in value.split(";") if part.strip()]
    return value


def per_row(crm: Crm, row: dict[str, Any], source: str | None) -> Any:
    """A row as the per-row API takes it: the reference the import must equal."""
    values = {k: v for k, v in row.items() if v is not None}
    parts = {p: values.pop(c, None) for p, c in COLUMN_OF.items()}
    if all(v is None for v in parts.values()):
        raise ValidationError("given_name", None, NAME_REQUIRED)
    try:
        name = PersonName(**{k: v for k, v in parts.items() if v is not None})
    except ValidationError as exc:
        if exc.field == "name":  # every part blank
            raise ValidationError("given_name", None, NAME_REQUIRED) from None
        raise ValidationError(COLUMN_OF[exc.field], exc.value, exc.reason) from None
    for column in ("emails", "phones", "tags"):
        if column in values:
            values[column] = _split(values[column])
    if source is not None:
        values.setdefault("source", source)
    return crm.new_customer(name, registered_at=values.pop("registered_at", None), **values)


def _shown(value: object) -> str | None:
    return None if value is None else str(value)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table=customer_tables(), batch_size=st.integers(1, 5), source=st.sampled_from([None, "crm"]))
def test_import_customers_equals_registering_row_by_row(
    fresh_pair: Callable[[], tuple[Store, Store]], table: Any, batch_size: int, source: str | None
) -> None:
    by_row, imported = fresh_pair()
    reference = Crm(by_row, clock=FixedClock(T0))
    crm = Crm(imported, clock=FixedClock(T0))
    expected_rejected = []
    drafts = []
    for i, row in enumerate(table.to_pylist()):
        try:
            drafts.append(per_row(reference, row, source))
        except ValidationError as exc:
            expected_rejected.append((i, exc.field, _shown(exc.value), exc.reason))
    registration = reference.register_many(drafts)
    events: list[DomainEvent] = []
    crm.subscribe(events.append)

    result = crm.import_customers(table, batch_size=batch_size, source=source)

    assert [(r.row, r.field, r.value, r.reason) for r in result.rejected] == expected_rejected
    assert result.created == registration.created
    assert result.duplicates == registration.already_registered
    assert sum(e.created for e in events if isinstance(e, CustomersImported)) == result.created
    with imported.unit_of_work() as uow:
        stored = list(uow.customers.iter_all())
    expected = sorted(registration.registered, key=lambda c: c.number)
    assert [attrs.asdict(c, recurse=False) for c in stored] == [
        attrs.asdict(c, recurse=False) for c in expected
    ]


def test_text_columns_as_csv_cells_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "given_name,family_name,emails,tags,birth_date,external_id,stage\n"
        "Ann,Lee,ann@example.com;ann@work.example,vip;newsletter,1980-02-29,A1,active\n"
        "Bo,,,,1980-02-30,A2,\n"
        ",,,,,A3,\n"
        "Cy,,,,1899-12-31,A4,\n"
    )
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(T0))
    result = crm.import_customers(path, source="shop")
    assert [(r.row, r.field, r.value) for r in result.rejected] == [
        (1, "birth_date", "1980-02-30"),
        (2, "given_name", None),
        (3, "birth_date", "1899-12-31"),
    ]
    number = crm.numbers_by_external_id("shop", ["A1"])["A1"]
    ann = crm.get(number)
    assert [str(e) for e in ann.emails] == ["ann@example.com", "ann@work.example"]
    assert ann.tags == {"vip", "newsletter"}
    assert ann.birth_date == dt.date(1980, 2, 29)
    assert ann.stage.value == "active"
    assert ann.created_at == T0
    assert ann.name.display == "Ann Lee"


def test_a_column_of_the_wrong_type_stores_nothing() -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(T0))
    table = pa.table({"given_name": ["Ann"], "birth_date": pa.array([1.5], pa.float64())})
    with pytest.raises(ValidationError) as raised:
        crm.import_customers(table)
    assert raised.value.field == "birth_date"
    with pytest.raises(ValidationError):
        crm.import_customers(pa.table({"given_name": pa.array([1], pa.int64())}))
    with crm.store.unit_of_work() as uow:
        assert uow.customers.count() == 0


def test_view_typed_text_columns_import_like_plain_text() -> None:
    """Recent polars hands its text to Arrow as ``string_view``, for which Arrow has no
    ``take`` kernel: every import accepts such columns as it accepts plain text."""
    pa = pytest.importorskip("pyarrow")

    def viewed(columns: dict[str, list[Any]]) -> Any:
        table = pa.table(columns)
        return table.cast(
            pa.schema(
                pa.field(f.name, pa.string_view()) if pa.types.is_string(f.type) else f
                for f in table.schema
            )
        )

    crm = Crm(InMemoryStore(reporting_currency="EUR"))
    customers = viewed(
        {
            "external_id": ["A-1", "A-2"],
            "given_name": ["Ann", "Bob"],
            "family_name": ["Lee", "Stone"],
            "emails": ["ann@example.com", "bob@example.com;bob.stone@example.com"],
        }
    )
    assert str(customers.schema.field("emails").type) == "string_view"
    assert crm.import_customers(customers, source="shop").created == 2
    orders = viewed(
        {
            "customer_external_id": ["A-1", "A-2", "A-9"],
            "occurred_at": [dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC)] * 3,
            "kind": ["purchase", "purchase", "purchase"],
            "amount": ["120.00", "35.5", "10.00"],
            "currency": ["EUR"] * 3,
            "external_ref": ["o-1", "o-2", "o-3"],
        }
    )
    result = crm.import_transactions(orders, source="shop", customer_source="shop")
    assert (result.created, [r.value for r in result.rejected]) == (2, ["A-9"])
