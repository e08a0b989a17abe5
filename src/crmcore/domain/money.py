"""Money: a ``Decimal`` amount and an ISO 4217 currency, never a float.

Amounts carry no more decimal places than their currency has minor units (JPY 0, EUR 2,
KWD 3), so every amount converts exactly to integer minor units, which is how storage and
analytics hold money: sums of integers are exact, sums of floats are not.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Final

import attrs

from crmcore.errors import ValidationError

__all__ = ["CURRENCY_EXPONENTS", "Money", "currency_exponent"]

_ZERO_DECIMAL: Final = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMAL: Final = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMAL: Final = "CLF UYW"
_TWO_DECIMAL: Final = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VES "
    "VED WST XCD XCG YER ZAR ZMW ZWG"
)

CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    **dict.fromkeys(_TWO_DECIMAL.split(), 2),
    **dict.fromkeys(_ZERO_DECIMAL.split(), 0),
    **dict.fromkeys(_THREE_DECIMAL.split(), 3),
    **dict.fromkeys(_FOUR_DECIMAL.split(), 4),
}
"""ISO 4217 active currency codes and their number of minor-unit digits."""

# Amounts are bounded so that minor units always fit in a signed 64-bit integer column.
_MAX_MINOR: Final = 10**17
_MAX_DIGITS: Final = 17
# Enough precision for any amount below _MAX_MINOR with up to 4 decimals, independent of the
# host's thread-local decimal context.
_CONTEXT: Final = decimal.Context(prec=40, traps=[decimal.InvalidOperation])


def currency_exponent(code: str, field: str = "currency") -> int:
    """Return the number of minor-unit digits of an ISO 4217 currency code.

    Raises:
        ValidationError: if ``code`` is not an active ISO 4217 code (upper case).
    """
    if not isinstance(code, str):
        raise ValidationError(field, code, "must be an ISO 4217 code such as 'EUR'")
    try:
        return CURRENCY_EXPONENTS[code]
    except KeyError:
        raise ValidationError(field, code, "is not an ISO 4217 currency code") from None


def _to_currency(value: object) -> str:
    code = value.strip().upper() if isinstance(value, str) else value
    currency_exponent(code, "currency")  # type: ignore[arg-type]
    return code  # type: ignore[return-value]


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool | float):
        raise ValidationError(
            "amount", value, "must be a Decimal, an int or decimal text, never a float"
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValidationError("amount", value, "is not a decimal number") from None
    if not isinstance(value, Decimal):
        raise ValidationError("amount", value, "must be a Decimal")
    if not value.is_finite():
        raise ValidationError("amount", value, "must be a finite number")
    return value


@attrs.frozen
class Money:
    """An exact amount of one currency.

    Args:
        amount: a ``Decimal``, an ``int`` or decimal text (``"12.50"``); floats are rejected.
        currency: ISO 4217 code; lower case is accepted and normalised.

    Raises:
        ValidationError: on floats, NaN/infinity, an unknown currency or more decimal places
            than the currency has.
    """

    amount: Decimal = attrs.field(converter=_to_decimal)
    currency: str = attrs.field(converter=_to_currency)

    def __attrs_post_init__(self) -> None:
        exponent = CURRENCY_EXPONENTS[self.currency]
        # Size first: quantizing (or even scaling) a huge number would overflow the context.
        if self.amount and self.amount.adjusted() + exponent > _MAX_DIGITS:
            raise ValidationError("amount", self.amount, "is too large")
        if abs(self.amount) * (10**exponent) >= _MAX_MINOR:
            raise ValidationError("amount", self.amount, "is too large")
        try:
            quantized = self.amount.quantize(Decimal(1).scaleb(-exponent), context=_CONTEXT)
        except decimal.InvalidOperation:
            raise ValidationError("amount", self.amount, "cannot be represented") from None
        if quantized != self.amount:
            raise ValidationError(
                "amount",
                self.amount,
                f"has more decimal places than {self.currency} allows ({exponent})",
            )
        # Normalise to exactly `exponent` places so equal amounts are equal and hash alike.
        object.__setattr__(self, "amount", quantized)

    @property
    def exponent(self) -> int:
        """Number of minor-unit digits of the currency."""
        return CURRENCY_EXPONENTS[self.currency]

    @property
    def minor_units(self) -> int:
        """The amount as an integer number of minor units (cents, pence, yen)."""
        return int(self.amount.scaleb(self.exponent))

    @classmethod
    def from_minor_units(cls, minor: int, currency: str) -> Money:
        """Build an amount from integer minor units: ``Money.from_minor_units(1250, "EUR")``."""
        if isinstance(minor, bool) or not isinstance(minor, int):
            raise ValidationError("minor_units", minor, "must be an integer")
        exponent = currency_exponent(currency)
        return cls(Decimal(minor).scaleb(-exponent), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValidationError(
                "currency", other.currency, f"cannot combine with {self.currency}"
            )

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
