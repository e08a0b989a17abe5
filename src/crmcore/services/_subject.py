"""The subject access export: everything a store holds about one person, as JSON-ready data.

:meth:`SubjectAccess.export_subject` (a mixin of :class:`~crmcore.Crm`) answers a data subject's
request for access (GDPR Art. 15, PIPL Art. 45) and for a portable copy (GDPR Art. 20): one
``dict`` of plain JSON values under the versioned schema ``crmcore.subject-export`` (the JSON
Schema ships beside this module as ``subject_export.schema.json``; ``docs/privacy-subject.md``
describes every section). Money is exact decimal text with its currency, instants are ISO 8601
in UTC, and the output is ordered deterministically, so the same data exports to the same
document on every backend.

:data:`EXPORT_COVERAGE` names the export section that covers each stored table holding
customer data; a test walks the SQL metadata and fails when a table with a customer column is
missing from it, so storage added later cannot silently escape the export.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from importlib import resources
from typing import Any, Final, TypeAlias

import attrs

from crmcore.analytics import RFM_FIELDS, VALUE_FIELDS, churn_risk, historical_value, score_rfm
from crmcore.domain import (
    AttributeValue,
    CrmNumber,
    Customer,
    CustomerAggregate,
    Interaction,
    Money,
    StageChange,
    Transaction,
)
from crmcore.domain.access import Decision
from crmcore.domain.audit import AuditAction, AuditEntity, AuditOutcome
from crmcore.errors import AccessDenied
from crmcore.ports import UnitOfWork
from crmcore.services._context import ServiceContext

__all__ = [
    "EXPORT_COVERAGE",
    "EXPORT_SCHEMA",
    "EXPORT_VERSION",
    "JsonValue",
    "SubjectAccess",
    "audit_section",
    "consents_section",
    "export_json_schema",
    "json_ready",
]

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
"""What an export is made of: exactly the values ``json.dumps`` writes without a default."""

EXPORT_SCHEMA: Final = "crmcore.subject-export"
"""The ``schema`` field of every export."""
EXPORT_VERSION: Final = 1
"""The ``version`` field: raised whenever a field is removed or changes meaning."""

EXPORT_COVERAGE: Final[Mapping[str, str]] = {
    "customers": "profile",
    "customer_sealed": "profile",
    "customer_emails": "contact_points",
    "customer_phones": "contact_points",
    "customer_tags": "profile",
    "aggregates": "totals",
    "transactions": "transactions",
    "interactions": "interactions",
    "segment_members": "segment_memberships",
    "audit_log": "audit",
    "consents": "consents",
}
"""Stored table (name without the store's prefix) -> the export section holding its rows.

Every table with a customer column must be listed: the coverage test fails otherwise. A new
kind of stored customer data gets its section in :meth:`SubjectAccess.export_subject` and its
line here in the same change."""


# -- plain JSON values ---------------------------------------------------------------------------


def instant(value: dt.datetime) -> str:
    """ISO 8601 text of an aware instant in UTC, always with microseconds (stable width)."""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _optional_instant(value: dt.datetime | None) -> str | None:
    return None if value is None else instant(value)


def decimal_text(value: Decimal) -> str:
    """Exact decimal text without exponent or trailing zeros (``Decimal("2.50")`` -> ``"2.5"``)."""
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", "0"} else text


def money(value: Money) -> dict[str, JsonValue]:
    """``{"amount": "12.50", "currency": "EUR"}``: every minor digit of the currency kept."""
    return {"amount": format(value.amount, "f"), "currency": value.currency}


def _minor(minor: int, currency: str) -> dict[str, JsonValue]:
    return money(Money.from_minor_units(minor, currency))


def _code(value: enum.Enum | None) -> str | None:
    return None if value is None else str(value.value)


def _float(value: float) -> float | None:
    # NaN and infinities are not JSON: "no value" is null.
    return float(value) if math.isfinite(value) else None


def json_ready(value: object) -> JsonValue:
    """``value`` as plain JSON values: attrs objects as objects of their fields, enums by
    value, instants as ISO 8601 UTC, dates as ISO dates, decimals as exact text, money as
    amount and currency, CRM numbers and UUIDs as text, sets sorted.

    Used for the sections whose records come from repositories other branches of crmcore
    add (consents, audit), so their every field is exported without a hand-written list.

    Raises:
        TypeError: a value of another type (never silently dropped).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Money):
        return money(value)
    if isinstance(value, CrmNumber):
        return value.value
    if isinstance(value, enum.Enum):
        return json_ready(value.value)
    if isinstance(value, dt.datetime):
        return instant(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    kind: Any = type(value)
    if attrs.has(kind):
        return {f.name: json_ready(getattr(value, f.name)) for f in attrs.fields(kind)}
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, set | frozenset):
        items = [json_ready(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, Iterable):
        return [json_ready(v) for v in value]
    raise TypeError(f"cannot export a {type(value).__name__} as JSON")


# -- sections --------------------------------------------------------------------------------------


def _attribute(value: AttributeValue) -> dict[str, JsonValue]:
    """A custom attribute with its type, so ``"2"`` (text) and ``2`` (integer) stay apart."""
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": decimal_text(value)}
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "value": instant(value)}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    return {"type": "str", "value": value}


def _stage_change(change: StageChange) -> dict[str, JsonValue]:
    return {
        "from": _code(change.from_stage),
        "to": _code(change.to_stage),
        "at": instant(change.at),
        "reason": change.reason,
    }


def _profile(customer: Customer) -> dict[str, JsonValue]:
    name = customer.name
    return {
        "crm_number": customer.number.value,
        "name": {"given": name.given, "family": name.family, "display": name.display},
        "gender": _code(customer.gender),
        "birth_date": None if customer.birth_date is None else customer.birth_date.isoformat(),
        "title": customer.title,
        "job_title": customer.job_title,
        "organisation": customer.organisation,
        "preferred_channel": _code(customer.preferred_channel),
        "tags": list[JsonValue](sorted(customer.tags)),
        "attributes": {key: _attribute(v) for key, v in sorted(customer.attributes.items())},
        "stage": _code(customer.stage),
        "owner": customer.owner,
        "source": customer.source,
        "external_id": customer.external_id,
        "created_at": instant(customer.created_at),
        "updated_at": instant(customer.updated_at),
        "version": customer.version,
        "anonymised_at": _optional_instant(customer.anonymised_at),
    }


def _contact_points(customer: Customer) -> dict[str, JsonValue]:
    return {
        "emails": [{"address": e.address, "label": _code(e.label)} for e in customer.emails],
        "phones": [{"e164": p.e164, "label": _code(p.label)} for p in customer.phones],
        "addresses": [
            {
                "country": a.country,
                "lines": list(a.lines),
                "locality": a.locality,
                "region": a.region,
                "postal_code": a.postal_code,
                "label": _code(a.label),
            }
            for a in customer.addresses
        ],
    }


def _interaction(item: Interaction) -> dict[str, JsonValue]:
    return {
        "id": str(item.id),
        "occurred_at": instant(item.occurred_at),
        "channel": _code(item.channel),
        "direction": _code(item.direction),
        "kind": _code(item.kind),
        "subject": item.subject,
        "notes": item.notes,
        "outcome": item.outcome,
        "agent": item.agent,
        "follow_up_due": _optional_instant(item.follow_up_due),
        "source": item.source,
        "external_ref": item.external_ref,
    }


def _transaction(item: Transaction) -> dict[str, JsonValue]:
    return {
        "id": str(item.id),
        "occurred_at": instant(item.occurred_at),
        "kind": _code(item.kind),
        "total": money(item.total),
        "reporting_total": None if item.reporting_total is None else money(item.reporting_total),
        "channel": _code(item.channel),
        "source": item.source,
        "external_ref": item.external_ref,
        "lines": [
            {
                "sku": line.sku,
                "quantity": decimal_text(line.quantity),
                "unit_price": money(line.unit_price),
                "description": line.description,
            }
            for line in item.lines
        ],
    }


def _totals(aggregate: CustomerAggregate, currency: str) -> dict[str, JsonValue]:
    return {
        "purchase_count": aggregate.purchase_count,
        "refund_count": aggregate.refund_count,
        "purchases": _minor(aggregate.purchase_minor, currency),
        "refunds": _minor(aggregate.refund_minor, currency),
        "net": _minor(aggregate.net_minor, currency),
        "first_purchase_at": _optional_instant(aggregate.first_purchase_at),
        "last_purchase_at": _optional_instant(aggregate.last_purchase_at),
        "interaction_count": aggregate.interaction_count,
        "complaint_count": aggregate.complaint_count,
        "last_interaction_at": _optional_instant(aggregate.last_interaction_at),
    }


def _chronological(items: Iterable[Any]) -> list[Any]:
    # Oldest first, ties by id: the order is part of "identical on every backend".
    return sorted(items, key=lambda item: (item.occurred_at, str(item.id)))


def consents_section(uow: UnitOfWork, number: CrmNumber) -> JsonValue:
    """The ``consents`` section: the customer's consent ledger, oldest entry first."""
    return json_ready(uow.consents.history(number))


def audit_section(uow: UnitOfWork, number: CrmNumber) -> JsonValue:
    """The ``audit`` section: the audit entries about the customer, oldest first."""
    return json_ready(uow.audit.query(number=number))


def _scores(context: ServiceContext, number: CrmNumber, now: dt.datetime) -> dict[str, JsonValue]:
    """Metrics, RFM scores, historical value and churn risk as :class:`Analytics` computes
    them now (RFM quantiles are relative to every customer, so they come from a snapshot)."""
    source = context.store.metrics_source()
    metrics = source.customer_row(number, now)
    snapshot = source.snapshot(now, RFM_FIELDS | VALUE_FIELDS)
    scored = score_rfm(snapshot)
    rfm = scored.explain(number)
    row = scored.row_of(number)
    value = historical_value(snapshot)
    return {
        "as_of": instant(now),
        "metrics": {name: json_ready(v) for name, v in sorted(metrics.items())},
        "rfm": {
            "scored": rfm.scored,
            "recency_days": rfm.recency_days,
            "frequency": rfm.frequency,
            "monetary": _minor(rfm.monetary, context.store.reporting_currency),
            "r": rfm.r,
            "f": rfm.f,
            "m": rfm.m,
            "segment": rfm.segment,
        },
        "value": {
            "net": _minor(int(value["net"][row]), context.store.reporting_currency),
            "average_order_minor": _float(float(value["average_order"][row])),
            "per_year_minor": _float(float(value["per_year"][row])),
        },
        "churn_risk": _float(float(churn_risk(snapshot)[row])),
    }


class SubjectAccess:
    """The subject access use case of :class:`~crmcore.Crm` (a mixin: ``Crm`` inherits it;
    it needs its :attr:`context`)."""

    context: ServiceContext

    def export_subject(self, number: CrmNumber | str) -> dict[str, JsonValue]:
        """Everything held about one customer, as JSON-ready data (``json.dumps`` it as is).

        The document follows the schema ``crmcore.subject-export`` version 1 (see
        :func:`export_json_schema` and ``docs/privacy-subject.md``): ``profile`` (every
        field), ``contact_points``, ``stage_history``, ``interactions`` and ``transactions``
        (with lines; oldest first), ``totals``, ``segment_memberships`` (every saved run
        that included the customer), ``scores`` (metrics, RFM, value and churn risk as of
        now), ``consents`` (the consent ledger) and ``audit`` (audit entries about the
        customer); the last two are ``null`` on a store that keeps no such record. The
        records are read in one unit of work; the scores from a snapshot taken just after.

        Raises:
            ValidationError: malformed number text.
            ErasedError: the customer was erased (nothing personal is left to export).
            NotFound: no such customer.
        """
        key = self.context.number(number)
        decision = self.context.authorize(AuditAction.EXPORT, AuditEntity.CUSTOMER, key)
        if decision is Decision.MASK:
            # A masked copy is no answer to an access request: refuse it, audited.
            with self.context.unit() as uow:
                self.context.audit(
                    uow, AuditAction.EXPORT, AuditEntity.CUSTOMER, key, outcome=AuditOutcome.DENIED
                )
            raise AccessDenied(self.context.actor, AuditAction.EXPORT.value)
        now = self.context.now()
        currency = self.context.store.reporting_currency
        with self.context.reading() as uow:
            customer = uow.customers.get(key)
            interactions = uow.interactions.for_customer(key)
            transactions = uow.transactions.for_customer(key)
            totals = uow.aggregates.get(key)
            runs = uow.segments.runs_including(key)
            consents = consents_section(uow, key)
            audit = audit_section(uow, key)  # read before this export's own entry
            self.context.audit(uow, AuditAction.EXPORT, AuditEntity.CUSTOMER, key)
        return {
            "schema": EXPORT_SCHEMA,
            "version": EXPORT_VERSION,
            "crm_number": key.value,
            "exported_at": instant(now),
            "reporting_currency": currency,
            "profile": _profile(customer),
            "contact_points": _contact_points(customer),
            "stage_history": [_stage_change(c) for c in customer.stage_history],
            "interactions": [_interaction(i) for i in _chronological(interactions)],
            "transactions": [_transaction(t) for t in _chronological(transactions)],
            "totals": _totals(totals, currency),
            "segment_memberships": [
                {"segment": segment, "as_of": instant(as_of)} for segment, as_of in runs
            ],
            "scores": _scores(self.context, key, now),
            "consents": consents,
            "audit": audit,
        }


def export_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :meth:`SubjectAccess.export_subject`'s output."""
    text = (
        resources.files("crmcore.services")
        .joinpath("subject_export.schema.json")
        .read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded
