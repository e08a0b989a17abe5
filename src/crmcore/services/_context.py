"""What every use case needs: the store, "now", the unit of work and event delivery.

:class:`~crmcore.Crm` and :class:`~crmcore.services.Analytics` share one
:class:`ServiceContext`, so the analytics use cases open units of work, read the clock and
publish events exactly as the registry and history use cases do, without reaching into each
other's members.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from types import TracebackType

import attrs

from crmcore.clock import SystemClock
from crmcore.domain import CrmNumber, DomainEvent, StageChange, StageChanged, Transaction
from crmcore.domain._checks import aware_utc
from crmcore.errors import CurrencyConversionError, EventDeliveryError
from crmcore.ports import Clock, CurrencyConverter, Store, UnitOfWork

__all__ = ["EventHandler", "ServiceContext", "stage_changed"]

EventHandler = Callable[[DomainEvent], None]


class ServiceContext:
    """The store a set of use cases works on, with its clock, converter and subscribers.

    Args:
        store: where customers live.
        clock: source of "now" (default: the system clock, UTC).
        converter: foreign-currency converter for transactions (``None``: none).
    """

    __slots__ = ("_handlers", "clock", "converter", "store")

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        converter: CurrencyConverter | None = None,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.converter = converter
        self._handlers: list[EventHandler] = []

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

    def reading(self) -> UnitOfWork:
        """A unit of work for reads only (nothing is committed, no events are published)."""
        return self.store.unit_of_work()

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
