"""Exercises the public API under ``mypy --strict``; it is type-checked, not run."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from crmcore import (
    Crm,
    CrmNumber,
    Customer,
    FixedClock,
    InMemoryStore,
    Money,
    Transaction,
    TransactionKind,
)
from crmcore.serialization import make_converter


def register_and_buy() -> int:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=clock)
    customer: Customer = crm.register("Ann Lee", emails=["ann@example.com"])
    number: CrmNumber = customer.number
    price: Money = Money(Decimal("9.99"), "EUR")
    result = crm.record_transaction(
        Transaction(number, clock.now(), TransactionKind.PURCHASE, price)
    )
    created: bool = result.created
    data = make_converter().unstructure(crm.get(number))
    assert isinstance(data, dict)
    return crm.customer_360(number).aggregate.purchase_minor if created else 0
