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


def events_and_guard_rails() -> list[str]:
    from crmcore import TRANSITIONS, EventDeliveryError, LifecycleStage
    from crmcore.analytics import BgNbdParameters, LifecyclePolicy, churn_risk, probability_alive
    from crmcore.events import CustomerRegistered, DomainEvent

    seen: list[DomainEvent] = []
    crm = Crm(InMemoryStore(reporting_currency="EUR"))
    unsubscribe = crm.subscribe(seen.append)
    try:
        crm.register("Ann Lee")
    except EventDeliveryError as error:
        seen.clear()
        print(error)
    unsubscribe()
    registered = [str(e.customer) for e in seen if isinstance(e, CustomerRegistered)]
    targets: frozenset[LifecycleStage] = TRANSITIONS[LifecycleStage.LEAD]
    policy = LifecyclePolicy(at_risk_days=60)
    parameters = BgNbdParameters(r=0.24, alpha=4.4, a=0.79, b=2.4)
    assert callable(churn_risk) and callable(probability_alive)
    return [*registered, *(s.value for s in targets), str(policy.at_risk_days), str(parameters)]
