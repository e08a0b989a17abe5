"""The public strategies validate their arguments and honour their bounds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from crmcore import (
    ConsentRecord,
    CrmNumber,
    CrmNumberScheme,
    Customer,
    LifecycleStage,
    Money,
    Transaction,
)
from crmcore.testing import strategies as cs

LOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HIGH = dt.datetime(2024, 12, 31, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "build",
    [
        lambda: cs.money(min_amount=10, max_amount=1),
        lambda: cs.money("JPY", min_amount=Decimal("0.1"), max_amount=Decimal("0.9")),
        lambda: cs.crm_numbers(min_sequence=0),
        lambda: cs.crm_numbers(CrmNumberScheme(width=2), max_sequence=100),
        lambda: cs.currencies(["EUR", "XXX"]),
        lambda: cs.transactions(refund_probability=1.5),
        lambda: cs.aware_datetimes(min_value=dt.datetime(2024, 1, 1)),
        lambda: cs.customers(stages=[]),
        lambda: cs.customers(min_created=HIGH, max_created=LOW),
        lambda: cs.consent_records(min_at=HIGH, max_at=LOW),
        lambda: cs.consent_records(purposes=[]),
    ],
)
def test_bad_arguments_raise_invalid_argument(build: object) -> None:
    def build_and_validate() -> None:
        build().validate()  # type: ignore[operator]

    with pytest.raises(InvalidArgument):
        build_and_validate()


@given(cs.money("KWD", min_amount=Decimal("1.0005"), max_amount=2))
def test_money_respects_bounds_and_currency(amount: Money) -> None:
    assert amount.currency == "KWD"
    assert Decimal("1.001") <= amount.amount <= 2


@given(cs.crm_numbers(CrmNumberScheme(prefix="AB", width=4), min_sequence=10, max_sequence=20))
def test_crm_numbers_follow_the_scheme(number: CrmNumber) -> None:
    scheme = CrmNumberScheme(prefix="AB", width=4)
    assert 10 <= scheme.sequence_of(number) <= 20


@given(cs.customers(min_created=LOW, max_created=HIGH, stages=["active", "at_risk"]))
def test_customers_respect_bounds(customer: Customer) -> None:
    assert LOW <= customer.created_at <= HIGH
    assert customer.stage in {LifecycleStage.ACTIVE, LifecycleStage.AT_RISK}


@given(
    cs.transactions(
        currency="EUR",
        refund_probability=0,
        min_occurred=LOW,
        max_occurred=HIGH,
        sources=None,
    )
)
def test_transactions_respect_knobs(tx: Transaction) -> None:
    assert tx.kind.value == "purchase"
    assert tx.total.currency == "EUR"
    assert LOW <= tx.occurred_at <= HIGH
    assert tx.external_ref is None


@given(
    cs.consent_records(
        CrmNumber("C00"), purposes=["marketing"], channels=[None], min_at=LOW, max_at=HIGH
    )
)
def test_consent_records_respect_knobs(record: ConsentRecord) -> None:
    assert record.customer == CrmNumber("C00")
    assert record.purpose == "marketing" and record.channel is None
    assert LOW <= record.at <= HIGH
    assert record.expires_at is None or (record.granted and record.expires_at > record.at)


def test_from_type_resolves_crmcore_types() -> None:
    @given(st.from_type(Customer), st.from_type(Transaction), st.from_type(ConsentRecord))
    def check(customer: Customer, tx: Transaction, record: ConsentRecord) -> None:
        assert isinstance(customer, Customer)
        assert isinstance(tx, Transaction)
        assert isinstance(record, ConsentRecord)

    check()
