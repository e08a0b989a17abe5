"""Every entity round-trips through JSON exactly, with a private cattrs converter."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore import (
    Customer,
    Interaction,
    LifecycleStage,
    Money,
    Segment,
    SegmentMembership,
    Transaction,
)
from crmcore.errors import ValidationError
from crmcore.events import CustomerRegistered, StageChanged
from crmcore.serialization import configure_converter, make_converter
from crmcore.testing.strategies import (
    aware_datetimes,
    crm_numbers,
    customers,
    interactions,
    money,
    transactions,
)

CONVERTER = make_converter()


def round_trip(value: Any, cls: type[Any]) -> Any:
    text = json.dumps(CONVERTER.unstructure(value))
    return CONVERTER.structure(json.loads(text), cls)


@given(customers())
def test_customers_round_trip(customer: Customer) -> None:
    back = round_trip(customer, Customer)
    assert back == customer
    assert dict(back.attributes) == dict(customer.attributes)
    assert all(type(back.attributes[k]) is type(v) for k, v in customer.attributes.items())


@given(transactions(), money())
def test_transactions_round_trip(transaction: Transaction, reporting: Money) -> None:
    assert round_trip(transaction, Transaction) == transaction


@given(interactions())
def test_interactions_round_trip(interaction: Interaction) -> None:
    assert round_trip(interaction, Interaction) == interaction


@given(st.sets(crm_numbers(), min_size=1, max_size=5), aware_datetimes())
def test_segments_memberships_and_events_round_trip(numbers: set[Any], at: dt.datetime) -> None:
    membership = SegmentMembership("vip", at, numbers)
    assert round_trip(membership, SegmentMembership) == membership
    segment = Segment("vip", 'frequency >= 3 and "vip" in tags', "Best customers")
    assert round_trip(segment, Segment) == segment
    someone = min(numbers)
    registered = CustomerRegistered(at=at, customer=someone)
    assert round_trip(registered, CustomerRegistered) == registered
    change = StageChanged(
        at=at,
        customer=someone,
        from_stage=LifecycleStage.LEAD,
        to_stage=LifecycleStage.NEW,
        reason="first purchase",
    )
    assert round_trip(change, StageChanged) == change
    assert CONVERTER.unstructure(change)["from_stage"] == "lead"


def test_money_travels_as_text_never_float() -> None:
    data = CONVERTER.unstructure(Money("0.10", "EUR"))
    assert data == {"amount": "0.10", "currency": "EUR"}


def test_naive_datetime_text_is_rejected_on_structure() -> None:
    with pytest.raises(ValidationError, match="naive"):
        CONVERTER.structure("2026-01-01T00:00:00", dt.datetime)


def test_the_global_converter_is_left_alone() -> None:
    before = cattrs.global_converter.unstructure(dt.date(2026, 1, 2))
    make_converter()
    assert cattrs.global_converter.unstructure(dt.date(2026, 1, 2)) == before
    custom = configure_converter(cattrs.Converter())
    assert custom.unstructure(Money("1", "JPY")) == {"amount": "1", "currency": "JPY"}
