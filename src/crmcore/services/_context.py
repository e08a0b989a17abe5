"""What every use case needs: the store, "now", the unit of work and event delivery.

:class:`~crmcore.Crm` and :class:`~crmcore.services.Analytics` share one
:class:`ServiceContext`, so the analytics use cases open units of work, read the clock and
publish events exactly as the registry and history use cases do, without reaching into each
other's members.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType

import attrs

from crmcore.clock import SystemClock
from crmcore.domain import (
    DEFAULT_ACTOR,
    AuditAction,
    AuditEntity,
    AuditEntry,
    AuditOutcome,
    CrmNumber,
    Customer,
    DomainEvent,
    StageChange,
    StageChanged,
    Transaction,
    check_actor,
)
from crmcore.domain._checks import aware_utc
from crmcore.domain.access import AccessPolicy, Decision, Masker, allow_all, mask_customer
from crmcore.errors import (
    AccessDenied,
    ConfigurationError,
    CurrencyConversionError,
    EventDeliveryError,
)
from crmcore.ports import Clock, CurrencyConverter, Store, UnitOfWork

__all__ = ["EventHandler", "ServiceContext", "stage_changed"]

EventHandler = Callable[[DomainEvent], None]

_CONTEXTS = itertools.count()


class ServiceContext:
    """The store a set of use cases works on, with its clock, converter and subscribers.

    Args:
        store: where customers live.
        clock: source of "now" (default: the system clock, UTC).
        converter: foreign-currency converter for transactions (``None``: none).
        actor: who the use cases run for unless :meth:`acting_as` says otherwise (an actor
            id such as ``"user:42"``; default ``"system"``).
        policy: the host's access policy (default: allow everything).
        masker: how a policy's :attr:`~crmcore.domain.access.Decision.MASK` shows a
            customer (default :func:`~crmcore.domain.access.mask_customer`).

    Raises:
        ValidationError: ``actor`` is not an actor id.
    """

    __slots__ = ("_actor", "_handlers", "clock", "converter", "masker", "policy", "store")

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        converter: CurrencyConverter | None = None,
        *,
        actor: str = DEFAULT_ACTOR,
        policy: AccessPolicy | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.converter = converter
        self._handlers: list[EventHandler] = []
        # One variable per context, so two Crm facades in one thread keep their own actors;
        # a ContextVar so a thread or an asyncio task sees only the actor it set itself.
        default_actor = check_actor("actor", actor)
        self._actor: contextvars.ContextVar[str] = contextvars.ContextVar(
            f"crmcore_actor_{next(_CONTEXTS)}", default=default_actor
        )
        self.policy: AccessPolicy = allow_all if policy is None else policy
        self.masker: Masker = mask_customer if masker is None else masker

    # -- actor, policy, audit ------------------------------------------------------------------

    @property
    def actor(self) -> str:
        """Who the current use case runs for (this thread's or task's :meth:`acting_as`)."""
        return self._actor.get()

    @contextlib.contextmanager
    def acting_as(self, actor: str) -> Iterator[str]:
        """Run the use cases inside the ``with`` block for ``actor``; nests, and is local
        to the thread or asyncio task that entered it.

        Raises:
            ValidationError: ``actor`` is not an actor id.
        """
        token = self._actor.set(check_actor("actor", actor))
        try:
            yield self._actor.get()
        finally:
            self._actor.reset(token)

    def decide(self, action: AuditAction, number: CrmNumber | None) -> Decision:
        """The access policy's decision for the current actor.

        Raises:
            ConfigurationError: the policy returned something other than a Decision.
        """
        decision = self.policy(self.actor, action, number)
        if not isinstance(decision, Decision):
            raise ConfigurationError(
                f"the access policy must return a Decision, got {type(decision).__name__}"
            )
        return decision

    def authorize(
        self, action: AuditAction, entity: AuditEntity, number: CrmNumber | None = None
    ) -> Decision:
        """Ask the policy about a use case before it starts; refuse it if denied.

        A refusal is audited in a unit of its own (committed) before
        :class:`~crmcore.errors.AccessDenied` is raised.

        Raises:
            AccessDenied: the policy said :attr:`~crmcore.domain.access.Decision.DENY`.
        """
        decision = self.decide(action, number)
        if decision is Decision.DENY:
            with self.unit() as uow:
                self.audit(uow, action, entity, number, outcome=AuditOutcome.DENIED)
            raise AccessDenied(self.actor, action.value)
        return decision

    def entry(
        self,
        action: AuditAction,
        entity: AuditEntity,
        number: CrmNumber | None = None,
        *,
        fields: Collection[str] = (),
        outcome: AuditOutcome = AuditOutcome.ALLOWED,
        rows: int | None = None,
    ) -> AuditEntry:
        """An audit entry of the current actor, now."""
        return AuditEntry(
            id=uuid.uuid4(),
            at=self.now(),
            actor=self.actor,
            action=action,
            entity=entity,
            customer=number,
            fields=tuple(fields),
            outcome=outcome,
            rows=rows,
        )

    def audit(
        self,
        uow: UnitOfWork,
        action: AuditAction,
        entity: AuditEntity,
        number: CrmNumber | None = None,
        *,
        fields: Collection[str] = (),
        outcome: AuditOutcome = AuditOutcome.ALLOWED,
        rows: int | None = None,
    ) -> None:
        """Append an audit entry to ``uow`` (it commits, or vanishes, with the use case)."""
        uow.audit.append(
            self.entry(action, entity, number, fields=fields, outcome=outcome, rows=rows)
        )

    def shown(self, customer: Customer, decision: Decision) -> Customer:
        """``customer`` as the decision lets the actor see it (masked, or as it is).

        Raises:
            ConfigurationError: the masker returned a customer not marked ``masked``.
        """
        if decision is not Decision.MASK:
            return customer
        view = self.masker(customer)
        if not isinstance(view, Customer) or not view.masked:
            raise ConfigurationError(
                "the masker must return a Customer with masked=True (use attrs.evolve(..., "
                "masked=True))"
            )
        return view

    def __repr__(self) -> str:
        return f"ServiceContext(store={self.store!r}, clock={self.clock!r})"

    def now(self) -> dt.datetime:
        """The clock's current instant (refused if the clock returns a naive one)."""
        return aware_utc("clock.now()", self.clock.now())

    def number(self, number: CrmNumber | str) -> CrmNumber:
        """A CRM number, parsing (and check-digit verifying) text with the store's scheme."""
        if isinstance(number, CrmNumber):
            return number
        return self.store.scheme.parse(number)

    def reading(self) -> AbstractContextManager[UnitOfWork]:
        """A unit of work for reads: committed on success (so an audit entry the read
        appended is stored in the same transaction as the read), rolled back on failure.

        Committing a transaction that only read costs what the rollback it replaces cost,
        so a read that appends no entry (a count, a segment definition) pays nothing extra.
        """
        return _Unit(self)

    def unit(self) -> AbstractContextManager[UnitOfWork]:
        """A use case's unit of work: commit on success, then publish its events.

        Events are published after the unit is closed, so a handler may call the services
        again (look the customer up) and a failing handler cannot undo or hide the commit.
        """
        return _Unit(self)

    def with_reporting_total(self, transaction: Transaction) -> Transaction:
        """Return ``transaction`` with ``reporting_total`` in the store's reporting currency.

        Raises:
            CurrencyConversionError: a foreign currency and no converter.
        """
        target = self.store.reporting_currency
        if transaction.reporting_total is not None:
            if transaction.reporting_total.currency != target:
                raise CurrencyConversionError(
                    "reporting_total.currency",
                    transaction.reporting_total.currency,
                    f"must be the store's reporting currency {target}",
                )
            return transaction
        if transaction.total.currency == target:
            return attrs.evolve(transaction, reporting_total=transaction.total)
        if self.converter is None:
            raise CurrencyConversionError(
                "total.currency",
                transaction.total.currency,
                f"differs from the reporting currency {target} and no converter is configured",
            )
        converted = self.converter.convert(transaction.total, target, transaction.occurred_at)
        if converted.currency != target:
            raise CurrencyConversionError(
                "total.currency", converted.currency, f"converter did not return {target}"
            )
        return attrs.evolve(transaction, reporting_total=converted)

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Add an event handler; return a function that removes it (idempotent)."""
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def publish(self, events: Iterable[DomainEvent]) -> None:
        """Deliver committed events to every handler, in subscription order.

        Every handler sees every event even if another raised.

        Raises:
            EventDeliveryError: a handler raised (``__cause__`` is the first error).
        """
        failures: list[BaseException] = []
        for event in events:
            for handler in list(self._handlers):
                try:
                    handler(event)
                except Exception as exc:
                    failures.append(exc)
        if failures:
            raise EventDeliveryError(len(failures)) from failures[0]


class _Unit:
    """The context manager of :meth:`ServiceContext.unit` (a class rather than a generator:
    entering and leaving it is part of every recorded event's cost)."""

    __slots__ = ("_context", "_uow")

    def __init__(self, context: ServiceContext) -> None:
        self._context = context
        self._uow: UnitOfWork | None = None

    def __enter__(self) -> UnitOfWork:
        uow = self._context.store.unit_of_work()
        self._uow = uow.__enter__()
        return self._uow

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        uow = self._uow
        assert uow is not None  # entered
        if exc_type is not None:
            uow.__exit__(exc_type, exc, tb)  # rolls back; the exception propagates
            return
        try:
            uow.commit()
            events = uow.collect_events()
        except BaseException as error:
            uow.__exit__(type(error), error, error.__traceback__)
            raise
        uow.__exit__(None, None, None)
        self._context.publish(events)


def stage_changed(number: CrmNumber, change: StageChange, at: dt.datetime) -> StageChanged:
    """The event announcing one lifecycle change (the only place one is built)."""
    return StageChanged(
        at=at,
        customer=number,
        from_stage=change.from_stage,
        to_stage=change.to_stage,
        reason=change.reason,
    )
