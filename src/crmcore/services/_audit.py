"""The audit trail and actor use cases of :class:`~crmcore.Crm`: who the use cases run for,
what the access policy shows them, and reading the trail back.

Every write use case and every read of a customer's personal data appends an
:class:`~crmcore.domain.AuditEntry` in its own unit of work (``ServiceContext.audit``), so the
entry commits or vanishes with the change it records; this mixin adds the public side.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import attrs

from crmcore.domain import AuditAction, AuditEntity, AuditEntry, AuditOutcome, CrmNumber, Customer
from crmcore.domain._checks import aware_utc, member
from crmcore.domain.access import Decision
from crmcore.domain.audit import check_actor, check_limit
from crmcore.errors import AccessDenied
from crmcore.ports import UnitOfWork
from crmcore.services._context import ServiceContext

__all__ = ["AuditTrail", "Disclosure"]


@attrs.frozen
class Disclosure:
    """What a lookup may show: the customers (masked where the policy said so), or the
    refusal to raise once the lookup's unit of work (with its audit entries) committed."""

    customers: tuple[Customer, ...]
    refusal: AccessDenied | None

    def result(self) -> list[Customer]:
        """The customers to return.

        Raises:
            AccessDenied: the policy denied one of them.
        """
        if self.refusal is not None:
            raise self.refusal
        return list(self.customers)


class AuditTrail:
    """The actor and audit-trail use cases of :class:`~crmcore.Crm` (a mixin: ``Crm``
    inherits them; they need its :attr:`context`)."""

    context: ServiceContext

    @property
    def actor(self) -> str:
        """Who the use cases run for now (see :meth:`acting_as`)."""
        return self.context.actor

    @contextmanager
    def acting_as(self, actor: str) -> Iterator[str]:
        """Run the use cases inside the ``with`` block for ``actor``.

        Blocks nest (the innermost wins) and are local to the thread or asyncio task that
        entered them: a web request handled in its own thread or task sets its user's actor
        id without another request seeing it. Yields the actor.

        Example::

            with crm.acting_as("user:42"):
                crm.get(number)        # audited as read by user:42

        Raises:
            ValidationError: ``actor`` is not an actor id (a letter, then at most 63
                letters, digits or ``_ . : / -``).
        """
        with self.context.acting_as(actor) as current:
            yield current

    def audit(
        self,
        number: CrmNumber | str | None = None,
        *,
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        action: AuditAction | str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """The audit trail, oldest first, filtered by every argument given.

        Reading the trail is not itself audited: it holds no personal data.

        Args:
            number: entries about this customer (erased customers' entries remain).
            actor: entries of this actor.
            since: entries at or after this instant.
            until: entries before this instant.
            action: entries of this action (an :class:`~crmcore.domain.AuditAction` or
                its value, e.g. ``"read"``).
            limit: at most this many (the oldest).

        Raises:
            ValidationError: a malformed number, actor, instant, action or limit.
        """
        key = None if number is None else self.context.number(number)
        who = None if actor is None else check_actor("actor", actor)
        start = None if since is None else aware_utc("since", since)
        end = None if until is None else aware_utc("until", until)
        verb = None if action is None else member("action", AuditAction, action)
        most = check_limit(limit)
        with self.context.reading() as uow:
            return list(
                uow.audit.query(
                    number=key, actor=who, since=start, until=end, action=verb, limit=most
                )
            )

    def _disclosed(
        self, uow: UnitOfWork, action: AuditAction, customers: Iterable[Customer]
    ) -> Disclosure:
        """Ask the policy about each customer a lookup found and audit the answer in the
        lookup's unit of work (one entry per customer, or one without a number when none
        was found). A denial keeps only the denied entries and refuses the whole lookup."""
        context = self.context
        found = list(customers)
        decisions = [(c, context.decide(action, c.number)) for c in found]
        denied = [c for c, d in decisions if d is Decision.DENY]
        if denied:
            for customer in denied:
                context.audit(
                    uow,
                    action,
                    AuditEntity.CUSTOMER,
                    customer.number,
                    outcome=AuditOutcome.DENIED,
                )
            return Disclosure((), AccessDenied(context.actor, action.value))
        if not found:
            context.audit(uow, action, AuditEntity.CUSTOMER, rows=0)
        for customer, decision in decisions:
            context.audit(
                uow, action, AuditEntity.CUSTOMER, customer.number, outcome=decision.outcome
            )
        return Disclosure(tuple(context.shown(c, d) for c, d in decisions), None)
