"""Interactions: every contact with a customer, on any channel."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import attrs

from crmcore.domain import _checks
from crmcore.domain.numbers import CrmNumber
from crmcore.errors import ValidationError

__all__ = ["Direction", "Interaction", "InteractionChannel", "InteractionKind"]


class InteractionChannel(enum.Enum):
    PHONE = "phone"
    EMAIL = "email"
    SMS = "sms"
    CHAT = "chat"
    SOCIAL = "social"
    VISIT = "visit"
    WEB = "web"
    OTHER = "other"


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class InteractionKind(enum.Enum):
    INQUIRY = "inquiry"
    COMPLAINT = "complaint"
    FEEDBACK = "feedback"
    SUPPORT = "support"
    SALES = "sales"
    CARE = "care"


def _opt_text(max_length: int) -> dict[str, Any]:
    return _checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=max_length))


@attrs.frozen(field_transformer=_checks.install_converters)
class Interaction:
    """One contact with a customer: a call, an e-mail, a visit, a complaint...

    Interactions are immutable facts. ``(source, external_ref)``, when given, identifies the
    record in the system it came from: recording the same pair twice stores it once.
    """

    customer: CrmNumber = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.instance_of(f, CrmNumber, v))
    )
    occurred_at: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    channel: InteractionChannel = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, InteractionChannel, v))
    )
    direction: Direction = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, Direction, v))
    )
    kind: InteractionKind = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, InteractionKind, v))
    )
    subject: str | None = attrs.field(default=None, metadata=_opt_text(500))
    notes: str | None = attrs.field(default=None, metadata=_opt_text(20_000))
    outcome: str | None = attrs.field(default=None, metadata=_opt_text(500))
    agent: str | None = attrs.field(default=None, metadata=_opt_text(200))
    follow_up_due: dt.datetime | None = attrs.field(
        default=None, metadata=_checks.converts(_checks.optional_aware_utc)
    )
    source: str | None = attrs.field(default=None, metadata=_opt_text(100))
    external_ref: str | None = attrs.field(default=None, metadata=_opt_text(200))
    id: uuid.UUID = attrs.field(factory=uuid.uuid4, metadata=_checks.converts(_checks.uuid_value))

    def __attrs_post_init__(self) -> None:
        if self.external_ref is not None and self.source is None:
            raise ValidationError("source", None, "is required when external_ref is set")

    def __repr__(self) -> str:
        return (
            f"Interaction(id={str(self.id)!r}, customer={self.customer.value!r}, "
            f"channel={self.channel.value!r}, kind={self.kind.value!r})"
        )
