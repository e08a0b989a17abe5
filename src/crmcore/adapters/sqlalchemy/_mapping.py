"""Explicit row <-> entity mapping (the domain classes know nothing of SQLAlchemy)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from crmcore._epoch import to_us
from crmcore.domain import (
    AttributeValue,
    ContactLabel,
    CrmNumber,
    Customer,
    Direction,
    EmailAddress,
    Gender,
    Interaction,
    InteractionChannel,
    InteractionKind,
    LifecycleStage,
    Money,
    PersonName,
    PhoneNumber,
    PostalAddress,
    SalesChannel,
    StageChange,
    Transaction,
    TransactionKind,
    TransactionLine,
)
from crmcore.domain._checks import trusted

__all__ = [
    "customer_from_row",
    "customer_rows",
    "interaction_from_row",
    "interaction_row",
    "transaction_from_row",
    "transaction_row",
]


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


_NO_LINES: Final = _dumps([])  # "[]": most transactions carry no lines


def lines_without_descriptions(stored: str) -> str | None:
    """A transaction's stored ``lines`` with every description removed, or ``None`` when
    no line has one (nothing to change)."""
    lines = json.loads(stored)
    if all(line[3] is None for line in lines):
        return None
    return _dumps([[sku, qty, unit, None] for sku, qty, unit, _ in lines])


def _opt_value(member: Any) -> str | None:
    return None if member is None else str(member.value)


# -- custom attributes travel tagged with their type (JSON cannot tell a date from a str) --


def _attribute_json(value: AttributeValue) -> list[Any]:
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, Decimal):
        return ["decimal", str(value)]
    if isinstance(value, dt.datetime):
        return ["datetime", value.isoformat()]
    return ["date", value.isoformat()]


def _attribute_value(data: list[Any]) -> AttributeValue:
    tag, raw = data
    if tag == "bool":
        return bool(raw)
    if tag == "int":
        return int(raw)
    if tag == "str":
        return str(raw)
    if tag == "decimal":
        return Decimal(raw)
    if tag == "datetime":
        return dt.datetime.fromisoformat(raw)
    return dt.date.fromisoformat(raw)


def customer_rows(
    c: Customer,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The customer's main row and its email, phone and tag rows."""
    number = c.number.value
    row = {
        "number": number,
        "erased": False,
        "given_name": c.name.given,
        "family_name": c.name.family,
        "display_name": c.name.display,
        "gender": _opt_value(c.gender),
        "birth_date": c.birth_date,
        "title": c.title,
        "job_title": c.job_title,
        "organisation": c.organisation,
        "preferred_channel": _opt_value(c.preferred_channel),
        "stage": c.stage.value,
        "owner": c.owner,
        "source": c.source,
        "external_id": c.external_id,
        "addresses": _dumps(
            [
                [a.country, list(a.lines), a.locality, a.region, a.postal_code, a.label.value]
                for a in c.addresses
            ]
        ),
        "attributes": _dumps({k: _attribute_json(v) for k, v in c.attributes.items()}),
        "stage_history": _dumps(
            [
                [s.from_stage.value, s.to_stage.value, s.at.isoformat(), s.reason]
                for s in c.stage_history
            ]
        ),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "version": c.version,
        "anonymised_at": c.anonymised_at,
        "created_us": to_us(c.created_at),
        "country": c.addresses[0].country if c.addresses else None,
        "birth_year": None if c.birth_date is None else c.birth_date.year,
    }
    emails = [
        {
            "customer": number,
            "position": i,
            "address": e.address,
            "lookup_key": e.lookup_key,
            "label": e.label.value,
        }
        for i, e in enumerate(c.emails)
    ]
    phones = [
        {"customer": number, "position": i, "e164": p.e164, "label": p.label.value}
        for i, p in enumerate(c.phones)
    ]
    tags = [{"customer": number, "tag": t} for t in sorted(c.tags)]
    return row, emails, phones, tags


def customer_from_row(
    row: Mapping[Any, Any],
    emails: Sequence[Mapping[str, Any]],
    phones: Sequence[Mapping[str, Any]],
    tags: Sequence[str],
) -> Customer:
    """Rebuild a customer from its rows (children ordered by position)."""
    return Customer(
        number=CrmNumber(row["number"]),
        name=PersonName(row["given_name"], row["family_name"], row["display_name"] or ""),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        gender=None if row["gender"] is None else Gender(row["gender"]),
        birth_date=row["birth_date"],
        title=row["title"],
        job_title=row["job_title"],
        organisation=row["organisation"],
        # Stored normalised by crmcore: not parsed again (see trusted()).
        emails=tuple(
            trusted(EmailAddress, address=e["address"], label=ContactLabel(e["label"]))
            for e in emails
        ),
        phones=tuple(
            trusted(PhoneNumber, e164=p["e164"], label=ContactLabel(p["label"])) for p in phones
        ),
        addresses=tuple(
            PostalAddress(country, tuple(lines), locality, region, postal, ContactLabel(label))
            for country, lines, locality, region, postal, label in json.loads(row["addresses"])
        ),
        preferred_channel=None
        if row["preferred_channel"] is None
        else InteractionChannel(row["preferred_channel"]),
        tags=frozenset(tags),
        attributes={k: _attribute_value(v) for k, v in json.loads(row["attributes"]).items()},
        stage=LifecycleStage(row["stage"]),
        stage_history=tuple(
            StageChange(LifecycleStage(a), LifecycleStage(b), dt.datetime.fromisoformat(at), reason)
            for a, b, at, reason in json.loads(row["stage_history"])
        ),
        owner=row["owner"],
        source=row["source"],
        external_id=row["external_id"],
        version=row["version"],
        anonymised_at=row["anonymised_at"],
    )


def transaction_row(tx: Transaction) -> dict[str, Any]:
    """The row of a transaction (``reporting_total`` must be set)."""
    assert tx.reporting_total is not None
    return {
        "id": tx.id,
        "customer": tx.customer.value,
        "occurred_at": tx.occurred_at,
        "occurred_us": to_us(tx.occurred_at),
        "kind": tx.kind.value,
        "amount_minor": tx.total.minor_units,
        "currency": tx.total.currency,
        "reporting_minor": tx.reporting_total.minor_units,
        "channel": tx.channel.value,
        "source": tx.source,
        "external_ref": tx.external_ref,
        "lines": _dumps(
            [
                [li.sku, str(li.quantity), li.unit_price.minor_units, li.description]
                for li in tx.lines
            ]
        )
        if tx.lines
        else _NO_LINES,
    }


def transaction_from_row(row: Mapping[Any, Any], reporting_currency: str) -> Transaction:
    """Rebuild a transaction from its row."""
    currency = row["currency"]
    return Transaction(
        customer=CrmNumber(row["customer"]),
        occurred_at=row["occurred_at"],
        kind=TransactionKind(row["kind"]),
        total=Money.from_minor_units(row["amount_minor"], currency),
        channel=SalesChannel(row["channel"]),
        lines=tuple(
            TransactionLine(sku, Decimal(qty), Money.from_minor_units(unit, currency), desc)
            for sku, qty, unit, desc in json.loads(row["lines"])
        ),
        source=row["source"],
        external_ref=row["external_ref"],
        reporting_total=Money.from_minor_units(row["reporting_minor"], reporting_currency),
        id=_uuid(row["id"]),
    )


def interaction_row(ix: Interaction) -> dict[str, Any]:
    """The row of an interaction."""
    return {
        "id": ix.id,
        "customer": ix.customer.value,
        "occurred_at": ix.occurred_at,
        "occurred_us": to_us(ix.occurred_at),
        "channel": ix.channel.value,
        "direction": ix.direction.value,
        "kind": ix.kind.value,
        "subject": ix.subject,
        "notes": ix.notes,
        "outcome": ix.outcome,
        "agent": ix.agent,
        "follow_up_due": ix.follow_up_due,
        "source": ix.source,
        "external_ref": ix.external_ref,
    }


def interaction_from_row(row: Mapping[Any, Any]) -> Interaction:
    """Rebuild an interaction from its row."""
    return Interaction(
        customer=CrmNumber(row["customer"]),
        occurred_at=row["occurred_at"],
        channel=InteractionChannel(row["channel"]),
        direction=Direction(row["direction"]),
        kind=InteractionKind(row["kind"]),
        subject=row["subject"],
        notes=row["notes"],
        outcome=row["outcome"],
        agent=row["agent"],
        follow_up_due=row["follow_up_due"],
        source=row["source"],
        external_ref=row["external_ref"],
        id=_uuid(row["id"]),
    )


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
