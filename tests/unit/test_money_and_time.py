"""Money is exact and currency-aware; timestamps must be aware and are stored in UTC."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given

from crmcore import DEFAULT_SCHEME, Interaction, Money, Transaction
from crmcore.domain import CURRENCY_EXPONENTS
from crmcore.errors import ValidationError
from crmcore.testing.strategies import aware_datetimes, money


@given(money())
def test_minor_units_round_trip_exactly(amount: Money) -> None:
    assert Money.from_minor_units(amount.minor_units, amount.currency) == amount
    assert amount.amount.as_tuple().exponent == -CURRENCY_EXPONENTS[amount.currency]


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("12.5", "EUR", 1250), ("1500", "JPY", 1500), ("1.234", "KWD", 1234), ("0.0001", "CLF", 1)],
)
def test_minor_units_follow_the_currency_exponent(amount: str, currency: str, minor: int) -> None:
    assert Money(amount, currency).minor_units == minor


@pytest.mark.parametrize(
    ("amount", "currency", "field", "reason"),
    [
        (1.5, "EUR", "amount", "never a float"),
        ("NaN", "EUR", "amount", "finite"),
        (Decimal("Infinity"), "EUR", "amount", "finite"),
        ("1.001", "EUR", "amount", "decimal places"),
        ("1.5", "JPY", "amount", "decimal places"),
        ("abc", "EUR", "amount", "not a decimal"),
        ("1", "XYZ", "currency", "ISO 4217"),
        ("1", 978, "currency", "ISO 4217"),
        (True, "EUR", "amount", "never a float"),
    ],
)
def test_bad_money_is_rejected_naming_field_and_value(
    amount: object, currency: object, field: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason) as info:
        Money(amount, currency)  # type: ignore[arg-type]
    assert info.value.field == field


def test_trailing_zeros_beyond_the_exponent_are_accepted_and_normalised() -> None:
    assert Money("1.2300", "EUR") == Money("1.23", "EUR")
    assert hash(Money("1.2", "EUR")) == hash(Money("1.20", "EUR"))


def test_money_arithmetic_refuses_mixed_currencies() -> None:
    assert Money("1.10", "EUR") + Money("2", "EUR") == Money("3.10", "EUR")
    with pytest.raises(ValidationError, match="cannot combine"):
        Money("1", "EUR") + Money("1", "USD")


def test_naive_timestamps_are_rejected_everywhere() -> None:
    naive = dt.datetime(2026, 1, 1, 12, 0)
    number = DEFAULT_SCHEME.format(7)
    with pytest.raises(ValidationError, match="naive") as info:
        Transaction(number, naive, "purchase", Money("1", "EUR"))
    assert info.value.field == "occurred_at"
    with pytest.raises(ValidationError, match="naive"):
        Interaction(number, naive, "email", "inbound", "inquiry")


@given(aware_datetimes())
def test_aware_timestamps_are_normalised_to_the_same_utc_instant(when: dt.datetime) -> None:
    tx = Transaction(DEFAULT_SCHEME.format(7), when, "purchase", Money("1", "EUR"))
    assert tx.occurred_at == when
    assert tx.occurred_at.utcoffset() == dt.timedelta(0)


def test_transactions_validate_amount_currency_and_reference() -> None:
    number = DEFAULT_SCHEME.format(7)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    free = Transaction(number, now, "purchase", Money("0", "EUR"))  # a promotional order
    assert free.total.minor_units == 0
    with pytest.raises(ValidationError, match="refund must be positive"):
        Transaction(number, now, "refund", Money("0", "EUR"))
    with pytest.raises(ValidationError, match="negative"):
        Transaction(number, now, "purchase", Money("-1", "EUR"))
    with pytest.raises(ValidationError, match="one of") as info:
        Transaction(number, now, "gift", Money("1", "EUR"))  # type: ignore[arg-type]
    assert info.value.field == "kind"
    with pytest.raises(ValidationError, match="source"):
        Transaction(number, now, "purchase", Money("1", "EUR"), external_ref="X1")


def test_extreme_values_raise_validation_errors_not_arithmetic_errors() -> None:
    with pytest.raises(ValidationError, match="too large"):
        Money(Decimal("1" * 27 + ".123"), "EUR")
    with pytest.raises(ValidationError, match="too large"):
        Money(Decimal("1e999999"), "EUR")
    with pytest.raises(ValidationError, match="range"):
        Interaction(
            DEFAULT_SCHEME.format(7),
            dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "email",
            "inbound",
            "inquiry",
        )
