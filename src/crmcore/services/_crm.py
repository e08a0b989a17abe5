"""The registry and history use cases, behind one small facade a host creates with a store.

Each public method of :class:`Crm` is one use case: it opens a unit of work, does its reads
and writes, commits, and then publishes the domain events the unit collected. A use case that
fails (bad input, a conflict, a missing customer) commits nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypedDict, TypeVar, Unpack

import attrs

from crmcore.domain import (
    AttributeValue,
    AuditAction,
    AuditEntity,
    Consent,
    CrmNumber,
    Customer,
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
    Transaction,
    TransactionRecorded,
)
from crmcore.domain._checks import lookup_key, member
from crmcore.domain.access import AccessPolicy, Decision, Masker
from crmcore.domain.audit import DEFAULT_ACTOR
from crmcore.domain.contact import normalize_phone, phone_numbers
from crmcore.errors import (
    DuplicateError,
    NotFound,
    ValidationError,
)
from crmcore.ports import Clock, CurrencyConverter, HistoryRepository, Store, UnitOfWork
from crmcore.services._audit import AuditTrail
from crmcore.services._consents import Consents, record_of
from crmcore.services._context import EventHandler, ServiceContext, stage_changed
from crmcore.services._imports import BulkImports
from crmcore.services._results import (
    BulkResult,
    Customer360,
    RecordResult,
    Registration,
    register_drafts,
)
from crmcore.services._retention import Retention
from crmcore.services._subject import SubjectAccess

__all__ = ["Crm", "CustomerFields"]

_MOST_RECENT: Final = 2**31 - 1  # the largest ``recent`` of customer_360 (larger: clamped)
_CUSTOMER: Final = AuditEntity.CUSTOMER
_UNCHANGED: Final = frozenset({"number", "updated_at", "version", "masked"})
_T = TypeVar("_T")
_R = TypeVar("_R", Interaction, Transaction)


class CustomerFields(TypedDict, total=False):
    """The optional keyword arguments of :meth:`Crm.register` and :meth:`Crm.new_customer`."""

    emails: Iterable[EmailAddress | str]
    phones: Iterable[PhoneNumber | str]
    phone_region: str | None
    addresses: Iterable[PostalAddress]
    gender: Gender | str | None
    birth_date: dt.date | None
    title: str | None
    job_title: str | None
    organisation: str | None
    preferred_channel: InteractionChannel | str | None
    tags: Iterable[str]
    attributes: Mapping[str, AttributeValue] | None
    consents: Iterable[Consent]
    owner: str | None
    stage: LifecycleStage | str
    source: str | None
    external_id: str | None


def _consents(value: object) -> list[Consent]:
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        raise ValidationError("consents", value, "must be a collection of Consent")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, Consent):
            raise ValidationError(f"consents[{index}]", item, "must be a Consent")
        out.append(item)
    return out


def _iterable(value: object) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes)


def _union(first: tuple[_T, ...], second: tuple[_T, ...]) -> tuple[_T, ...]:
    """``first`` followed by the items of ``second`` it lacks, order kept."""
    return first + tuple(item for item in second if item not in first)


def _changed(stored: Customer | None, customer: Customer) -> tuple[str, ...]:
    """Names of the fields ``customer`` changed relative to ``stored`` (never their values)."""
    if stored is None:
        return ()
    return tuple(
        a.name
        for a in attrs.fields(Customer)
        if a.name not in _UNCHANGED and getattr(stored, a.name) != getattr(customer, a.name)
    )


def _masked_interaction(interaction: Interaction) -> Interaction:
    """An interaction of a masked 360 view: what was said (subject, notes, outcome) dropped,
    when, how and by which agent kept."""
    return attrs.evolve(interaction, subject=None, notes=None, outcome=None)


def _interactions(uow: UnitOfWork) -> HistoryRepository[Interaction]:
    return uow.interactions


def _transactions(uow: UnitOfWork) -> HistoryRepository[Transaction]:
    return uow.transactions


def _interaction_recorded(item: Interaction, at: dt.datetime) -> DomainEvent:
    return InteractionRecorded(at=at, customer=item.customer, interaction_id=item.id)


def _transaction_recorded(item: Transaction, at: dt.datetime) -> DomainEvent:
    return TransactionRecorded(
        at=at, customer=item.customer, transaction_id=item.id, kind=item.kind
    )


class Crm(Consents, BulkImports, AuditTrail, SubjectAccess, Retention):
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
        actor: who the use cases run for, unless :meth:`acting_as` says otherwise: a short
            pseudonymous id chosen by the host (``"user:42"``, ``"job:nightly-import"``),
            recorded in the audit trail (default ``"system"``).
        policy: the host's access policy, ``(actor, action, number) -> Decision``
            (default: allow everything); see ``docs/privacy-audit.md``.
        masker: how a :attr:`~crmcore.domain.access.Decision.MASK` shows a customer
            (default :func:`~crmcore.domain.access.mask_customer`).

    Raises:
        ValidationError: ``actor`` is not an actor id.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        converter: CurrencyConverter | None = None,
        actor: str = DEFAULT_ACTOR,
        policy: AccessPolicy | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.context = ServiceContext(
            store, clock, converter, actor=actor, policy=policy, masker=masker
        )
        """The store, clock, converter and subscribers shared with :class:`Analytics`."""

    def __repr__(self) -> str:
        return f"Crm(store={self.store!r}, clock={self.clock!r})"

    @property
    def store(self) -> Store:
        """Where customers live."""
        return self.context.store

    @property
    def clock(self) -> Clock:
        """Source of "now"."""
        return self.context.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.context.clock = clock

    @property
    def converter(self) -> CurrencyConverter | None:
        """Foreign-currency converter for transactions (``None``: none)."""
        return self.context.converter

    @converter.setter
    def converter(self, converter: CurrencyConverter | None) -> None:
        self.context.converter = converter

    # -- events ------------------------------------------------------------------------------

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Call ``handler(event)`` for every event of every committed use case.

        Handlers run synchronously after the commit, outside the unit of work, in
        subscription order; every handler sees every event even if another one raised. If any
        handler raised, the use case then raises :class:`~crmcore.errors.EventDeliveryError`
        (its ``__cause__`` is the first handler error): the change itself **was committed**,
        do not retry it. Returns a function that unsubscribes the handler (idempotent).
        """
        return self.context.subscribe(handler)

    # -- registry ----------------------------------------------------------------------------

    def new_customer(
        self,
        name: PersonName | str,
        *,
        registered_at: dt.datetime | None = None,
        **fields: Unpack[CustomerFields],
    ) -> Customer:
        """A validated, not yet registered customer, for :meth:`register_many`.

        Takes the arguments of :meth:`register` plus ``registered_at`` (default now: an
        import from an older system keeps its registration dates). Its CRM number is a
        placeholder (all zeros); registering replaces it. Nothing is stored. Consents are
        not part of a customer: pass ``consents`` to :meth:`register`, or grant them after
        :meth:`register_many`.

        Raises:
            ValidationError: any invalid argument, or ``consents`` given.
        """
        when = self.context.now() if registered_at is None else registered_at
        person = name if isinstance(name, PersonName) else PersonName(display=name)
        scheme = self.store.scheme
        # The raw arguments go to the Customer's own converters, which reject a bare string
        # for a collection and report the field, instead of being coerced here first.
        values: dict[str, Any] = dict(fields)
        if "consents" in values:
            raise ValidationError(
                "consents",
                "...",
                "new_customer() builds no ledger entries; pass consents to register(), or "
                "grant them after register_many()",
            )
        phones = values.pop("phones", ())
        region = values.pop("phone_region", None)
        values["phones"] = phone_numbers(phones, region) if _iterable(phones) else phones
        if values.get("attributes") is None:
            values["attributes"] = {}
        return Customer(
            number=CrmNumber(f"{scheme.prefix}{'0' * (scheme.width + 1)}"),
            name=person,
            created_at=when,
            updated_at=when,
            **values,
        )

    def register(self, name: PersonName | str, **fields: Unpack[CustomerFields]) -> Customer:
        """Register a new customer and allocate its CRM number.

        ``name`` is a :class:`PersonName` or display text; the other arguments (all keyword,
        all optional) are those of :class:`CustomerFields`: ``emails``, ``phones``,
        ``phone_region``, ``addresses``, ``gender``, ``birth_date``, ``title``,
        ``job_title``, ``organisation``, ``preferred_channel``, ``tags``, ``attributes``,
        ``consents``, ``owner``, ``stage``, ``source``, ``external_id``. Phone numbers
        without a ``+`` are read as national numbers of ``phone_region``. Each of
        ``consents`` (:class:`~crmcore.Consent` decisions) becomes an entry of the new
        customer's consent ledger, in the order given, in the same unit of work.

        Raises:
            ValidationError: any invalid argument (nothing is stored, no number is used).
            DuplicateError: ``(source, external_id)`` is already registered.
        """
        values = dict(fields)
        consents = _consents(values.pop("consents", ()))
        # Validate everything with a placeholder number first, so bad input uses no number.
        draft = self.new_customer(name, **values)  # type: ignore[arg-type]  # a CustomerFields
        now = draft.created_at
        self.context.authorize(AuditAction.REGISTER, _CUSTOMER)
        with self.context.unit() as uow:
            if draft.source is not None and draft.external_id is not None:
                existing = uow.customers.find_by_external_id(draft.source, draft.external_id)
                if existing is not None:
                    raise DuplicateError("external id", f"{draft.source}/{draft.external_id}")
            scheme = self.store.scheme
            draft = attrs.evolve(draft, number=scheme.format(self.store.allocator.allocate()))
            uow.customers.add(draft)
            uow.add_event(CustomerRegistered(at=now, customer=draft.number))
            self.context.audit(uow, AuditAction.REGISTER, _CUSTOMER, draft.number)
            if consents:
                actor = self._actor(None)
                self._append(uow, [record_of(c, draft.number, actor) for c in consents])
        return draft

    def register_many(self, customers: Iterable[Customer]) -> Registration:
        """Register many customers in one unit of work (all or nothing); idempotent on
        ``(source, external_id)``.

        Each customer (usually built with :meth:`new_customer`) gets a newly allocated CRM
        number in input order; whatever number it carried is ignored, its other fields
        (registration time, stage and stage history included) are stored as given. A
        customer whose ``(source, external_id)`` is already registered, or appeared earlier
        in the batch, is skipped and counted in
        :attr:`~crmcore.services.Registration.already_registered`, so re-running an import
        registers nobody twice. One :class:`~crmcore.events.CustomerRegistered` event is
        published per new customer.

        Raises:
            ValidationError: an item is not a :class:`~crmcore.Customer` (nothing is stored).
            DuplicateError: a concurrent writer registered one of the keys meanwhile (nothing
                is stored; retrying skips it).
        """
        drafts: list[Customer] = []
        for index, item in enumerate(customers):
            if not isinstance(item, Customer):
                raise ValidationError(f"customers[{index}]", item, "must be a Customer")
            if item.masked:
                raise ValidationError(
                    f"customers[{index}]", item, "is a masked view and cannot be stored"
                )
            drafts.append(item)
        now = self.context.now()
        self.context.authorize(AuditAction.REGISTER_MANY, _CUSTOMER)
        with self.context.unit() as uow:
            done = register_drafts(self.store, uow, drafts)
            for customer in done.registered:
                uow.add_event(CustomerRegistered(at=now, customer=customer.number))
            self.context.audit(uow, AuditAction.REGISTER_MANY, _CUSTOMER, rows=len(done.registered))
        return done

    def get(self, number: CrmNumber | str) -> Customer:
        """The customer with this number (text is parsed and check-digit verified).

        Raises:
            ValidationError: malformed number text.
            NotFound: no such customer (``ErasedError`` if it was erased).
        """
        key = self.context.number(number)
        decision = self.context.authorize(AuditAction.READ, _CUSTOMER, key)
        with self.context.reading() as uow:
            customer = uow.customers.get(key)
            self.context.audit(uow, AuditAction.READ, _CUSTOMER, key, outcome=decision.outcome)
        return self.context.shown(customer, decision)

    def update(self, customer: Customer) -> Customer:
        """Store the changes made to ``customer`` (loaded earlier with :meth:`get`).

        ``updated_at`` is set to now and ``customer.version`` is incremented in place.

        Raises:
            ConcurrencyError: someone else updated the customer since it was loaded.
        """
        if not isinstance(customer, Customer):
            raise ValidationError("customer", customer, "must be a Customer")
        if customer.masked:
            raise ValidationError("customer", customer, "is a masked view and cannot be stored")
        now = self.context.now()
        self.context.authorize(AuditAction.UPDATE, _CUSTOMER, customer.number)
        previous = (customer.updated_at, customer.version)
        customer.updated_at = max(now, customer.created_at)
        committed = False
        try:
            with self.store.unit_of_work() as uow:
                stored = uow.customers.find(customer.number)
                uow.customers.update(customer)
                self.context.audit(
                    uow,
                    AuditAction.UPDATE,
                    _CUSTOMER,
                    customer.number,
                    fields=_changed(stored, customer),
                )
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
        self.context.publish(events)
        return customer

    def change_stage(
        self, number: CrmNumber | str, to_stage: LifecycleStage | str, reason: str = ""
    ) -> StageChange:
        """Move a customer to another lifecycle stage, recording why.

        Raises:
            InvalidTransition: the transition table does not allow it.
        """
        key = self.context.number(number)
        now = self.context.now()
        self.context.authorize(AuditAction.CHANGE_STAGE, _CUSTOMER, key)
        with self.context.unit() as uow:
            customer = uow.customers.get(key)
            change = customer.change_stage(
                member("to_stage", LifecycleStage, to_stage), now, reason
            )
            customer.updated_at = max(now, customer.created_at)
            uow.customers.update(customer)
            uow.add_event(stage_changed(key, change, now))
            self.context.audit(
                uow, AuditAction.CHANGE_STAGE, _CUSTOMER, key, fields=("stage", "stage_history")
            )
        return change

    def erase(self, number: CrmNumber | str) -> None:
        """Erase a customer (right to erasure): profile, history, aggregates, memberships.

        Only a tombstone of the CRM number stays, so the number is never reused and a lookup
        says "erased" rather than "never existed".
        """
        key = self.context.number(number)
        self.context.authorize(AuditAction.ERASE, _CUSTOMER, key)
        with self.context.unit() as uow:
            uow.customers.erase(key)
            uow.add_event(CustomerErased(at=self.context.now(), customer=key))
            self.context.audit(uow, AuditAction.ERASE, _CUSTOMER, key)

    def merge(self, survivor: CrmNumber | str, duplicate: CrmNumber | str) -> Customer:
        """Merge ``duplicate`` into ``survivor`` (the same person registered twice).

        The survivor keeps its number, name and stage; it gains the duplicate's e-mail
        addresses, phone numbers, postal addresses, tags and custom attributes it does not
        have, its consent ledger entries (same ids and instants, appended after the
        survivor's own in the duplicate's history order), all of its interactions and
        transactions (with their ids and
        external references, so re-ingesting them stays a no-op), and its
        ``(source, external_id)`` when the survivor has none (a survivor keeps only one
        import key, so otherwise the duplicate's key is dropped). E-mail addresses are
        compared by lookup key. The duplicate's number is retired like an erased one. All in
        one unit of work.

        Raises:
            ValidationError: both numbers are the same.
            NotFound: either customer does not exist.
        """
        keep, drop = self.context.number(survivor), self.context.number(duplicate)
        if keep == drop:
            raise ValidationError("duplicate", drop.value, "cannot merge a customer into itself")
        now = self.context.now()
        self.context.authorize(AuditAction.MERGE, _CUSTOMER, keep)
        self.context.authorize(AuditAction.MERGE, _CUSTOMER, drop)
        with self.context.unit() as uow:
            # Both rows held before anything is read: a transaction recorded for the
            # duplicate meanwhile is either committed and read below (and moves with the
            # rest) or waits and then finds the duplicate retired; never lost in between.
            uow.customers.lock((keep, drop))
            target = uow.customers.get(keep)
            before = attrs.evolve(target)
            source = uow.customers.get(drop)
            interactions = uow.interactions.for_customer(drop)
            transactions = uow.transactions.for_customer(drop)
            consents = uow.consents.history(drop)
            known = {e.lookup_key for e in target.emails}
            target.emails = target.emails + tuple(
                e for e in source.emails if e.lookup_key not in known
            )
            target.phones = _union(target.phones, source.phones)
            target.addresses = _union(target.addresses, source.addresses)
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
            # Erasing the duplicate removed its ledger; the entries live on, unchanged but
            # for their customer, in the survivor's.
            uow.consents.append_many([attrs.evolve(c, customer=keep) for c in consents])
            uow.add_event(CustomersMerged(at=now, survivor=keep, merged=drop))
            self.context.audit(uow, AuditAction.MERGE, _CUSTOMER, drop)
            self.context.audit(
                uow, AuditAction.MERGE, _CUSTOMER, keep, fields=_changed(before, target)
            )
        return target

    # -- lookups -----------------------------------------------------------------------------

    def find_by_number(self, text: str) -> Customer | None:
        """The customer whose number is ``text``, or ``None`` (bad check digit raises)."""
        key = self.context.number(text)
        decision = self.context.authorize(AuditAction.READ, _CUSTOMER, key)
        with self.context.reading() as uow:
            customer = uow.customers.find(key)
            self.context.audit(uow, AuditAction.READ, _CUSTOMER, key, outcome=decision.outcome)
        return None if customer is None else self.context.shown(customer, decision)

    def find_by_email(self, email: str) -> list[Customer]:
        """Customers with this e-mail address (compared in normalised form)."""
        with self.context.reading() as uow:
            found = self._disclosed(uow, AuditAction.FIND, uow.customers.find_by_email(email))
        return found.result()

    def find_by_phone(self, phone: str, region: str | None = None) -> list[Customer]:
        """Customers with this phone number (national numbers read relative to ``region``)."""
        e164 = normalize_phone(phone, region)
        with self.context.reading() as uow:
            found = self._disclosed(uow, AuditAction.FIND, uow.customers.find_by_phone(e164))
        return found.result()

    def find_by_external_id(self, source: str, external_id: str) -> Customer | None:
        """The customer registered under ``(source, external_id)``, or ``None``.

        Raises:
            ValidationError: either is not text, or not valid Unicode (nothing is queried).
        """
        lookup_key("source", source)
        lookup_key("external_id", external_id)
        with self.context.reading() as uow:
            customer = uow.customers.find_by_external_id(source, external_id)
            found = self._disclosed(uow, AuditAction.READ, [] if customer is None else [customer])
        shown = found.result()
        return shown[0] if shown else None

    def numbers_by_external_id(
        self, source: str, external_ids: Iterable[str]
    ) -> dict[str, CrmNumber]:
        """``external_id -> number`` for those of ``external_ids`` registered under ``source``
        (one query per batch on SQL stores; erased customers are not found)."""
        lookup_key("source", source)
        ids = {lookup_key(f"external_ids[{i}]", e) for i, e in enumerate(external_ids)}
        if not ids:
            return {}
        with self.context.reading() as uow:
            return dict(uow.customers.numbers_by_external_id(source, ids))

    def existing_numbers(self, numbers: Iterable[CrmNumber | str]) -> set[CrmNumber]:
        """Those of ``numbers`` that belong to registered, not erased customers.

        Raises:
            ValidationError: malformed number text.
        """
        keys = {self.context.number(n) for n in numbers}
        if not keys:
            return set()
        with self.context.reading() as uow:
            return set(uow.customers.existing(keys))

    def external_ids(self) -> dict[CrmNumber, str]:
        """``number -> external_id`` of every customer registered with an import key."""
        with self.context.reading() as uow:
            return dict(uow.customers.external_ids())

    def count_customers(self) -> int:
        """How many customers are registered (erased and merged-away ones excluded)."""
        with self.context.reading() as uow:
            return uow.customers.count()

    def customer_360(self, number: CrmNumber | str, *, recent: int = 10) -> Customer360:
        """Profile, running totals, recent history and open follow-ups of one customer.

        ``recent`` caps the interactions and transactions listed (newest first); values
        above ``2**31 - 1`` (more than any customer has, and than a SQL ``LIMIT`` takes) are
        read as ``2**31 - 1``."""
        if isinstance(recent, bool) or not isinstance(recent, int) or recent < 0:
            raise ValidationError("recent", recent, "must be a non-negative integer")
        recent = min(recent, _MOST_RECENT)
        key = self.context.number(number)
        now = self.context.now()
        decision = self.context.authorize(AuditAction.VIEW_360, _CUSTOMER, key)
        with self.context.reading() as uow:
            customer = uow.customers.get(key)
            interactions = uow.interactions.for_customer(key)
            view = Customer360(
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
            self.context.audit(uow, AuditAction.VIEW_360, _CUSTOMER, key, outcome=decision.outcome)
        if decision is not Decision.MASK:
            return view
        return Customer360(
            customer=self.context.shown(customer, decision),
            aggregate=view.aggregate,
            recent_interactions=tuple(_masked_interaction(i) for i in view.recent_interactions),
            recent_transactions=view.recent_transactions,
            open_follow_ups=tuple(_masked_interaction(i) for i in view.open_follow_ups),
        )

    # -- history -----------------------------------------------------------------------------

    def record_interaction(self, interaction: Interaction) -> RecordResult[Interaction]:
        """Record an interaction; idempotent on ``(source, external_ref)``.

        Recording the same ``(source, external_ref)`` again stores nothing and returns the
        earlier record with ``created=False``.

        Raises:
            NotFound: the customer does not exist.
        """
        if not isinstance(interaction, Interaction):
            raise ValidationError("interaction", interaction, "must be an Interaction")
        return self._record(
            interaction,
            _interactions,
            _interaction_recorded,
            AuditAction.RECORD_INTERACTION,
            AuditEntity.INTERACTION,
        )

    def record_interactions(self, interactions: Iterable[Interaction]) -> BulkResult:
        """Record many interactions in one unit of work (all or nothing), in bulk.

        Already-recorded ``(source, external_ref)`` pairs are skipped and counted. Like
        :meth:`record_transactions`, bulk recording publishes no per-row events.

        Raises:
            ValidationError: an item is not an :class:`~crmcore.Interaction`.
            NotFound: a customer does not exist (nothing is stored).
        """
        prepared: list[Interaction] = []
        for index, item in enumerate(interactions):
            if not isinstance(item, Interaction):
                raise ValidationError(f"interactions[{index}]", item, "must be an Interaction")
            prepared.append(item)
        self.context.authorize(AuditAction.RECORD_INTERACTIONS, AuditEntity.INTERACTION)
        with self.context.unit() as uow:
            created = uow.interactions.add_many(prepared)
            self.context.audit(
                uow, AuditAction.RECORD_INTERACTIONS, AuditEntity.INTERACTION, rows=created
            )
        return BulkResult(created=created, already_recorded=len(prepared) - created)

    def with_reporting_total(self, transaction: Transaction) -> Transaction:
        """Return ``transaction`` with ``reporting_total`` in the store's reporting currency.

        Raises:
            CurrencyConversionError: a foreign currency and no converter.
        """
        return self.context.with_reporting_total(transaction)

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
        return self._record(
            tx,
            _transactions,
            _transaction_recorded,
            AuditAction.RECORD_TRANSACTION,
            AuditEntity.TRANSACTION,
        )

    def _record(
        self,
        item: _R,
        repository: Callable[[UnitOfWork], HistoryRepository[_R]],
        recorded: Callable[[_R, dt.datetime], DomainEvent],
        action: AuditAction,
        entity: AuditEntity,
    ) -> RecordResult[_R]:
        """The one path both history kinds are recorded by.

        The repository's ``add`` is the only duplicate check: it stores the record or says
        its ``(source, external_ref)`` is taken (also when a concurrent writer took it first),
        and only then is the earlier record read back.
        """
        self.context.authorize(action, entity, item.customer)
        with self.context.unit() as uow:
            created = repository(uow).add(item)
            if created:
                uow.add_event(recorded(item, self.context.now()))
            # Also when already recorded: the attempt to write is what the trail records.
            self.context.audit(uow, action, entity, item.customer)
        if created:
            return RecordResult(item, created=True)
        assert item.source is not None and item.external_ref is not None
        with self.context.reading() as uow:
            earlier = repository(uow).find_by_external_ref(item.source, item.external_ref)
        if earlier is None:  # pragma: no cover - only if erased between the two units
            raise NotFound(entity.value, f"{item.source}/{item.external_ref}")
        return RecordResult(earlier, created=False)

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
        self.context.authorize(AuditAction.RECORD_TRANSACTIONS, AuditEntity.TRANSACTION)
        with self.context.unit() as uow:
            created = uow.transactions.add_many(prepared)
            self.context.audit(
                uow, AuditAction.RECORD_TRANSACTIONS, AuditEntity.TRANSACTION, rows=created
            )
        return BulkResult(created=created, already_recorded=len(prepared) - created)
