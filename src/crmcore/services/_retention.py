"""The retention use case: apply declarative retention rules in batches, or report what they
would change.

:meth:`Retention.apply_retention` (a mixin of :class:`~crmcore.Crm`) applies each rule of
:mod:`crmcore.domain.retention` in the order given. Every batch of at most ``batch_size``
records is one unit of work, so a store of ten million customers is never one transaction;
an interrupted run has committed whole batches only, and running it again finishes the work
(what was done no longer matches a rule). A second run changes nothing.

A dry run reads the same pages and changes nothing; it accounts for what earlier rules of the
same run would have done (a deleted customer's interactions are not blanked again, an
anonymised customer's texts are already gone), so its report is what a real run would report.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Final

import attrs

from crmcore.domain import CrmNumber, CustomerErased, CustomerUpdated
from crmcore.domain._checks import aware_utc
from crmcore.domain.audit import AuditAction, AuditEntity
from crmcore.domain.retention import (
    ANONYMISED_FIELDS,
    AnonymiseInactiveCustomers,
    BlankInteractionNotes,
    DeleteInactiveCustomers,
    RetentionRule,
    anonymised,
)
from crmcore.errors import ValidationError
from crmcore.ports import UnitOfWork
from crmcore.ports.retention import REDACTABLE
from crmcore.services._context import ServiceContext

__all__ = ["DEFAULT_RETENTION_BATCH", "Retention", "RetentionReport", "RuleOutcome"]

DEFAULT_RETENTION_BATCH: Final = 1000
"""Records per page and per unit of work unless the caller chooses."""

_NOTES: Final = ("subject", "notes")


@attrs.frozen
class RuleOutcome:
    """What one rule changed (or, in a dry run, would change).

    Attributes:
        rule: the rule.
        cutoff: the instant it counted from (``as_of`` minus the rule's period).
        changed: interactions blanked, customers anonymised or customers deleted.
        customers: the CRM numbers affected, ascending.
    """

    rule: RetentionRule
    cutoff: dt.datetime
    changed: int
    customers: tuple[CrmNumber, ...]


@attrs.frozen
class RetentionReport:
    """The result of :meth:`Retention.apply_retention`: one outcome per rule, in order."""

    as_of: dt.datetime
    dry_run: bool
    outcomes: tuple[RuleOutcome, ...]

    @property
    def changed(self) -> int:
        """Records changed by every rule together."""
        return sum(outcome.changed for outcome in self.outcomes)


@attrs.define
class _Run:
    """One run's shared state: the mode, and in a dry run what earlier rules would have done."""

    context: ServiceContext
    dry_run: bool
    batch_size: int
    deleted: set[CrmNumber] = attrs.Factory(set)
    anonymised: set[CrmNumber] = attrs.Factory(set)

    def unit(self) -> AbstractContextManager[UnitOfWork]:
        # A dry run reads through units it never commits.
        return self.context.reading() if self.dry_run else self.context.unit()


def _blank_notes(run: _Run, rule: BlankInteractionNotes, cutoff: dt.datetime) -> RuleOutcome:
    changed = 0
    customers: set[CrmNumber] = set()
    after: uuid.UUID | None = None
    while True:
        with run.unit() as uow:
            page = uow.interactions.with_text_before(cutoff, after=after, limit=run.batch_size)
            if not page:
                break
            after = page[-1][0]
            chosen = [
                (ident, number)
                for ident, number in page
                if number not in run.deleted and number not in run.anonymised
            ]
            if not run.dry_run and chosen:
                uow.interactions.redact([ident for ident, _ in chosen], _NOTES)
                per_customer: dict[CrmNumber, int] = {}
                for _, number in chosen:
                    per_customer[number] = per_customer.get(number, 0) + 1
                for number, count in sorted(per_customer.items()):
                    run.context.audit(
                        uow,
                        AuditAction.RETENTION,
                        AuditEntity.INTERACTION,
                        number,
                        fields=_NOTES,
                        rows=count,
                    )
        changed += len(chosen)
        customers.update(number for _, number in chosen)
    return RuleOutcome(rule, cutoff, changed, tuple(sorted(customers)))


def _each_inactive_page(
    run: _Run,
    cutoff: dt.datetime,
    include_anonymised: bool,
    handle: Callable[[UnitOfWork, CrmNumber], None],
) -> list[CrmNumber]:
    """Call ``handle(uow, number)`` for every inactive customer (not deleted earlier in a dry
    run), one unit of work per page; return the numbers handled."""
    done: list[CrmNumber] = []
    after: CrmNumber | None = None
    while True:
        with run.unit() as uow:
            page = list(
                uow.customers.inactive(
                    cutoff,
                    include_anonymised=include_anonymised,
                    after=after,
                    limit=run.batch_size,
                )
            )
            if not page:
                return done
            after = page[-1]
            for number in page:
                if number not in run.deleted:
                    if not run.dry_run:
                        handle(uow, number)
                    done.append(number)


def _anonymise(run: _Run, rule: AnonymiseInactiveCustomers, cutoff: dt.datetime) -> RuleOutcome:
    now = run.context.now()

    def anonymise(uow: UnitOfWork, number: CrmNumber) -> None:
        customer = anonymised(uow.customers.get(number), now)
        uow.customers.update(customer)
        uow.interactions.redact([i.id for i in uow.interactions.for_customer(number)], REDACTABLE)
        uow.transactions.redact_line_descriptions(number)
        # Consent entries name their source and evidence (a form, a call recording): they
        # identify the person, and an anonymous record has no one to contact anyway.
        uow.consents.forget(number)
        uow.add_event(CustomerUpdated(at=now, customer=number, version=customer.version))
        run.context.audit(
            uow, AuditAction.RETENTION, AuditEntity.CUSTOMER, number, fields=ANONYMISED_FIELDS
        )

    done = _each_inactive_page(run, cutoff, False, anonymise)
    run.anonymised.update(done)
    return RuleOutcome(rule, cutoff, len(done), tuple(sorted(done)))


def _delete(run: _Run, rule: DeleteInactiveCustomers, cutoff: dt.datetime) -> RuleOutcome:
    now = run.context.now()

    def delete(uow: UnitOfWork, number: CrmNumber) -> None:
        uow.customers.erase(number)
        uow.add_event(CustomerErased(at=now, customer=number))
        run.context.audit(uow, AuditAction.ERASE, AuditEntity.CUSTOMER, number)

    done = _each_inactive_page(run, cutoff, True, delete)
    # A real run's deleted customers are gone; a dry run remembers them for the later rules.
    if run.dry_run:
        run.deleted.update(done)
    return RuleOutcome(rule, cutoff, len(done), tuple(sorted(done)))


def _rules(rules: Iterable[RetentionRule]) -> tuple[RetentionRule, ...]:
    if isinstance(
        rules, BlankInteractionNotes | AnonymiseInactiveCustomers | DeleteInactiveCustomers
    ):
        rules = (rules,)
    out = tuple(rules)
    for index, rule in enumerate(out):
        if not isinstance(
            rule, BlankInteractionNotes | AnonymiseInactiveCustomers | DeleteInactiveCustomers
        ):
            raise ValidationError(f"rules[{index}]", rule, "must be a retention rule")
    return out


class Retention:
    """The retention use case of :class:`~crmcore.Crm` (a mixin: ``Crm`` inherits it; it
    needs its :attr:`context`)."""

    context: ServiceContext

    def apply_retention(
        self,
        rules: Iterable[RetentionRule],
        as_of: dt.datetime | None = None,
        *,
        dry_run: bool = False,
        batch_size: int = DEFAULT_RETENTION_BATCH,
    ) -> RetentionReport:
        """Apply retention rules (storage limitation), or with ``dry_run`` report what they
        would change and change nothing.

        Rules run in the order given; each counts back from ``as_of`` (default now). See
        :mod:`crmcore.domain.retention` for the rules and what "inactive" means. Each batch
        of ``batch_size`` records is its own unit of work (committed batches stay if a later
        one fails; running again completes the work), and a second run changes nothing.
        Anonymising publishes :class:`~crmcore.events.CustomerUpdated` and deleting
        :class:`~crmcore.events.CustomerErased` per customer. The audit trail gets, in each
        batch's transaction, a ``retention`` entry per customer whose interaction notes were
        blanked (entity ``interaction``, with the count) or who was anonymised (the removed
        field names), and an ``erase`` entry per deleted customer; a dry run writes none.

        Raises:
            AccessDenied: the access policy refused ``retention`` (audited).
            ValidationError: not a rule, a naive ``as_of``, a bad ``batch_size`` (nothing
                is changed).
        """
        chosen = _rules(rules)
        when = self.context.now() if as_of is None else aware_utc("as_of", as_of)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be a positive integer")
        if not isinstance(dry_run, bool):
            raise ValidationError("dry_run", dry_run, "must be True or False")
        cutoffs = [
            rule.older_than.before(when)
            if isinstance(rule, BlankInteractionNotes)
            else rule.inactive_for.before(when)
            for rule in chosen
        ]
        self.context.authorize(AuditAction.RETENTION, AuditEntity.CUSTOMER)
        run = _Run(self.context, dry_run, batch_size)
        outcomes: list[RuleOutcome] = []
        for rule, cutoff in zip(chosen, cutoffs, strict=True):
            if isinstance(rule, BlankInteractionNotes):
                outcomes.append(_blank_notes(run, rule, cutoff))
            elif isinstance(rule, AnonymiseInactiveCustomers):
                outcomes.append(_anonymise(run, rule, cutoff))
            else:
                outcomes.append(_delete(run, rule, cutoff))
        return RetentionReport(when, dry_run, tuple(outcomes))
