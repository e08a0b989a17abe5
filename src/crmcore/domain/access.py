"""Access policy and masking: what an actor may see of a customer, decided by the host.

crmcore knows no users or roles; the host does. It hands :class:`~crmcore.Crm` an
:class:`AccessPolicy`, any callable ``(actor, action, number) -> Decision``, that is asked
before every use case touching a customer's data:

* :attr:`Decision.ALLOW`: the use case runs as usual.
* :attr:`Decision.MASK`: reads return the customer through a masker (default
  :func:`mask_customer`: ``a***@example.com``, ``+86 *** **** 1234``); writes run as usual
  (masking is about what is shown, not what may be changed).
* :attr:`Decision.DENY`: the use case raises :class:`~crmcore.errors.AccessDenied`; the
  refusal is audited.

A masked customer is still a :class:`~crmcore.Customer` (hosts render it as any other) with
:attr:`~crmcore.Customer.masked` set and masked value objects (:class:`MaskedEmail`,
:class:`MaskedPhone`, subclasses of the real ones) in place of the contact points; every
repository refuses to store it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

import attrs

from crmcore.domain._checks import trusted
from crmcore.domain.audit import AuditAction, AuditOutcome
from crmcore.domain.contact import EmailAddress, PhoneNumber, PostalAddress
from crmcore.domain.customer import Customer, PersonName
from crmcore.domain.numbers import CrmNumber

__all__ = [
    "AccessPolicy",
    "Decision",
    "MaskedEmail",
    "MaskedPhone",
    "Masker",
    "allow_all",
    "mask_customer",
    "mask_email",
    "mask_name",
    "mask_phone",
]


class Decision(enum.Enum):
    """An access policy's answer."""

    ALLOW = "allow"
    MASK = "mask"
    DENY = "deny"

    @property
    def outcome(self) -> AuditOutcome:
        """The audit outcome this decision is recorded as."""
        return _OUTCOMES[self]


_OUTCOMES = {
    Decision.ALLOW: AuditOutcome.ALLOWED,
    Decision.MASK: AuditOutcome.MASKED,
    Decision.DENY: AuditOutcome.DENIED,
}


class AccessPolicy(Protocol):
    """Decides whether ``actor`` may do ``action`` on the customer ``number``.

    ``number`` is ``None`` for use cases about no single customer (bulk recording, imports,
    segment definitions and runs). A policy must be fast and free of side effects: it runs
    on every use case, inside none of crmcore's transactions.
    """

    def __call__(self, actor: str, action: AuditAction, number: CrmNumber | None) -> Decision:
        """The decision for one use case."""
        ...


def allow_all(actor: str, action: AuditAction, number: CrmNumber | None) -> Decision:
    """The default policy: everything is allowed (crmcore still audits everything)."""
    return Decision.ALLOW


Masker = Callable[[Customer], Customer]
"""Turns a customer into its masked view (the result must have ``masked=True``)."""


@attrs.frozen
class MaskedEmail(EmailAddress):
    """A masked e-mail address (``a***@example.com``): shown, never stored or looked up.

    Build it with :func:`mask_email`; its ``address`` is a placeholder, not an address.
    """


@attrs.frozen
class MaskedPhone(PhoneNumber):
    """A masked phone number (``+86 *** **** 1234``): shown, never stored or looked up.

    Build it with :func:`mask_phone`; its ``e164`` is a placeholder, not a number.
    """


def mask_email(email: EmailAddress) -> MaskedEmail:
    """The first character of the local part, ``***``, and the domain:
    ``ann.lee@example.com`` -> ``a***@example.com``."""
    local, _, domain = email.address.rpartition("@")
    return trusted(MaskedEmail, address=f"{local[:1]}***@{domain}", label=email.label)


def mask_phone(phone: PhoneNumber) -> MaskedPhone:
    """The country calling code and the last four digits: ``+8613812341234`` ->
    ``+86 *** **** 1234``."""
    # Imported here: the phone metadata is large and only masking needs it in this module.
    import phonenumbers

    parsed = phonenumbers.parse(phone.e164, None)
    national = str(parsed.national_number)
    text = f"+{parsed.country_code} *** **** {national[-4:]}"
    return trusted(MaskedPhone, e164=text, label=phone.label)


def _initial(part: str | None) -> str | None:
    return None if part is None else f"{part[:1]}***"


def mask_name(name: PersonName) -> PersonName:
    """Initials: ``Ann Lee`` -> given ``A***``, family ``L***``, display ``A*** L***``
    (a display-only name keeps the initial of each word)."""
    given, family = _initial(name.given), _initial(name.family)
    if given is None and family is None:
        display = " ".join(f"{word[:1]}***" for word in name.display.split())
    else:
        display = " ".join(p for p in (given, family) if p)
    return PersonName(given=given, family=family, display=display)


def _mask_address(address: PostalAddress) -> PostalAddress:
    return PostalAddress(country=address.country, region=address.region, label=address.label)


def mask_customer(customer: Customer) -> Customer:
    """The default masking: what a policy's :attr:`Decision.MASK` returns.

    * name: initials (:func:`mask_name`);
    * e-mail addresses: :func:`mask_email`; phone numbers: :func:`mask_phone`;
    * postal addresses: country and region only (lines, locality, postal code dropped);
    * birth date: ``None``; custom attributes: none (a host's attributes may hold anything);
    * ``external_id``: ``None`` (another system's key of the person).

    Number, stage and its history, tags, gender, title, job title, organisation, owner,
    consents, source, times and version are kept: a masked view still lets an agent serve
    the customer and a marketer see why someone is in a segment. Pass ``masker=`` to
    :class:`~crmcore.Crm` to mask differently.
    """
    return attrs.evolve(
        customer,
        name=mask_name(customer.name),
        emails=tuple(mask_email(e) for e in customer.emails),
        phones=tuple(mask_phone(p) for p in customer.phones),
        addresses=tuple(_mask_address(a) for a in customer.addresses),
        birth_date=None,
        attributes={},
        external_id=None,
        masked=True,
    )
