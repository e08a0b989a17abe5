"""Contact points: e-mail addresses, phone numbers and postal addresses.

E-mail syntax is checked by ``email-validator`` with deliverability checks off (no DNS: the
domain layer does no I/O). Phone numbers are parsed by ``phonenumbers`` (Google's
libphonenumber metadata) and kept in E.164 form.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, TypeVar

import attrs
import email_validator
import phonenumbers

from crmcore.domain import _checks
from crmcore.domain._countries import ISO_3166_ALPHA2
from crmcore.errors import ValidationError

__all__ = ["ContactLabel", "EmailAddress", "PhoneNumber", "PostalAddress"]


class ContactLabel(enum.Enum):
    """What a contact point is used for."""

    PERSONAL = "personal"
    WORK = "work"
    OTHER = "other"


def normalize_email(value: object, field: str = "email") -> str:
    """Return the normalised form of an e-mail address (domain lower-cased, IDNA applied).

    Raises:
        ValidationError: if the address is not syntactically valid.
    """
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be text")
    try:
        result = email_validator.validate_email(
            value.strip(), check_deliverability=False, allow_smtputf8=True
        )
    except email_validator.EmailNotValidError as exc:
        raise ValidationError(field, value, f"is not a valid e-mail address: {exc}") from None
    return result.normalized


def email_lookup_key(value: object, field: str = "email") -> str:
    """The key under which an address is looked up (see :attr:`EmailAddress.lookup_key`)."""
    return normalize_email(value, field).lower()


def normalize_phone(value: object, region: str | None = None, field: str = "phone") -> str:
    """Return a phone number in E.164 form (``+441632960961``).

    Args:
        value: the number as typed. Without ``region`` it must be international (``+``...).
        region: ISO 3166 region used for national numbers (``"GB"``, ``"DE"``).

    Raises:
        ValidationError: if the number cannot be parsed or is not a possible number.
    """
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be text")
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(field, value, f"is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(field, value, "is not a valid phone number for its region")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


@attrs.frozen(field_transformer=_checks.install_converters)
class EmailAddress:
    """A validated, normalised e-mail address. ``EmailAddress("Ann@Example.COM")``."""

    # Personal data stays out of reprs (they end up in logs and tracebacks).
    address: str = attrs.field(
        repr=False, metadata=_checks.converts(lambda f, v: normalize_email(v, f))
    )
    label: ContactLabel = attrs.field(
        default=ContactLabel.PERSONAL,
        metadata=_checks.converts(lambda f, v: _checks.member(f, ContactLabel, v)),
    )

    @property
    def lookup_key(self) -> str:
        """The form used to find customers by e-mail: normalised, then case-folded.

        RFC 5321 lets a server treat local parts case-sensitively, but in practice nobody
        does, and a CRM that cannot find ``Ann@example.com`` under ``ann@example.com`` is
        broken for its users. Display keeps the address as entered.
        """
        return self.address.lower()

    def __str__(self) -> str:
        return self.address


@attrs.frozen(field_transformer=_checks.install_converters)
class PhoneNumber:
    """A validated phone number held in E.164 form.

    The constructor requires an international number; use :meth:`parse` with a region for a
    national one.
    """

    e164: str = attrs.field(
        repr=False, metadata=_checks.converts(lambda f, v: normalize_phone(v, None, f))
    )
    label: ContactLabel = attrs.field(
        default=ContactLabel.PERSONAL,
        metadata=_checks.converts(lambda f, v: _checks.member(f, ContactLabel, v)),
    )

    @classmethod
    def parse(
        cls, text: str, region: str | None = None, label: ContactLabel = ContactLabel.PERSONAL
    ) -> PhoneNumber:
        """Parse a number as typed, national numbers relative to ``region``."""
        return cls(normalize_phone(text, region), label)

    def __str__(self) -> str:
        return self.e164


def email_addresses(
    values: Iterable[EmailAddress | str], field: str = "emails"
) -> tuple[EmailAddress, ...]:
    """Validate addresses given as objects or text; errors name ``emails[i]``."""
    return _checks.tuple_of(field, values, lambda f, v: _coerce(f, v, EmailAddress, None))


def phone_numbers(
    values: Iterable[PhoneNumber | str], region: str | None = None, field: str = "phones"
) -> tuple[PhoneNumber, ...]:
    """Validate numbers given as objects or text (national ones relative to ``region``)."""
    return _checks.tuple_of(field, values, lambda f, v: _coerce(f, v, PhoneNumber, region))


def _coerce(field: str, value: object, cls: type[_C], region: str | None) -> _C:
    if isinstance(value, cls):
        return value
    if not isinstance(value, str):
        raise ValidationError(field, value, f"must be a {cls.__name__} or text")
    try:
        if cls is PhoneNumber:
            return cls(normalize_phone(value, region, field))
        return cls(value)
    except ValidationError as exc:
        raise ValidationError(field, value, exc.reason) from None


def _opt(max_length: int) -> dict[str, Any]:
    return _checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=max_length))


@attrs.frozen(field_transformer=_checks.install_converters)
class PostalAddress:
    """A postal address. Only ``country`` (ISO 3166-1 alpha-2) is required."""

    country: str = attrs.field(metadata=_checks.converts(lambda f, v: _country(f, v)))
    lines: tuple[str, ...] = attrs.field(
        default=(),
        repr=False,
        metadata=_checks.converts(
            lambda f, v: _checks.tuple_of(f, v, lambda ff, vv: _checks.text(ff, vv, max_length=200))
        ),
    )
    locality: str | None = attrs.field(default=None, repr=False, metadata=_opt(200))
    region: str | None = attrs.field(default=None, metadata=_opt(200))
    postal_code: str | None = attrs.field(default=None, repr=False, metadata=_opt(32))
    label: ContactLabel = attrs.field(
        default=ContactLabel.PERSONAL,
        metadata=_checks.converts(lambda f, v: _checks.member(f, ContactLabel, v)),
    )


def _country(field: str, value: object) -> str:
    code = value.strip().upper() if isinstance(value, str) else value
    if not isinstance(code, str) or code not in ISO_3166_ALPHA2:
        raise ValidationError(
            field, value, "must be an ISO 3166-1 alpha-2 country code (e.g. DE, GB, US)"
        )
    return code


_C = TypeVar("_C", EmailAddress, PhoneNumber)
