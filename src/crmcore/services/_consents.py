"""The consent use cases behind ``Crm.grant_consent`` and friends (GDPR Art. 7, PIPL Art. 14).

Every decision is appended to the customer's consent ledger (:class:`~crmcore.ports.ConsentLedger`)
as a :class:`~crmcore.ConsentRecord`; nothing here rewrites or deletes an entry. Withdrawing
takes the same arguments as granting (Art. 7(3): as easy to withdraw as to give). Each
decision publishes a :class:`~crmcore.events.ConsentChanged` event.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

from crmcore.domain import (
    AuditAction,
    AuditEntity,
    Consent,
    ConsentChanged,
    ConsentDecision,
    ConsentPurpose,
    ConsentRecord,
    ConsentState,
    CrmNumber,
    Customer,
    InteractionChannel,
    LawfulBasis,
)
from crmcore.domain._checks import aware_utc, member, optional_member
from crmcore.domain.consent import consent_purpose
from crmcore.errors import ValidationError
from crmcore.ports import UnitOfWork
from crmcore.services._context import ServiceContext

__all__ = ["Consents", "consent_changed", "record_of"]

_SYSTEM = "system"


def consent_changed(record: ConsentRecord, at: dt.datetime) -> ConsentChanged:
    """The event of appending ``record``."""
    return ConsentChanged(
        at=at,
        customer=record.customer,
        record_id=record.id,
        purpose=record.purpose,
        channel=None if record.channel is None else record.channel.value,
        granted=record.granted,
    )


def record_of(consent: Consent, number: CrmNumber, actor: str) -> ConsentRecord:
    """The ledger entry of a :class:`~crmcore.Consent` decision of customer ``number``."""
    return ConsentRecord(
        customer=number,
        purpose=consent.purpose.value,
        channel=consent.channel,
        decision=ConsentDecision.GRANTED if consent.granted else ConsentDecision.WITHDRAWN,
        at=consent.at,
        source=consent.source,
        actor=actor,
    )


class Consents:
    """The consent use cases of :class:`~crmcore.Crm` (a mixin: ``Crm`` inherits them; they
    need its :attr:`context`)."""

    context: ServiceContext

    def _actor(self, actor: str | None) -> str:
        """``actor`` if given, else the context's current actor (when the host set one),
        else ``"system"``."""
        if actor is not None:
            return actor
        current = getattr(self.context, "actor", None)
        return current if isinstance(current, str) and current else _SYSTEM

    def _append(self, uow: UnitOfWork, records: Sequence[ConsentRecord]) -> None:
        """Append ``records`` to their customers' ledgers, with one event each."""
        numbers = {record.customer for record in records}
        # Held first: the customer cannot be erased or merged away between the check and
        # the append, and two appenders to one ledger take their turns.
        uow.customers.lock(numbers)
        uow.consents.append_many(records)
        now = self.context.now()
        for record in records:
            uow.add_event(consent_changed(record, now))

    def grant_consent(
        self,
        number: CrmNumber | str,
        purpose: ConsentPurpose | str,
        channel: InteractionChannel | str | None = None,
        *,
        lawful_basis: LawfulBasis | str = LawfulBasis.CONSENT,
        text_hash: str | None = None,
        source: str | None = None,
        evidence: str | None = None,
        expires_at: dt.datetime | None = None,
        at: dt.datetime | None = None,
        actor: str | None = None,
    ) -> ConsentRecord:
        """Record that the customer granted consent for ``purpose`` on ``channel``.

        Args:
            number: the customer.
            purpose: a :class:`~crmcore.ConsentPurpose` or a lower-case slug (1-64 chars).
            channel: the channel it covers; ``None`` (default): every channel.
            lawful_basis: the GDPR Art. 6 basis (default: consent).
            text_hash: a hash or version of the text the customer agreed to.
            source: where it was given (a web form, a shop).
            evidence: a reference to the proof kept elsewhere.
            expires_at: when the grant lapses (after ``at``).
            at: when the customer decided (default: now).
            actor: who records it (default: the context's actor, else ``"system"``).

        Returns:
            The appended ledger entry.

        Raises:
            ValidationError: a bad argument (nothing is stored).
            NotFound: no such customer (``ErasedError`` if erased).
        """
        return self._decide(
            ConsentDecision.GRANTED,
            number,
            purpose,
            channel,
            lawful_basis=lawful_basis,
            text_hash=text_hash,
            source=source,
            evidence=evidence,
            expires_at=expires_at,
            at=at,
            actor=actor,
        )

    def withdraw_consent(
        self,
        number: CrmNumber | str,
        purpose: ConsentPurpose | str,
        channel: InteractionChannel | str | None = None,
        *,
        source: str | None = None,
        evidence: str | None = None,
        at: dt.datetime | None = None,
        actor: str | None = None,
    ) -> ConsentRecord:
        """Record that the customer withdrew consent for ``purpose`` on ``channel``
        (``None``: every channel). Takes what :meth:`grant_consent` takes, minus what only a
        grant has: withdrawing is as easy as consenting (GDPR Art. 7(3)).

        Returns:
            The appended ledger entry.

        Raises:
            ValidationError: a bad argument (nothing is stored).
            NotFound: no such customer (``ErasedError`` if erased).
        """
        return self._decide(
            ConsentDecision.WITHDRAWN,
            number,
            purpose,
            channel,
            source=source,
            evidence=evidence,
            at=at,
            actor=actor,
        )

    def _decide(
        self,
        decision: ConsentDecision,
        number: CrmNumber | str,
        purpose: ConsentPurpose | str,
        channel: InteractionChannel | str | None,
        *,
        lawful_basis: LawfulBasis | str = LawfulBasis.CONSENT,
        text_hash: str | None = None,
        source: str | None = None,
        evidence: str | None = None,
        expires_at: dt.datetime | None = None,
        at: dt.datetime | None = None,
        actor: str | None = None,
    ) -> ConsentRecord:
        key = self.context.number(number)
        record = ConsentRecord(
            customer=key,
            purpose=consent_purpose("purpose", purpose),
            channel=optional_member("channel", InteractionChannel, channel),
            decision=decision,
            at=self.context.now() if at is None else at,
            lawful_basis=member("lawful_basis", LawfulBasis, lawful_basis),
            text_hash=text_hash,
            source=source,
            evidence=evidence,
            actor=self._actor(actor),
            expires_at=expires_at,
        )
        self.context.authorize(AuditAction.CONSENT, AuditEntity.CUSTOMER, key)
        with self.context.unit() as uow:
            self._append(uow, [record])
            self.context.audit(
                uow, AuditAction.CONSENT, AuditEntity.CUSTOMER, key, fields=("consents",)
            )
        return record

    def consent_history(self, number: CrmNumber | str) -> list[ConsentRecord]:
        """Every consent decision of the customer, oldest first (by ``at``; decisions at the
        same instant in the order they were recorded).

        Raises:
            NotFound: no such customer (``ErasedError`` if erased: its ledger is gone).
        """
        key = self.context.number(number)
        self.context.authorize(AuditAction.READ, AuditEntity.CUSTOMER, key)
        with self.context.unit() as uow:
            uow.customers.get(key)
            history = list(uow.consents.history(key))
            self.context.audit(
                uow, AuditAction.READ, AuditEntity.CUSTOMER, key, fields=("consents",)
            )
        return history

    def consent_state(
        self, number: CrmNumber | str, as_of: dt.datetime | None = None
    ) -> ConsentState:
        """The customer's decisions in force at ``as_of`` (default: now): ask it
        ``state.granted("marketing", "email")``.

        Raises:
            NotFound: no such customer (``ErasedError`` if erased).
        """
        key = self.context.number(number)
        when = self.context.now() if as_of is None else aware_utc("as_of", as_of)
        self.context.authorize(AuditAction.READ, AuditEntity.CUSTOMER, key)
        with self.context.unit() as uow:
            uow.customers.get(key)
            state = uow.consents.state(key, when)
            self.context.audit(
                uow, AuditAction.READ, AuditEntity.CUSTOMER, key, fields=("consents",)
            )
        return state

    def record_consent(self, number: CrmNumber | str, consent: Consent) -> Customer:
        """Append a :class:`~crmcore.Consent` decision to the customer's ledger.

        .. deprecated::
            Use :meth:`grant_consent` / :meth:`withdraw_consent`, which also record the lawful
            basis, the text agreed to, the evidence and an expiry.

        Returns:
            The customer (unchanged: consents are not part of it any more).
        """
        warnings.warn(
            "Crm.record_consent is deprecated; use Crm.grant_consent or Crm.withdraw_consent",
            DeprecationWarning,
            stacklevel=2,
        )
        key = self.context.number(number)
        if not isinstance(consent, Consent):
            raise ValidationError("consent", consent, "must be a Consent")
        record = record_of(consent, key, self._actor(None))
        self.context.authorize(AuditAction.CONSENT, AuditEntity.CUSTOMER, key)
        with self.context.unit() as uow:
            self._append(uow, [record])
            self.context.audit(
                uow, AuditAction.CONSENT, AuditEntity.CUSTOMER, key, fields=("consents",)
            )
            return uow.customers.get(key)
