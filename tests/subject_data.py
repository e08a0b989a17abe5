"""A customer with a distinct sentinel in every personal field, and the history around it.

Shared by the subject access export and retention tests (not a public API): every text a
person could be identified by contains :data:`SENTINEL`, so "is any of it left?" is a search
for one marker in a dump.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from crmcore.domain import (
    Consent,
    ContactLabel,
    CrmNumber,
    Direction,
    EmailAddress,
    Interaction,
    InteractionChannel,
    InteractionKind,
    LifecycleStage,
    Money,
    PersonName,
    PhoneNumber,
    PostalAddress,
    SalesChannel,
    Transaction,
    TransactionKind,
    TransactionLine,
)
from crmcore.services import Analytics, Crm

SENTINEL = "zqxsentinel"
"""The marker inside every personal value of :func:`populate`'s subject."""
SENTINEL_DAY = dt.date(1971, 3, 17)
"""The subject's birth date (searched for as ``1971-03-17`` in dumps)."""
SENTINEL_PHONE = "+4930901820"
"""The subject's phone number (E.164; a phone number cannot hold the text marker)."""
T0 = dt.datetime(2020, 1, 6, 9, 30, 15, 123456, tzinfo=dt.UTC)
NOW = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def populate(crm: Crm) -> tuple[CrmNumber, CrmNumber]:
    """Register the subject and a bystander with history, stage changes, consents and a
    segment run; return ``(subject, bystander)``. ``crm``'s clock must be a FixedClock at
    :data:`NOW` or later (history is dated before it)."""
    s = SENTINEL
    subject = crm.register(
        PersonName(given=f"Ann{s}", family=f"Lee{s}", display=f"Dr Ann Lee {s}"),
        emails=[
            EmailAddress(f"ann.{s}@example.com"),
            EmailAddress(f"work.{s}@example.org", ContactLabel.WORK),
        ],
        phones=[PhoneNumber(SENTINEL_PHONE)],
        addresses=[
            PostalAddress(
                "DE",
                lines=(f"Hauptstrasse 1 {s}", f"c/o {s}"),
                locality=f"Berlin{s}",
                region=f"BE{s}",
                postal_code=f"10{s}",
            )
        ],
        gender="female",
        birth_date=SENTINEL_DAY,
        title=f"Dr{s}",
        job_title=f"Engineer{s}",
        organisation=f"Acme{s}",
        preferred_channel="email",
        tags=["vip", "newsletter"],
        attributes={
            "nickname": f"annie{s}",
            "shoe_size": 39,
            "member": True,
            "credit": Decimal("12.50"),
            "anniversary": dt.date(2001, 2, 3),
            "last_seen": T0,
        },
        consents=[Consent("marketing", "email", True, T0, source=f"web-form-{s}")],
        owner="agent-7",
        source="erp",
        external_id=f"ext-{s}",
        stage="prospect",
    )
    other = crm.register(
        "Bob Bystander", emails=["bob@example.com"], source="erp", external_id="bob"
    )
    number, bob = subject.number, other.number
    crm.change_stage(number, LifecycleStage.NEW, reason=f"first purchase, told by {s}")
    for day, ident, kind, amount in (
        (0, 1, TransactionKind.PURCHASE, "120.00"),
        (40, 2, TransactionKind.PURCHASE, "35.50"),
        (41, 3, TransactionKind.REFUND, "10.25"),
    ):
        crm.record_transaction(
            Transaction(
                customer=number,
                occurred_at=T0 + dt.timedelta(days=day),
                kind=kind,
                total=Money(amount, "EUR"),
                channel=SalesChannel.ONLINE,
                lines=(
                    TransactionLine("SKU-1", Decimal("2.0"), Money("50.00", "EUR"), f"gift {s}"),
                    TransactionLine("SKU-2", Decimal("0.5"), Money(amount, "EUR")),
                )
                if kind is TransactionKind.PURCHASE
                else (),
                source="shop",
                external_ref=f"order-{ident}",
                id=_id(ident),
            )
        )
    for day, ident in ((5, 11), (400, 12)):
        crm.record_transaction(
            Transaction(
                customer=bob,
                occurred_at=T0 + dt.timedelta(days=day),
                kind=TransactionKind.PURCHASE,
                total=Money("99.99", "EUR"),
                channel=SalesChannel.STORE,
                id=_id(ident),
            )
        )
    for day, ident, kind in ((1, 21, InteractionKind.INQUIRY), (3, 22, InteractionKind.COMPLAINT)):
        crm.record_interaction(
            Interaction(
                customer=number,
                occurred_at=T0 + dt.timedelta(days=day, seconds=ident),
                channel=InteractionChannel.PHONE,
                direction=Direction.INBOUND,
                kind=kind,
                subject=f"Call about order {s}",
                notes=f"Customer {s} said her address is {s}",
                outcome=f"resolved {s}",
                agent="agent-7",
                follow_up_due=T0 + dt.timedelta(days=30),
                source="callcentre",
                external_ref=f"call-{ident}",
                id=_id(ident),
            )
        )
    analytics = Analytics(crm)
    analytics.define_segment("buyers", "frequency >= 1")
    analytics.run_segment("buyers", as_of=T0 + dt.timedelta(days=100))
    analytics.run_segment("buyers", as_of=T0 + dt.timedelta(days=500))
    return number, bob
