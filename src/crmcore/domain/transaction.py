"""Transactions: purchases and refunds, with money in the currency they happened in."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import attrs

from crmcore.domain import _checks
from crmcore.domain.money import Money
from crmcore.domain.numbers import CrmNumber
from crmcore.errors import ValidationError

__all__ = ["SalesChannel", "Transaction", "TransactionKind", "TransactionLine"]


class TransactionKind(enum.Enum):
    PURCHASE = "purchase"
    REFUND = "refund"


class SalesChannel(enum.Enum):
    ONLINE = "online"
    STORE = "store"
    PHONE = "phone"
    PARTNER = "partner"
    MARKETPLACE = "marketplace"
    OTHER = "other"


def _opt_text(max_length: int) -> dict[str, Any]:
    return _checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=max_length))


def _quantity(field: str, value: object) -> Decimal:
    if isinstance(value, bool | float):
        raise ValidationError(field, value, "must be an int or a Decimal")
    if isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ValidationError(field, value, "must be a positive number")
    return value


def _money(field: str, value: object) -> Money:
    return _checks.instance_of(field, Money, value)


@attrs.frozen(field_transformer=_checks.install_converters)
class TransactionLine:
    """One line of a transaction: what, how many, at what unit price."""

    sku: str = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.text(f, v, max_length=100))
    )
    quantity: Decimal = attrs.field(metadata=_checks.converts(_quantity))
    unit_price: Money = attrs.field(metadata=_checks.converts(_money))
    description: str | None = attrs.field(default=None, metadata=_opt_text(500))


def _lines(field: str, value: object) -> tuple[TransactionLine, ...]:
    return _checks.tuple_of(field, value, lambda f, v: _checks.instance_of(f, TransactionLine, v))


@attrs.frozen(field_transformer=_checks.install_converters)
class Transaction:
    """A purchase or a refund.

    ``total`` is never negative; a refund subtracts it from the customer's value. A purchase
    may be free (a promotional order of 0.00 is still a purchase: it counts for frequency and
    recency); a refund of nothing is refused.
    ``reporting_total`` is the same amount in the store's reporting currency; the recording
    service fills it in (converting when the currencies differ), so analytics sum exact
    integers of one currency. ``(source, external_ref)``, when given, identifies the record in
    the system it came from: recording the same pair twice stores it once.
    """

    customer: CrmNumber = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.instance_of(f, CrmNumber, v))
    )
    occurred_at: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    kind: TransactionKind = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, TransactionKind, v))
    )
    total: Money = attrs.field(metadata=_checks.converts(_money))
    channel: SalesChannel = attrs.field(
        default=SalesChannel.OTHER,
        metadata=_checks.converts(lambda f, v: _checks.member(f, SalesChannel, v)),
    )
    lines: tuple[TransactionLine, ...] = attrs.field(default=(), metadata=_checks.converts(_lines))
    source: str | None = attrs.field(default=None, metadata=_opt_text(100))
    external_ref: str | None = attrs.field(default=None, metadata=_opt_text(200))
    reporting_total: Money | None = attrs.field(
        default=None,
        metadata=_checks.converts(
            lambda f, v: None if v is None else _checks.instance_of(f, Money, v)
        ),
    )
    id: uuid.UUID = attrs.field(factory=uuid.uuid4, metadata=_checks.converts(_checks.uuid_value))

    def __attrs_post_init__(self) -> None:
        if self.total.amount < 0:
            raise ValidationError("total", self.total, "must not be negative (a refund is a kind)")
        if self.total.amount == 0 and self.kind is TransactionKind.REFUND:
            raise ValidationError("total", self.total, "a refund must be positive")
        if self.reporting_total is not None and (
            self.reporting_total.amount < 0
            or (self.reporting_total.amount == 0) != (self.total.amount == 0)
        ):
            raise ValidationError(
                "reporting_total", self.reporting_total, "must be positive (zero only if total is)"
            )
        for i, line in enumerate(self.lines):
            if line.unit_price.currency != self.total.currency:
                raise ValidationError(
                    f"lines[{i}].unit_price", line.unit_price, "is not in the total's currency"
                )
        if self.external_ref is not None and self.source is None:
            raise ValidationError("source", None, "is required when external_ref is set")

    @property
    def signed_reporting_minor(self) -> int:
        """Reporting-currency minor units, negative for refunds (requires reporting_total)."""
        if self.reporting_total is None:
            raise ValidationError("reporting_total", None, "is not set on this transaction")
        minor = self.reporting_total.minor_units
        return minor if self.kind is TransactionKind.PURCHASE else -minor

    def __repr__(self) -> str:
        return (
            f"Transaction(id={str(self.id)!r}, customer={self.customer.value!r}, "
            f"kind={self.kind.value!r}, total={str(self.total)!r})"
        )
