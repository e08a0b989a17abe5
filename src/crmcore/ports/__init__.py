"""Ports: what crmcore needs from storage and from the world, as ``typing.Protocol`` classes.

This module is the prose of the adapter contract; :mod:`crmcore.testing.contract` is its
executable form. Every adapter (in-memory, SQLAlchemy, or a third party's) must behave as
written here, and the contract suite checks that it does.

General rules for every repository:

* Repositories speak domain objects, never rows. What they return is a copy: changing it does
  not change storage until it is written back through the repository.
* Repositories never commit. All writes happen inside a :class:`UnitOfWork` and become visible
  to other units of work only when it commits. A unit of work that exits with an exception, or
  without ``commit()``, leaves storage exactly as it was.
* Uniqueness rules are enforced by every adapter alike: a duplicate CRM number or a duplicate
  ``(source, external_id)`` raises :class:`~crmcore.errors.DuplicateError`; a duplicate
  ``(source, external_ref)`` on a transaction or interaction is not an error but "already
  recorded" (``add`` returns ``False`` and writes nothing).
* Driver exceptions never leak: each is translated into :mod:`crmcore.errors`.
* Timestamps go in and come out timezone-aware, in UTC, equal to what was written (to the
  microsecond).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, TypeVar, runtime_checkable

from crmcore.domain import (
    AuditAction,
    AuditEntry,
    ConsentRecord,
    ConsentState,
    CrmNumber,
    CrmNumberScheme,
    Customer,
    CustomerAggregate,
    DomainEvent,
    Interaction,
    Money,
    Segment,
    SegmentMembership,
    Transaction,
)

if TYPE_CHECKING:
    # Annotation only: ports sit above analytics, and importing it here would load numpy.
    from crmcore.analytics.ports import MetricsSource
    from crmcore.ports.batches import InteractionBatch, TransactionBatch
    from crmcore.ports.customer_batch import CustomerBatch

__all__ = [
    "AggregateRepository",
    "AuditLog",
    "Clock",
    "ConsentLedger",
    "CurrencyConverter",
    "CustomerRepository",
    "HistoryRepository",
    "InteractionRepository",
    "NumberAllocator",
    "RecordT",
    "SegmentRepository",
    "Store",
    "TransactionRepository",
    "UnitOfWork",
]


@runtime_checkable
class Clock(Protocol):
    """Tells the time. Services take "now" from a clock so tests control time."""

    def now(self) -> dt.datetime:
        """Return the current instant, timezone-aware."""
        ...


class CurrencyConverter(Protocol):
    """Converts money into the store's reporting currency. Supplied by the host.

    crmcore ships no exchange rates: which rate applies (the day's, the booking rate, the
    invoice's) is the host's accounting decision. Without a converter, recording a transaction
    in a currency other than the reporting one fails with
    :class:`~crmcore.errors.CurrencyConversionError`.
    """

    def convert(self, amount: Money, to_currency: str, at: dt.datetime) -> Money:
        """Return ``amount`` in ``to_currency`` as of ``at``, rounded to that currency."""
        ...


class NumberAllocator(Protocol):
    """Hands out CRM number sequences.

    Rules: every call returns a sequence never returned before, also under concurrent callers
    in threads or processes, and also after the customer it was given to was erased or merged.
    A sequence taken by a unit of work that rolls back is not returned to the pool (gaps are
    allowed); this is what lets allocation run outside the customer's transaction without
    locking the registry.
    """

    def allocate(self) -> int:
        """Return the next unused sequence (1-based)."""
        ...

    def allocate_many(self, count: int) -> Sequence[int]:
        """Return ``count`` unused sequences at once (for bulk ingest)."""
        ...


class CustomerRepository(Protocol):
    """The customer registry."""

    def add(self, customer: Customer) -> None:
        """Store a new customer.

        Raises:
            DuplicateError: the CRM number, or ``(source, external_id)``, is taken (also by an
                erased customer: numbers are never reused).
        """
        ...

    def add_many(self, customers: Sequence[Customer]) -> None:
        """Store many new customers at once (bulk ingest; one round trip per batch in SQL).

        Raises:
            DuplicateError: any number or ``(source, external_id)`` is taken, or repeated
                within ``customers``. Nothing of the batch is visible after the unit of work
                rolls back.
        """
        ...

    def add_batch(self, batch: CustomerBatch) -> None:
        """Store a validated, numbered column batch of new customers (the customer import's
        path), as :meth:`add_many` stores the same customers, without validating each row
        again where the store can avoid it.

        Raises:
            DuplicateError: as :meth:`add_many` (nothing of the batch stays after the unit of
                work rolls back).
        """
        ...

    def get(self, number: CrmNumber) -> Customer:
        """Return the customer with this number.

        Raises:
            ErasedError: the customer was erased.
            NotFound: no such customer.
        """
        ...

    def find(self, number: CrmNumber) -> Customer | None:
        """Return the customer with this number, or ``None``."""
        ...

    def update(self, customer: Customer) -> None:
        """Write back a changed customer (optimistic concurrency).

        The stored version must equal ``customer.version``; on success the stored version
        becomes ``customer.version + 1`` and ``customer.version`` is incremented to match, so
        the same object can be changed and updated again.

        Raises:
            ConcurrencyError: the stored version differs (someone else updated it first).
            NotFound: no such customer.
            DuplicateError: a changed ``(source, external_id)`` is taken.
        """
        ...

    def lock(self, numbers: Collection[CrmNumber]) -> None:
        """Hold these customers for this unit of work until it ends.

        Afterwards no other unit can update, erase or merge them or record history for them
        before this unit commits or rolls back, and this unit's reads see their latest
        committed state: call it before reading what a change of several records depends
        on (:meth:`~crmcore.Crm.merge` locks both customers before reading the duplicate's
        history). Numbers that do not exist, or were erased, are passed over.
        """
        ...

    def erase(self, number: CrmNumber) -> None:
        """Delete the customer's personal data, keeping only a tombstone of the number.

        Interactions, transactions, aggregates and segment memberships of the customer are
        deleted too. Afterwards :meth:`get` raises :class:`~crmcore.errors.ErasedError` and the
        number is never allocated again.
        """
        ...

    def find_by_email(self, email: str) -> Sequence[Customer]:
        """Customers having this address (compared by ``EmailAddress.lookup_key``: normalised,
        case-insensitive), ascending by number. Invalid text finds nobody."""
        ...

    def find_by_phone(self, e164: str) -> Sequence[Customer]:
        """Customers having this E.164 phone number, by number."""
        ...

    def find_by_external_id(self, source: str, external_id: str) -> Customer | None:
        """The customer imported from ``source`` under ``external_id``, if any."""
        ...

    def numbers_by_external_id(
        self, source: str, external_ids: Collection[str]
    ) -> Mapping[str, CrmNumber]:
        """``external_id -> number`` for those of ``external_ids`` registered under ``source``.

        One call answers a whole import batch (erased customers are not found).
        """
        ...

    def existing(self, numbers: Collection[CrmNumber]) -> set[CrmNumber]:
        """Those of ``numbers`` that belong to existing (registered, not erased) customers."""
        ...

    def existing_texts(self, texts: Collection[str]) -> set[str]:
        """Those of ``texts`` (canonical CRM number text) that are numbers of existing
        customers: :meth:`existing` for the bulk import, which resolves whole columns of
        numbers and builds no number object per row."""
        ...

    def external_ids(self) -> Mapping[CrmNumber, str]:
        """``number -> external_id`` of every existing customer that has an import key."""
        ...

    def count(self) -> int:
        """Number of customers (erased ones excluded)."""
        ...

    def numbers(self) -> Sequence[CrmNumber]:
        """All customer numbers (erased ones excluded), ascending."""
        ...

    def iter_all(self, batch_size: int = 1000) -> Iterator[Customer]:
        """Every customer, ascending by number, fetched in batches."""
        ...

    def inactive(
        self,
        cutoff: dt.datetime,
        *,
        include_anonymised: bool = False,
        after: CrmNumber | None = None,
        limit: int = 1000,
    ) -> Sequence[CrmNumber]:
        """Customers inactive since ``cutoff``, ascending by number: registered before it,
        with no transaction and no interaction that occurred at or after it.

        At most ``limit`` numbers greater than ``after`` (keyset paging: pass the last
        number of one page as the next page's ``after``). Customers with ``anonymised_at``
        set are left out unless ``include_anonymised``; erased customers always are.
        """
        ...


RecordT = TypeVar("RecordT", Interaction, Transaction)


class HistoryRepository(Protocol[RecordT]):
    """What interaction and transaction histories have in common.

    :class:`InteractionRepository` is a ``HistoryRepository[Interaction]`` and
    :class:`TransactionRepository` a ``HistoryRepository[Transaction]``; the services record
    either through this one shape. Parameters are positional-only so each repository keeps
    its own parameter names.
    """

    def add(self, record: RecordT, /) -> bool:
        """Store a record; ``False`` if its ``(source, external_ref)`` was already recorded."""
        ...

    def add_many(self, records: Sequence[RecordT], /) -> int:
        """Store many records; return how many were new."""
        ...

    def get(self, record_id: uuid.UUID, /) -> RecordT:
        """Raises :class:`~crmcore.errors.NotFound` if absent."""
        ...

    def find_by_external_ref(self, source: str, external_ref: str, /) -> RecordT | None:
        """The record stored under ``(source, external_ref)``, if any."""
        ...


class InteractionRepository(Protocol):
    """The history of contacts with customers."""

    def add(self, interaction: Interaction) -> bool:
        """Record an interaction; also updates the customer's aggregate.

        Returns:
            ``True`` if stored; ``False`` if ``(source, external_ref)`` was already recorded
            (nothing is written).

        Raises:
            NotFound: the customer does not exist.
            DuplicateError: the interaction id is taken.
        """
        ...

    def add_many(self, interactions: Sequence[Interaction]) -> int:
        """Record many interactions at once; return how many were new.

        Already-recorded ``(source, external_ref)`` pairs, and repeats of a pair within the
        batch (the first wins), are skipped, exactly as :meth:`add` would.
        """
        ...

    def add_batch(self, batch: InteractionBatch) -> int:
        """Record a validated column batch (the bulk import's path); return how many were new.

        The same rules as :meth:`add_many` (references already stored or repeated in the
        batch are skipped), without a domain object per row where the store can avoid it.

        Raises:
            NotFound: a customer does not exist (nothing of the batch is stored).
        """
        ...

    def get(self, interaction_id: uuid.UUID) -> Interaction:
        """Raises :class:`~crmcore.errors.NotFound` if absent."""
        ...

    def find_by_external_ref(self, source: str, external_ref: str) -> Interaction | None: ...

    def for_customer(
        self, number: CrmNumber, *, limit: int | None = None, before: dt.datetime | None = None
    ) -> Sequence[Interaction]:
        """The customer's interactions, newest first (ties by id), optionally before an instant."""
        ...

    def with_text_before(
        self, cutoff: dt.datetime, *, after: uuid.UUID | None = None, limit: int = 1000
    ) -> Sequence[tuple[uuid.UUID, CrmNumber]]:
        """``(id, customer)`` of interactions that occurred before ``cutoff`` and still have a
        subject or notes, ascending by id: at most ``limit`` ids greater than ``after``
        (keyset paging, as :meth:`CustomerRepository.inactive`)."""
        ...

    def redact(self, ids: Collection[uuid.UUID], fields: Collection[str]) -> int:
        """Remove the free texts ``fields`` (any of ``"subject"``, ``"notes"``,
        ``"outcome"``) of these interactions; return how many interactions changed.

        Unknown ids are passed over; nothing else of an interaction changes (its aggregate
        contribution neither).

        Raises:
            ValidationError: a field that is not one of the three.
        """
        ...


class TransactionRepository(Protocol):
    """Purchases and refunds."""

    def add(self, transaction: Transaction) -> bool:
        """Record a transaction (``reporting_total`` must be set); updates the aggregate.

        Returns:
            ``True`` if stored; ``False`` if ``(source, external_ref)`` was already recorded
            (nothing is written), also when a concurrent unit of work recorded it first.

        Raises:
            NotFound: the customer does not exist.
            DuplicateError: the transaction id is taken.
            ValidationError: ``reporting_total`` is missing.
        """
        ...

    def add_many(self, transactions: Sequence[Transaction]) -> int:
        """Record many transactions at once; return how many were new.

        Already-recorded ``(source, external_ref)`` pairs, and repeats of a pair within the
        batch (the first wins), are skipped, exactly as :meth:`add` would.
        """
        ...

    def add_batch(self, batch: TransactionBatch) -> int:
        """Record a validated column batch (the bulk import's path); return how many were new.

        The same rules as :meth:`add_many` (references already stored or repeated in the
        batch are skipped), without a domain object per row where the store can avoid it.

        Raises:
            NotFound: a customer does not exist (nothing of the batch is stored).
        """
        ...

    def get(self, transaction_id: uuid.UUID) -> Transaction:
        """Raises :class:`~crmcore.errors.NotFound` if absent."""
        ...

    def find_by_external_ref(self, source: str, external_ref: str) -> Transaction | None: ...

    def for_customer(
        self, number: CrmNumber, *, limit: int | None = None, before: dt.datetime | None = None
    ) -> Sequence[Transaction]:
        """The customer's transactions, newest first (ties by id), optionally before an instant."""
        ...

    def redact_line_descriptions(self, number: CrmNumber) -> int:
        """Remove the free-text description of every line of the customer's transactions;
        return how many transactions changed (amounts, SKUs and quantities stay)."""
        ...


class AggregateRepository(Protocol):
    """Per-customer running aggregates (read side; the other repositories keep them current)."""

    def get(self, number: CrmNumber) -> CustomerAggregate:
        """The customer's aggregate; an all-zero one if the customer has no history yet.

        Raises:
            NotFound: the customer does not exist.
        """
        ...


class SegmentRepository(Protocol):
    """Segment definitions and their saved membership runs."""

    def save(self, segment: Segment) -> None:
        """Create or replace a segment definition (by name)."""
        ...

    def get(self, name: str) -> Segment:
        """Raises :class:`~crmcore.errors.NotFound` if absent."""
        ...

    def list(self) -> Sequence[Segment]:
        """All segment definitions, by name."""
        ...

    def delete(self, name: str) -> None:
        """Delete a definition and its membership runs. Raises NotFound if absent."""
        ...

    def save_membership(self, membership: SegmentMembership) -> None:
        """Save one evaluation run.

        Raises:
            NotFound: the segment is not defined.
            DuplicateError: a run of this segment at the same ``as_of`` exists.
        """
        ...

    def latest_membership(
        self, name: str, *, before: dt.datetime | None = None
    ) -> SegmentMembership | None:
        """The most recent run (strictly before ``before``, when given), or ``None``."""
        ...

    def runs_including(self, number: CrmNumber) -> Sequence[tuple[str, dt.datetime]]:
        """``(segment, as_of)`` of every saved run whose members include ``number``, ordered
        by segment name, then ``as_of`` (what a subject access export lists)."""
        ...


class ConsentLedger(Protocol):
    """Every customer's consent decisions: an append-only ledger.

    Entries are never changed; the only way one leaves the ledger is the erasure of its
    customer (:meth:`CustomerRepository.erase` deletes them with the rest of the personal
    data). A merge reads the duplicate's entries before erasing it and appends them, with the
    same ids and instants, to the survivor.
    """

    def append(self, record: ConsentRecord) -> None:
        """Append one decision to its customer's ledger (after every earlier entry).

        Raises:
            NotFound: the customer does not exist (``ErasedError``: it was erased).
            DuplicateError: an entry with this id exists.
        """
        ...

    def append_many(self, records: Sequence[ConsentRecord]) -> None:
        """Append ``records`` in the order given (a merge, a restore, a registration).

        Raises:
            NotFound: a customer does not exist (nothing of the batch stays once the unit of
                work rolls back).
            DuplicateError: an id exists, or repeats in ``records``.
        """
        ...

    def history(self, number: CrmNumber) -> Sequence[ConsentRecord]:
        """The customer's entries oldest first: by ``at``, entries at the same instant in the
        order they were appended (an erased or unknown customer has none)."""
        ...

    def state(self, number: CrmNumber, as_of: dt.datetime) -> ConsentState:
        """The decisions in force at ``as_of``: :func:`~crmcore.domain.consent_state` of
        :meth:`history`."""
        ...

    def forget(self, number: CrmNumber) -> int:
        """Remove every entry of the customer; return how many. Only anonymisation calls it
        (erasure removes the ledger with the customer): the entries' sources and evidence
        references identify the person."""
        ...


class AuditLog(Protocol):
    """The audit trail: append-only entries of who did what to whose data.

    Entries are written in the unit of work of the use case they record, so a use case that
    rolls back leaves no entry. No method changes or deletes an entry; erasure of a customer
    keeps its entries (they hold nothing personal, see :class:`~crmcore.domain.AuditEntry`).
    """

    def append(self, entry: AuditEntry) -> None:
        """Add one entry.

        Raises:
            DuplicateError: an entry with this id exists.
        """
        ...

    def append_many(self, entries: Sequence[AuditEntry]) -> None:
        """Add several entries (one round trip on SQL stores), in order."""
        ...

    def query(
        self,
        *,
        number: CrmNumber | None = None,
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        action: AuditAction | None = None,
        limit: int | None = None,
    ) -> Sequence[AuditEntry]:
        """Entries matching every given filter, oldest first (ties in the order appended).

        ``since`` is inclusive, ``until`` exclusive; ``limit`` keeps the first ``limit``.
        """
        ...


class UnitOfWork(Protocol):
    """One atomic group of writes: everything or nothing.

    Use as a context manager; call :meth:`commit` to make the writes durable. Leaving the block
    without committing, or with an exception, rolls back. A unit of work is used once.
    """

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def interactions(self) -> InteractionRepository: ...

    @property
    def transactions(self) -> TransactionRepository: ...

    @property
    def aggregates(self) -> AggregateRepository: ...

    @property
    def segments(self) -> SegmentRepository: ...

    @property
    def consents(self) -> ConsentLedger: ...

    @property
    def audit(self) -> AuditLog: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make every write of this unit durable and visible.

        Raises:
            ConcurrencyError: a write conflicts with one committed meanwhile (nothing is
                written).
        """
        ...

    def rollback(self) -> None:
        """Discard every write of this unit."""
        ...

    def add_event(self, event: DomainEvent) -> None:
        """Queue a domain event; it is published only if the unit commits."""
        ...

    def collect_events(self) -> list[DomainEvent]:
        """Return and clear the queued events (after a commit, to publish them)."""
        ...


class Store(Protocol):
    """A place customers live: a factory of units of work plus the store's settings."""

    @property
    def scheme(self) -> CrmNumberScheme:
        """How this store's CRM numbers look."""
        ...

    @property
    def reporting_currency(self) -> str:
        """ISO 4217 code analytics report money in."""
        ...

    @property
    def allocator(self) -> NumberAllocator: ...

    def unit_of_work(self) -> UnitOfWork:
        """Start a new unit of work (enter it with ``with``)."""
        ...

    def metrics_source(self) -> MetricsSource:
        """The analytics port over this store: columnar snapshots and single rows.

        :class:`~crmcore.services.Analytics` reads every snapshot, score and segment through
        it. A source may also implement :class:`~crmcore.analytics.ports.RuleSelector` and
        :class:`~crmcore.analytics.ports.RfmScorer` to compute members and scores itself.
        """
        ...
