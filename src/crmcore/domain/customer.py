"""The customer entity, its name and custom attributes (consents: ``domain.consent``)."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeAlias

import attrs

from crmcore.domain import _checks
from crmcore.domain.contact import (
    EmailAddress,
    PhoneNumber,
    PostalAddress,
    email_addresses,
    phone_numbers,
)
from crmcore.domain.interaction import InteractionChannel
from crmcore.domain.lifecycle import LifecycleStage, StageChange, check_transition
from crmcore.domain.numbers import CrmNumber
from crmcore.errors import ValidationError

__all__ = [
    "AttributeValue",
    "Customer",
    "Gender",
    "PersonName",
]

AttributeValue: TypeAlias = str | int | bool | Decimal | dt.date | dt.datetime
"""The types a custom attribute may hold (floats are excluded: use Decimal)."""

_TAG = re.compile(r"[^\s,;\"'\\\x00-\x1f\x7f]{1,64}")
_ATTRIBUTE_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Gender(enum.Enum):
    """Self-described gender, optional. ``UNDISCLOSED`` differs from unknown (``None``)."""

    FEMALE = "female"
    MALE = "male"
    NON_BINARY = "non_binary"
    OTHER = "other"
    UNDISCLOSED = "undisclosed"


@attrs.frozen(field_transformer=_checks.install_converters)
class PersonName:
    """A person's name. ``display`` defaults to "given family" (or whichever is present)."""

    given: str | None = attrs.field(
        default=None,
        repr=False,
        metadata=_checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=200)),
    )
    family: str | None = attrs.field(
        default=None,
        repr=False,
        metadata=_checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=200)),
    )
    display: str = attrs.field(
        default="",
        repr=False,
        metadata=_checks.converts(
            lambda f, v: _checks.text(f, v, max_length=400, allow_empty=True)
        ),
    )

    def __attrs_post_init__(self) -> None:
        if not self.display:
            shown = " ".join(p for p in (self.given, self.family) if p)
            if not shown:
                raise ValidationError("name", self, "needs a given, family or display name")
            object.__setattr__(self, "display", shown)

    def __str__(self) -> str:
        return self.display


def _tags(field: str, value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(field, value, "must be a collection of tags")
    out = set()
    for tag in value:
        cleaned = tag.strip().lower() if isinstance(tag, str) else tag
        if not isinstance(cleaned, str) or not _TAG.fullmatch(cleaned):
            raise ValidationError(
                field, tag, "a tag is 1-64 characters without spaces, commas, semicolons or quotes"
            )
        out.add(cleaned)
    return frozenset(out)


def _attribute_value(field: str, value: object) -> AttributeValue:
    if isinstance(value, float):
        raise ValidationError(field, value, "floats are not allowed; use Decimal")
    if isinstance(value, dt.datetime):
        return _checks.aware_utc(field, value)
    if isinstance(value, str):
        return _checks.text(field, value, max_length=2000, allow_empty=True)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValidationError(field, value, "must be finite")
        return value
    if isinstance(value, bool | int | dt.date):
        return value
    raise ValidationError(field, value, "must be str, int, bool, Decimal, date or datetime")


def _attributes(field: str, value: object) -> Mapping[str, AttributeValue]:
    if not isinstance(value, Mapping):
        raise ValidationError(field, value, "must be a mapping of name to value")
    out: dict[str, AttributeValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _ATTRIBUTE_KEY.fullmatch(key):
            raise ValidationError(
                field, key, "attribute names are lower-case identifiers (a-z, 0-9, _)"
            )
        out[key] = _attribute_value(f"{field}.{key}", item)
    return MappingProxyType(dict(sorted(out.items())))


def _emails(field: str, value: object) -> tuple[EmailAddress, ...]:
    return email_addresses(value, field)  # type: ignore[arg-type]  # validated inside


def _phones(field: str, value: object) -> tuple[PhoneNumber, ...]:
    return phone_numbers(value, None, field)  # type: ignore[arg-type]  # validated inside


def _addresses(field: str, value: object) -> tuple[PostalAddress, ...]:
    return _checks.tuple_of(field, value, lambda f, v: _checks.instance_of(f, PostalAddress, v))


def _history(field: str, value: object) -> tuple[StageChange, ...]:
    return _checks.tuple_of(field, value, lambda f, v: _checks.instance_of(f, StageChange, v))


def _birth_date(field: str, value: object) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValidationError(field, value, "must be a date")
    if value.year < 1900:
        raise ValidationError(field, value, "must be in 1900 or later")
    return value


def _version(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, value, "must be a non-negative integer")
    return value


def _masked(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, value, "must be True or False")
    return value


def _opt_text(max_length: int) -> dict[str, Any]:
    return _checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=max_length))


@attrs.define(field_transformer=_checks.install_converters)
class Customer:
    """A customer: the registry entry behind one CRM number.

    Collections are immutable (tuples, frozensets, read-only mappings); change them by
    assigning a new value, which is validated like the constructor's arguments, so an invalid
    customer cannot exist. Repositories hand out copies: changing an object changes storage
    only through ``customers.update()``.

    Consents are not part of the customer: they live in the append-only consent ledger
    (``uow.consents``, :meth:`~crmcore.Crm.grant_consent`), so no update can rewrite them.

    ``version`` counts stored updates; ``update()`` refuses a customer whose version is not
    the stored one (optimistic concurrency).
    """

    number: CrmNumber = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.instance_of(f, CrmNumber, v)),
        # A CRM number is permanent: reassigning it on a loaded object would make update()
        # write over another customer. Use attrs.evolve() to build a copy with a new number.
        on_setattr=attrs.setters.frozen,
    )
    name: PersonName = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.instance_of(f, PersonName, v))
    )
    created_at: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    updated_at: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    gender: Gender | None = attrs.field(
        default=None,
        metadata=_checks.converts(lambda f, v: _checks.optional_member(f, Gender, v)),
    )
    birth_date: dt.date | None = attrs.field(default=None, metadata=_checks.converts(_birth_date))
    title: str | None = attrs.field(default=None, metadata=_opt_text(100))
    job_title: str | None = attrs.field(default=None, metadata=_opt_text(200))
    organisation: str | None = attrs.field(default=None, metadata=_opt_text(200))
    emails: tuple[EmailAddress, ...] = attrs.field(default=(), metadata=_checks.converts(_emails))
    phones: tuple[PhoneNumber, ...] = attrs.field(default=(), metadata=_checks.converts(_phones))
    addresses: tuple[PostalAddress, ...] = attrs.field(
        default=(), metadata=_checks.converts(_addresses)
    )
    preferred_channel: InteractionChannel | None = attrs.field(
        default=None,
        metadata=_checks.converts(lambda f, v: _checks.optional_member(f, InteractionChannel, v)),
    )
    tags: frozenset[str] = attrs.field(default=frozenset(), metadata=_checks.converts(_tags))
    attributes: Mapping[str, AttributeValue] = attrs.field(
        factory=dict, metadata=_checks.converts(_attributes)
    )
    # The stage moves only through change_stage(), which enforces the transition table and
    # records the change; plain assignment would bypass both.
    stage: LifecycleStage = attrs.field(
        default=LifecycleStage.LEAD,
        metadata=_checks.converts(lambda f, v: _checks.member(f, LifecycleStage, v)),
        on_setattr=attrs.setters.frozen,
    )
    stage_history: tuple[StageChange, ...] = attrs.field(
        default=(), metadata=_checks.converts(_history), on_setattr=attrs.setters.frozen
    )
    owner: str | None = attrs.field(default=None, metadata=_opt_text(200))
    source: str | None = attrs.field(default=None, metadata=_opt_text(100))
    external_id: str | None = attrs.field(default=None, metadata=_opt_text(200))
    version: int = attrs.field(default=0, metadata=_checks.converts(_version))
    # Set when retention anonymised the customer (crmcore.domain.retention): its personal
    # data is gone, its history stays for analytics, and retention does not process it again.
    anonymised_at: dt.datetime | None = attrs.field(
        default=None, metadata=_checks.converts(_checks.optional_aware_utc)
    )
    # Set by an access policy's masking (crmcore.domain.access.mask_customer) on what a read
    # returns; frozen so a host cannot clear it and store the masked values back.
    masked: bool = attrs.field(
        default=False,
        metadata=_checks.converts(_masked),
        on_setattr=attrs.setters.frozen,
    )

    def __attrs_post_init__(self) -> None:
        self._check()

    def validate(self) -> None:
        """Check the rules that span several fields (single fields are checked on assignment).

        Repositories call this before storing, so a customer changed field by field into an
        inconsistent state is refused instead of stored, and so is a masked copy (its contact
        points are placeholders such as ``a***@example.com``).

        Raises:
            ValidationError: ``updated_at`` before ``created_at``, ``external_id`` without
                ``source``, or the customer is :attr:`masked`.
        """
        self._check()
        if self.masked:
            raise ValidationError(
                "masked", True, "a masked customer (an access policy's view) cannot be stored"
            )

    def _check(self) -> None:
        if self.updated_at < self.created_at:
            raise ValidationError("updated_at", self.updated_at, "is before created_at")
        if self.external_id is not None and self.source is None:
            raise ValidationError("source", None, "is required when external_id is set")

    def __repr__(self) -> str:
        # Personal data stays out of reprs (they end up in logs and tracebacks).
        return (
            f"Customer(number={self.number.value!r}, stage={self.stage.value!r}, "
            f"version={self.version}{', masked' if self.masked else ''})"
        )

    # -- behaviour -------------------------------------------------------------------------

    def change_stage(
        self, to_stage: LifecycleStage, at: dt.datetime, reason: str = ""
    ) -> StageChange:
        """Move to ``to_stage``, recording a :class:`StageChange` in ``stage_history``.

        Raises:
            InvalidTransition: if the transition table does not allow it.
            ValidationError: if ``at`` is naive or precedes the last recorded change.
        """
        target = _checks.member("to_stage", LifecycleStage, to_stage)
        when = _checks.aware_utc("at", at)
        check_transition(self.stage, target)
        if self.stage_history and when < self.stage_history[-1].at:
            raise ValidationError("at", at, "is before the customer's last stage change")
        change = StageChange(self.stage, target, when, reason)
        # Bypass the frozen setters on purpose: this method is the one way to move the stage.
        object.__setattr__(self, "stage", target)
        object.__setattr__(self, "stage_history", (*self.stage_history, change))
        return change

    @property
    def primary_email(self) -> EmailAddress | None:
        return self.emails[0] if self.emails else None

    @property
    def primary_phone(self) -> PhoneNumber | None:
        return self.phones[0] if self.phones else None
