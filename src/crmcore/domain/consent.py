"""Consent: the append-only ledger of decisions and the state derived from it.

A :class:`ConsentRecord` is one decision a customer made (or withdrew) for a purpose,
optionally on one channel, with its proof: the lawful basis, a hash or version of the text
agreed to, the source, an evidence reference and the actor who recorded it. Records are never
changed or deleted (only erasure removes them); what a customer agrees to *now* is derived from
them by :func:`consent_state` / :func:`is_granted`:

* per ``(purpose, channel)`` the latest decision at or before the instant asked about wins;
* a decision without a channel applies to every channel, and a later channel-specific one
  overrides it for that channel (and a later channel-less one overrides that again);
* "latest" orders by ``at`` and, between decisions at the same instant, by ledger order: the
  record appended later wins;
* a grant with ``expires_at`` stops counting at that instant (the state is then "not granted",
  an older grant does not come back).

:class:`Consent` is the earlier, smaller decision value (purpose, channel, granted, at, source)
that ``Crm.register(consents=...)`` and the deprecated ``Crm.record_consent`` still take.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import attrs

from crmcore.domain import _checks
from crmcore.domain.interaction import InteractionChannel
from crmcore.domain.numbers import CrmNumber
from crmcore.errors import ValidationError

__all__ = [
    "Consent",
    "ConsentDecision",
    "ConsentPurpose",
    "ConsentRecord",
    "ConsentState",
    "LawfulBasis",
    "consent_purpose",
    "consent_state",
    "history_order",
    "is_granted",
]

_PURPOSE: Final = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")


class ConsentPurpose(enum.Enum):
    """The well-known purposes. Any lower-case slug is a purpose too (see
    :func:`consent_purpose`); these are the ones crmcore names."""

    MARKETING = "marketing"
    PROFILING = "profiling"
    NEWSLETTER = "newsletter"
    THIRD_PARTY_SHARING = "third_party_sharing"
    SERVICE_MESSAGES = "service_messages"


class ConsentDecision(enum.Enum):
    """What the customer decided."""

    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class LawfulBasis(enum.Enum):
    """The lawful bases of processing of GDPR Art. 6(1) (a) to (f)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


def consent_purpose(field: str, value: object) -> str:
    """A purpose as its slug: a :class:`ConsentPurpose` or lower-case text of 1-64 characters
    (a letter, then letters, digits, ``_ . : -``).

    Raises:
        ValidationError: anything else.
    """
    if isinstance(value, ConsentPurpose):
        return value.value
    if not isinstance(value, str) or not _PURPOSE.fullmatch(value):
        raise ValidationError(
            field, value, "a purpose is a lower-case slug of 1-64 characters (a-z, 0-9, _.:-)"
        )
    return value


def _purpose_member(field: str, value: object) -> ConsentPurpose:
    return _checks.member(field, ConsentPurpose, value)


@attrs.frozen(field_transformer=_checks.install_converters)
class Consent:
    """A consent decision as ``register(consents=...)`` takes it: granted or withdrawn, for a
    well-known purpose on a channel (``None``: every channel), at a time.

    The ledger stores it as a :class:`ConsentRecord` (lawful basis "consent", actor of the
    use case); use :meth:`~crmcore.Crm.grant_consent` / :meth:`~crmcore.Crm.withdraw_consent`
    for the full record.
    """

    purpose: ConsentPurpose = attrs.field(metadata=_checks.converts(_purpose_member))
    channel: InteractionChannel | None = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.optional_member(f, InteractionChannel, v))
    )
    granted: bool = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.instance_of(f, bool, v))
    )
    at: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    source: str | None = attrs.field(
        default=None,
        repr=False,
        metadata=_checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=200)),
    )


def _actor(field: str, value: object) -> str:
    return _checks.text(field, value, max_length=200)


@attrs.frozen(field_transformer=_checks.install_converters)
class ConsentRecord:
    """One entry of a customer's consent ledger. Immutable; never rewritten.

    Attributes:
        customer: whose decision it is.
        purpose: what for (a slug; the :class:`ConsentPurpose` values are the well-known
            ones; a :class:`ConsentPurpose` given is stored as its value).
        channel: the channel it applies to; ``None``: every channel.
        decision: granted or withdrawn.
        at: when the customer decided (aware, stored in UTC).
        lawful_basis: the GDPR Art. 6 basis (default: consent).
        text_hash: a hash or version of the text the customer agreed to (proof of what).
        source: where the decision was taken (a form, a shop, the call centre), at most 200.
        evidence: a reference to the proof kept elsewhere (a signed form's id), at most 500.
        actor: who recorded it (a non-personal id such as ``"user:42"``).
        expires_at: when a grant stops counting (after ``at``); never on a withdrawal.
        id: the entry's id.
    """

    customer: CrmNumber = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.instance_of(f, CrmNumber, v))
    )
    purpose: str = attrs.field(metadata=_checks.converts(consent_purpose))
    channel: InteractionChannel | None = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.optional_member(f, InteractionChannel, v))
    )
    decision: ConsentDecision = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, ConsentDecision, v))
    )
    at: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    lawful_basis: LawfulBasis = attrs.field(
        default=LawfulBasis.CONSENT,
        metadata=_checks.converts(lambda f, v: _checks.member(f, LawfulBasis, v)),
    )
    text_hash: str | None = attrs.field(
        default=None,
        metadata=_checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=128)),
    )
    source: str | None = attrs.field(
        default=None,
        metadata=_checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=200)),
    )
    evidence: str | None = attrs.field(
        default=None,
        metadata=_checks.converts(lambda f, v: _checks.optional_text(f, v, max_length=500)),
    )
    actor: str = attrs.field(default="system", metadata=_checks.converts(_actor))
    expires_at: dt.datetime | None = attrs.field(
        default=None, metadata=_checks.converts(_checks.optional_aware_utc)
    )
    id: uuid.UUID = attrs.field(factory=uuid.uuid4, metadata=_checks.converts(_checks.uuid_value))

    def __attrs_post_init__(self) -> None:
        if self.expires_at is not None:
            if self.decision is ConsentDecision.WITHDRAWN:
                raise ValidationError("expires_at", self.expires_at, "only a grant expires")
            if self.expires_at <= self.at:
                raise ValidationError("expires_at", self.expires_at, "must be after 'at'")

    def __repr__(self) -> str:
        # Source and evidence may name a person (a form with a name on it): kept out.
        channel = None if self.channel is None else self.channel.value
        return (
            f"ConsentRecord(id={str(self.id)!r}, customer={self.customer.value!r}, "
            f"purpose={self.purpose!r}, channel={channel!r}, decision={self.decision.value!r})"
        )

    @property
    def granted(self) -> bool:
        """Whether this entry is a grant."""
        return self.decision is ConsentDecision.GRANTED

    def in_force(self, as_of: dt.datetime) -> bool:
        """Whether this entry, as the latest decision, means "granted" at ``as_of``."""
        return self.granted and (self.expires_at is None or as_of < self.expires_at)


def _check_records(records: Iterable[ConsentRecord]) -> list[ConsentRecord]:
    out = []
    for index, record in enumerate(records):
        out.append(_checks.instance_of(f"records[{index}]", ConsentRecord, record))
    return out


def history_order(records: Iterable[ConsentRecord]) -> list[ConsentRecord]:
    """``records`` (given in ledger order) oldest first: by ``at``, ledger order on ties."""
    return sorted(records, key=lambda r: r.at)  # sorted() is stable: ties keep ledger order


@attrs.frozen
class ConsentState(Mapping[tuple[str, InteractionChannel | None], ConsentRecord]):
    """A customer's consent decisions in force at one instant: ``(purpose, channel)`` -> the
    latest record for exactly that key (a channel-less key applies to every channel; ask
    :meth:`granted` for the effective answer on a channel).

    Attributes:
        as_of: the instant.
        latest: the latest record per key (expired grants included, as decisions).
    """

    as_of: dt.datetime
    latest: Mapping[tuple[str, InteractionChannel | None], ConsentRecord]
    # Each key's position in history order: breaks ties on ``at`` between a channel-less
    # and a channel-specific decision (the later entry wins).
    _positions: Mapping[tuple[str, InteractionChannel | None], int] = attrs.field(
        factory=dict, repr=False, eq=False
    )

    def __getitem__(self, key: tuple[str, InteractionChannel | None]) -> ConsentRecord:
        return self.latest[key]

    def __iter__(self) -> Iterator[tuple[str, InteractionChannel | None]]:
        return iter(self.latest)

    def __len__(self) -> int:
        return len(self.latest)

    def __repr__(self) -> str:
        return f"ConsentState(as_of={self.as_of.isoformat()!r}, decisions={len(self.latest)})"

    def granted(
        self, purpose: ConsentPurpose | str, channel: InteractionChannel | str | None = None
    ) -> bool:
        """Whether consent for ``purpose`` on ``channel`` is granted and unexpired at
        :attr:`as_of` (``channel=None``: the every-channel decision)."""
        slug = consent_purpose("purpose", purpose)
        wanted = _checks.optional_member("channel", InteractionChannel, channel)
        keys = [(slug, None)] if wanted is None else [(slug, None), (slug, wanted)]
        found = [key for key in keys if key in self.latest]
        if not found:
            return False
        last = max(found, key=self._positions.__getitem__)
        return self.latest[last].in_force(self.as_of)


def consent_state(records: Iterable[ConsentRecord], as_of: dt.datetime) -> ConsentState:
    """The decisions in force at ``as_of`` from one customer's ledger ``records`` (in ledger
    order, as :meth:`~crmcore.ports.ConsentLedger.history` returns them).

    Records after ``as_of`` do not count.

    Raises:
        ValidationError: ``as_of`` is naive, or an item is not a :class:`ConsentRecord`.
    """
    when = _checks.aware_utc("as_of", as_of)
    latest: dict[tuple[str, InteractionChannel | None], ConsentRecord] = {}
    positions: dict[tuple[str, InteractionChannel | None], int] = {}
    for position, record in enumerate(history_order(_check_records(records))):
        if record.at <= when:
            key = (record.purpose, record.channel)
            latest[key] = record
            positions[key] = position
    return ConsentState(when, latest, positions)


def is_granted(
    records: Iterable[ConsentRecord],
    purpose: ConsentPurpose | str,
    channel: InteractionChannel | str | None,
    as_of: dt.datetime,
) -> bool:
    """Whether ``records`` (one customer's ledger, in ledger order) grant ``purpose`` on
    ``channel`` at ``as_of``: the latest decision at or before ``as_of`` that applies
    (channel-less or on ``channel``; on ties of ``at`` the later entry) is an unexpired grant.
    ``channel=None`` asks for the every-channel decision only.
    """
    slug = consent_purpose("purpose", purpose)
    wanted = _checks.optional_member("channel", InteractionChannel, channel)
    when = _checks.aware_utc("as_of", as_of)
    latest: ConsentRecord | None = None
    for record in history_order(_check_records(records)):
        if record.at > when or record.purpose != slug:
            continue
        if record.channel is not None and record.channel is not wanted:
            continue
        latest = record
    return latest is not None and latest.in_force(when)
