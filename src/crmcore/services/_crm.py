"""The use cases, behind one small facade a host creates with a store.

Each public method of :class:`Crm` is one use case: it opens a unit of work, does its reads
and writes, commits, and then publishes the domain events the unit collected. A use case that
fails (bad input, a conflict, a missing customer) commits nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import attrs

from crmcore.clock import SystemClock
from crmcore.domain import (
    AttributeValue,
    Consent,
    CrmNumber,
    Customer,
    CustomerAggregate,
    CustomerErased,
    CustomerRegistered,
    CustomersMerged,
    CustomerUpdated,
    DomainEvent,
    EmailAddress,
    Gender,
    Interaction,
    InteractionChannel,
    InteractionRecorded,
    LifecycleStage,
    PersonName,
    PhoneNumber,
    PostalAddress,
    StageChange,
    StageChanged,
    Transaction,
    TransactionRecorded,
)
from crmcore.domain._checks import aware_utc, member
from crmcore.domain.contact import normalize_phone, phone_numbers
from crmcore.errors import (
    CurrencyConversionError,
    DuplicateError,
    EventDeliveryError,
    NotFound,
    ValidationError,
)
from crmcore.ports import Clock, CurrencyConverter, Store, UnitOfWork

__all__ = ["BulkResult", "Crm", "Customer360", "RecordResult"]

EventHandler = Callable[[DomainEvent], None]
_T = TypeVar("_T")
_R = TypeVar("_R", Interaction, Transaction)


def _iterable(value: object) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes)


def _union(first: tuple[_T, ...], second: tuple[_T, ...]) -> tuple[_T, ...]:
    """``first`` followed by the items of ``second`` it lacks, order kept."""
    return first + tuple(item for item in second if item not in first)


@attrs.frozen
class RecordResult(Generic[_R]):
    """What recording a transaction or interaction did.

    Attributes:
        record: the stored record (the earlier one, if it was already recorded).
        created: ``False`` when ``(source, external_ref)`` had been recorded before and
            nothing was written.
    """

    record: _R
    created: bool


@attrs.frozen
class BulkResult:
    """Counts from a bulk recording call."""

    created: int
    already_recorded: int


@attrs.frozen
class Customer360:
    """Everything about one customer on one screen."""

    customer: Customer
    aggregate: CustomerAggregate
    recent_interactions: tuple[Interaction, ...]
    recent_transactions: tuple[Transaction, ...]
    open_follow_ups: tuple[Interaction, ...]


class Crm:
    """The crmcore application facade.

    Example::

        from crmcore import Crm, InMemoryStore

        crm = Crm(InMemoryStore(reporting_currency="EUR"))
        ann = crm.register("Ann Lee", emails=["ann@example.com"])

    Args:
        store: where customers live (:class:`~crmcore.InMemoryStore`, ``SqlStore``, ...).
        clock: source of "now" (default: the system clock, UTC).
        converter: converts foreign-currency transactions into the store's reporting
            currency; without one, such transactions are rejected.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        converter: CurrencyConverter | None = None,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.converter = converter
        self._handlers: list[EventHandler] = []

    def __repr__(self) -> str:
        return f"Crm(store={self.store!r}, clock={self.clock!r})"

    # -- events ------------------------------------------------------------------------------

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Call ``handler(event)`` for every event of every committed use case.

        Handlers run synchronously after the commit, outside the unit of work, in
        subscription order; every handler sees every event even if another one raised. If any
        handler raised, the use case then raises :class:`~crmcore.errors.EventDeliveryError`
        (its ``__cause__`` is the first handler error): the change itself **was committed**,
        do not retry it. Returns a function that unsubscribes the handler (idempotent).
        """
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def _publish(self, events: Iterable[DomainEvent]) -> None:
        failures: list[BaseException] = []
        for event in events:
            for handler in list(self._handlers):
                try:
                    handler(event)
                except Exception as exc:
                    failures.append(exc)
        if failures:
            raise EventDeliveryError(len(failures)) from failures[0]

    @contextmanager
    def _unit(self) -> Iterator[UnitOfWork]:
        """A use case's unit of work: commit on success, then publish its events.

        Events are published after the unit is closed, so a handler may use this facade
        (look the customer up) and a failing handler cannot undo or hide the commit.
        """
        with self.store.unit_of_work() as uow:
            yield uow
            uow.commit()
            events = uow.collect_events()
        self._publish(events)

    def _number(self, number: CrmNumber | str) -> CrmNumber:
        if isinstance(number, CrmNumber):
            return number
        return self.store.scheme.parse(number)

    def _now(self) -> dt.datetime:
        return aware_utc("clock.now()", self.clock.now())

    # -- registry ----------------------------------------------------------------------------

    def register(
        self,
        name: PersonName | str,
        *,
        emails: Iterable[EmailAddress | str] = (),
        phones: Iterable[PhoneNumber | str] = (),
        phone_region: str | None = None,
        addresses: Iterable[PostalAddress] = (),
        gender: Gender | str | None = None,
        birth_date: dt.date | None = None,
        title: str | None = None,
        job_title: str | None = None,
        organisation: str | None = None,
        preferred_channel: InteractionChannel | str | None = None,
        tags: Iterable[str] = (),
        attributes: Mapping[str, AttributeValue] | None = None,
        consents: Iterable[Consent] = (),
        owner: str | None = None,
        stage: LifecycleStage | str = LifecycleStage.LEAD,
        source: str | None = None,
        external_id: str | None = None,
    ) -> Customer:
        """Register a new customer and allocate its CRM number.

        ``name`` is a :class:`PersonName` or display text. Phone numbers without a ``+``
        are read as national numbers of ``phone_region``.

        Raises:
            ValidationError: any invalid argument (nothing is stored, no number is used).
            DuplicateError: ``(source, external_id)`` is already registered.
        """
        now = self._now()
        person = name if isinstance(name, PersonName) else PersonName(display=name)
        scheme = self.store.scheme
        # The raw arguments go to the Customer's own converters, which reject a bare string
        # for a collection and report the field, instead of being coerced here first.
        fields: dict[str, Any] = {
            "emails": emails,
            "phones": phone_numbers(phones, phone_region) if _iterable(phones) else phones,
            "addresses": addresses,
            "gender": gender,
            "birth_date": birth_date,
            "title": title,
            "job_title": job_title,
            "organisation": organisation,
            "preferred_channel": preferred_channel,
            "tags": tags,
            "attributes": {} if attributes is None else attributes,
            "consents": consents,
            "owner": owner,
            "stage": stage,
            "source": source,
            "external_id": external_id,
        }
        # Validate everything with a placeholder number first, so bad input uses no number.
        draft = Customer(
            number=CrmNumber(f"{scheme.prefix}{'0' * (scheme.width + 1)}"),
            name=person,
            created_at=now,
            updated_at=now,
            **fields,
        )
        with self._unit() as uow:
            if draft.source is not None and draft.external_id is not None:
                existing = uow.customers.find_by_external_id(draft.source, draft.external_id)
                if existing is not None:
                    raise DuplicateError("external id", f"{draft.source}/{draft.external_id}")
            draft = attrs.evolve(draft, number=scheme.format(self.store.allocator.allocate()))
            uow.customers.add(draft)
            uow.add_event(CustomerRegistered(at=now, customer=draft.number))
        return draft

    def get(self, number: CrmNumber | str) -> Customer:
        """The customer with this number (text is parsed and check-digit verified).

        Raises:
            ValidationError: malformed number text.
            NotFound: no such customer (``ErasedError`` if it was erased).
        """
        key = self._number(number)
        with self.store.unit_of_work() as uow:
            return uow.customers.get(key)

    def update(self, customer: Customer) -> Customer:
        """Store the changes made to ``customer`` (loaded earlier with :meth:`get`).

        ``updated_at`` is set to now and ``customer.version`` is incremented in place.

        Raises:
            ConcurrencyError: someone else updated the customer since it was loaded.
        """
        if not isinstance(customer, Customer):
            raise ValidationError("customer", customer, "must be a Customer")
        now = self._now()
        previous = (customer.updated_at, customer.version)
        customer.updated_at = max(now, customer.created_at)
        committed = False
        try:
            with self.store.unit_of_work() as uow:
                uow.customers.update(customer)
                uow.add_event(
                    CustomerUpdated(at=now, customer=customer.number, version=customer.version)
                )
                uow.commit()
                committed = True
                events = uow.collect_events()
        except BaseException:
            if not committed:
                # Nothing was stored: give the caller back the object as it was, so a retry
                # after reloading (or fixing the input) is not refused as stale.
                customer.updated_at, customer.version = previous
            raise
        self._publish(events)
        return customer

    def change_stage(
        self, number: CrmNumber | str, to_stage: LifecycleStage | str, reason: str = ""
    ) -> StageChange:
        """Move a customer to another lifecycle stage, recording why.

        Raises:
            InvalidTransition: the transition table does not allow it.
        """
        key = self._number(number)
        now = self._now()
        with self._unit() as uow:
            customer = uow.customers.get(key)
            change = customer.change_stage(
                member("to_stage", LifecycleStage, to_stage), now, reason
            )
            customer.updated_at = max(now, customer.created_at)
            uow.customers.update(customer)
            uow.add_event(
                StageChanged(
                    at=now,
                    customer=key,
                    from_stage=change.from_stage,
                    to_stage=change.to_stage,
                    reason=change.reason,
                )
            )
        return change

    def record_consent(self, number: CrmNumber | str, consent: Consent) -> Customer:
        """Append a consent decision (grant or withdrawal) to the customer's record."""
        key = self._number(number)
        now = self._now()
        with self._unit() as uow:
            customer = uow.customers.get(key)
            customer.record_consent(consent)
            customer.updated_at = max(now, customer.created_at)
            uow.customers.update(customer)
            uow.add_event(CustomerUpdated(at=now, customer=key, version=customer.version))
        return customer

    def erase(self, number: CrmNumber | str) -> None:
        """Erase a customer (right to erasure): profile, history, aggregates, memberships.

        Only a tombstone of the CRM number stays, so the number is never reused and a lookup
        says "erased" rather than "never existed".
        """
        key = self._number(number)
        with self._unit() as uow:
            uow.customers.erase(key)
            uow.add_event(CustomerErased(at=self._now(), customer=key))

    def merge(self, survivor: CrmNumber | str, duplicate: CrmNumber | str) -> Customer:
        """Merge ``duplicate`` into ``survivor`` (the same person registered twice).

        The survivor keeps its number, name and stage; it gains the duplicate's e-mail
        addresses, phone numbers, postal addresses, tags, consents and custom attributes it
        does not have, and all of its interactions and transactions (with their ids and
        external references, so re-ingesting them stays a no-op), and its
        ``(source, external_id)`` when the survivor has none (a survivor keeps only one
        import key, so otherwise the duplicate's key is dropped). E-mail addresses are
        compared by lookup key. The duplicate's number is retired like an erased one. All in
        one unit of work.

        Raises:
            ValidationError: both numbers are the same.
            NotFound: either customer does not exist.
        """
        keep, drop = self._number(survivor), self._number(duplicate)
        if keep == drop:
            raise ValidationError("duplicate", drop.value, "cannot merge a customer into itself")
        now = self._now()
        with self._unit() as uow:
            target = uow.customers.get(keep)
            source = uow.customers.get(drop)
            interactions = uow.interactions.for_customer(drop)
            transactions = uow.transactions.for_customer(drop)
            known = {e.lookup_key for e in target.emails}
            target.emails = target.emails + tuple(
                e for e in source.emails if e.lookup_key not in known
            )
            target.phones = _union(target.phones, source.phones)
            target.addresses = _union(target.addresses, source.addresses)
            target.consents = tuple(
                sorted(_union(target.consents, source.consents), key=lambda c: c.at)
            )
            target.tags = target.tags | source.tags
            target.attributes = {**source.attributes, **target.attributes}
            target.updated_at = max(now, target.created_at)
            carry_external_id = target.external_id is None and source.external_id is not None
            uow.customers.erase(drop)
            if carry_external_id:
                # The duplicate's import key now finds the survivor, so the next import from
                # that source updates it instead of registering the duplicate again.
                target.source, target.external_id = source.source, source.external_id
            uow.customers.update(target)
            uow.interactions.add_many(
                [attrs.evolve(i, customer=keep) for i in reversed(interactions)]
            )
            uow.transactions.add_many(
                [attrs.evolve(t, customer=keep) for t in reversed(transactions)]
            )
            uow.add_event(CustomersMerged(at=now, survivor=keep, merged=drop))
        return target

    # -- lookups -----------------------------------------------------------------------------

    def find_by_number(self, text: str) -> Customer | None:
        """The customer whose number is ``text``, or ``None`` (bad check digit raises)."""
        key = self._number(text)
        with self.store.unit_of_work() as uow:
            return uow.customers.find(key)

    def find_by_email(self, email: str) -> list[Customer]:
        """Customers with this e-mail address (compared in normalised form)."""
        with self.store.unit_of_work() as uow:
            return list(uow.customers.find_by_email(email))

    def find_by_phone(self, phone: str, region: str | None = None) -> list[Customer]:
        """Customers with this phone number (national numbers read relative to ``region``)."""
        e164 = normalize_phone(phone, region)
        with self.store.unit_of_work() as uow:
            return list(uow.customers.find_by_phone(e164))

    def find_by_external_id(self, source: str, external_id: str) -> Customer | None:
        with self.store.unit_of_work() as uow:
            return uow.customers.find_by_external_id(source, external_id)

    def customer_360(self, number: CrmNumber | str, *, recent: int = 10) -> Customer360:
        """Profile, running totals, recent history and open follow-ups of one customer."""
        if isinstance(recent, bool) or not isinstance(recent, int) or recent < 0:
            raise ValidationError("recent", recent, "must be a non-negative integer")
        key = self._number(number)
        now = self._now()
        with self.store.unit_of_work() as uow:
            customer = uow.customers.get(key)
            interactions = uow.interactions.for_customer(key)
            return Customer360(
                customer=customer,
                aggregate=uow.aggregates.get(key),
                recent_interactions=tuple(interactions[:recent]),
                recent_transactions=tuple(uow.transactions.for_customer(key, limit=recent)),
                open_follow_ups=tuple(
                    i
                    for i in interactions
                    if i.follow_up_due is not None and i.follow_up_due >= now
                ),
            )

    # -- history -----------------------------------------------------------------------------

    def record_interaction(self, interaction: Interaction) -> RecordResult[Interaction]:
        """Record an interaction; idempotent on ``(source, external_ref)``.

        Raises:
            NotFound: the customer does not exist.
        """
        if not isinstance(interaction, Interaction):
            raise ValidationError("interaction", interaction, "must be an Interaction")
        with self._unit() as uow:
            if interaction.source is not None and interaction.external_ref is not None:
                earlier = uow.interactions.find_by_external_ref(
                    interaction.source, interaction.external_ref
                )
                if earlier is not None:
                    return RecordResult(earlier, created=False)
            created = uow.interactions.add(interaction)
            if created:
                uow.add_event(
                    InteractionRecorded(
                        at=self._now(), customer=interaction.customer, interaction_id=interaction.id
                    )
                )
        if not created:
            return self._earlier_interaction(interaction)
        return RecordResult(interaction, created=True)

    def _earlier_interaction(self, interaction: Interaction) -> RecordResult[Interaction]:
        assert interaction.source is not None and interaction.external_ref is not None
        with self.store.unit_of_work() as uow:
            earlier = uow.interactions.find_by_external_ref(
                interaction.source, interaction.external_ref
            )
        if earlier is None:  # pragma: no cover - only if erased between the two reads
            raise NotFound("interaction", f"{interaction.source}/{interaction.external_ref}")
        return RecordResult(earlier, created=False)

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

    def record_transaction(self, transaction: Transaction) -> RecordResult[Transaction]:
        """Record a purchase or refund; idempotent on ``(source, external_ref)``.

        Recording the same ``(source, external_ref)`` again (an ERP sync retried) stores
        nothing and returns the earlier record with ``created=False``.

        Raises:
            NotFound: the customer does not exist.
            CurrencyConversionError: foreign currency without a converter.
        """
        if not isinstance(transaction, Transaction):
            raise ValidationError("transaction", transaction, "must be a Transaction")
        tx = self.with_reporting_total(transaction)
        with self._unit() as uow:
            if tx.source is not None and tx.external_ref is not None:
                earlier = uow.transactions.find_by_external_ref(tx.source, tx.external_ref)
                if earlier is not None:
                    return RecordResult(earlier, created=False)
            created = uow.transactions.add(tx)
            if created:
                uow.add_event(
                    TransactionRecorded(
                        at=self._now(), customer=tx.customer, transaction_id=tx.id, kind=tx.kind
                    )
                )
        if not created:
            assert tx.source is not None and tx.external_ref is not None
            with self.store.unit_of_work() as uow:
                earlier = uow.transactions.find_by_external_ref(tx.source, tx.external_ref)
            if earlier is None:  # pragma: no cover - only if erased between the two units
                raise NotFound("transaction", f"{tx.source}/{tx.external_ref}")
            return RecordResult(earlier, created=False)
        return RecordResult(tx, created=True)

    def record_transactions(self, transactions: Iterable[Transaction]) -> BulkResult:
        """Record many transactions in one unit of work (all or nothing), in bulk.

        Already-recorded ``(source, external_ref)`` pairs are skipped and counted. Bulk
        recording publishes no per-transaction events: a host that chose bulk ingest for a
        million rows rarely wants a million events; use :meth:`record_transaction` for that.
        """
        prepared = []
        for index, item in enumerate(transactions):
            if not isinstance(item, Transaction):
                raise ValidationError(f"transactions[{index}]", item, "must be a Transaction")
            prepared.append(self.with_reporting_total(item))
        with self._unit() as uow:
            created = uow.transactions.add_many(prepared)
        return BulkResult(created=created, already_recorded=len(prepared) - created)
