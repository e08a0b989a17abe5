"""The in-memory store: the reference implementation of every port.

Design: one unit of work at a time (like SQLite's single writer). A unit of work holds the
store's lock from ``__enter__`` to ``__exit__``, applies each write to the live state at once
and pushes the inverse operation on an undo log; ``rollback`` replays the log backwards,
``commit`` forgets it. Reads inside the unit therefore see its own writes, other threads see
only committed state, and a failed unit leaves no trace. Serialising units is the strongest
isolation there is, and it keeps every write O(1): no copy of the store per unit.

Besides the objects, the store keeps numpy columns (see ``_columns``): per-customer running
aggregates and append-only logs of transactions and interactions, which analytics read
without touching Python objects.
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import itertools
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import attrs
import numpy as np

from crmcore._epoch import NONE_MIN, from_us_or_none, to_us
from crmcore.adapters.memory._columns import (
    INTERACTION_LOG_COLUMNS,
    TRANSACTION_LOG_COLUMNS,
    ColumnTable,
    Int64Array,
    new_aggregate_table,
)
from crmcore.domain import (
    DEFAULT_SCHEME,
    CrmNumber,
    CrmNumberScheme,
    Customer,
    CustomerAggregate,
    DomainEvent,
    Interaction,
    InteractionChannel,
    InteractionKind,
    SalesChannel,
    Segment,
    SegmentMembership,
    Transaction,
    TransactionKind,
    currency_exponent,
)
from crmcore.domain._checks import aware_utc
from crmcore.domain.contact import email_lookup_key
from crmcore.errors import (
    ConcurrencyError,
    ConfigurationError,
    DuplicateError,
    ErasedError,
    NotFound,
    ValidationError,
)

if TYPE_CHECKING:
    from crmcore.adapters.memory._metrics import MemoryMetrics

__all__ = ["InMemoryStore"]

_Undo = Callable[[], None]
_CHANNEL_CODE = {c: i for i, c in enumerate(InteractionChannel)}
_SALES_CHANNEL_CODE = {c: i for i, c in enumerate(SalesChannel)}
_KIND_CODE = {k: i for i, k in enumerate(InteractionKind)}
_COMPLAINT = InteractionKind.COMPLAINT


def _copy(customer: Customer) -> Customer:
    # Collections inside a Customer are immutable, so a shallow copy is a safe copy.
    return copy.copy(customer)


class _CounterAllocator:
    """Sequences from a counter under a lock: unique within the process, never reused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def allocate(self) -> int:
        with self._lock:
            return next(self._counter)

    def allocate_many(self, count: int) -> Sequence[int]:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError("count", count, "must be a non-negative integer")
        with self._lock:
            return [next(self._counter) for _ in range(count)]


@attrs.define
class _State:
    """Everything the store holds. Mutated only under the store's lock."""

    customers: dict[CrmNumber, Customer] = attrs.Factory(dict)
    tombstones: set[CrmNumber] = attrs.Factory(set)
    by_external_id: dict[tuple[str, str], CrmNumber] = attrs.Factory(dict)
    by_email: dict[str, set[CrmNumber]] = attrs.Factory(dict)
    by_phone: dict[str, set[CrmNumber]] = attrs.Factory(dict)
    # tag -> aggregate rows of the live customers holding it: rule snapshots read tags from
    # here instead of walking every Customer object (the rows are what a snapshot indexes).
    by_tag: dict[str, set[int]] = attrs.Factory(dict)
    interactions: dict[uuid.UUID, Interaction] = attrs.Factory(dict)
    interactions_of: dict[CrmNumber, list[uuid.UUID]] = attrs.Factory(dict)
    interaction_refs: dict[tuple[str, str], uuid.UUID] = attrs.Factory(dict)
    transactions: dict[uuid.UUID, Transaction] = attrs.Factory(dict)
    transactions_of: dict[CrmNumber, list[uuid.UUID]] = attrs.Factory(dict)
    transaction_refs: dict[tuple[str, str], uuid.UUID] = attrs.Factory(dict)
    # Columnar side: one aggregate row per customer ever added (erased rows stay, alive=0).
    aggregates: ColumnTable = attrs.Factory(new_aggregate_table)
    row_of: dict[CrmNumber, int] = attrs.Factory(dict)
    row_numbers: list[CrmNumber] = attrs.Factory(list)
    transaction_log: ColumnTable = attrs.Factory(lambda: ColumnTable(TRANSACTION_LOG_COLUMNS))
    interaction_log: ColumnTable = attrs.Factory(lambda: ColumnTable(INTERACTION_LOG_COLUMNS))
    segments: dict[str, Segment] = attrs.Factory(dict)
    memberships: dict[str, list[SegmentMembership]] = attrs.Factory(dict)
    # The latest occurred_at of any stored transaction or interaction, and a counter bumped by
    # every commit: analytics use them to know when the maintained aggregates are current.
    latest_event_us: int = NONE_MIN
    generation: int = 0


class InMemoryStore:
    """A complete crmcore store in process memory.

    The reference implementation of :mod:`crmcore.ports` and the fast default for tests and
    small embedded uses. Units of work are serialised: one runs at a time (others wait), so a
    long-running unit blocks the rest. Nesting two units of the same store in one thread
    raises :class:`~crmcore.errors.ConfigurationError` instead of deadlocking.

    Args:
        scheme: how CRM numbers look.
        reporting_currency: ISO 4217 code all analytics money is reported in.
    """

    def __init__(
        self, *, scheme: CrmNumberScheme = DEFAULT_SCHEME, reporting_currency: str = "USD"
    ) -> None:
        if not isinstance(scheme, CrmNumberScheme):
            raise ConfigurationError(f"scheme must be a CrmNumberScheme, got {scheme!r}")
        currency_exponent(reporting_currency, "reporting_currency")
        self._scheme = scheme
        self._currency = reporting_currency
        self._allocator = _CounterAllocator()
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._state = _State()

    @property
    def scheme(self) -> CrmNumberScheme:
        return self._scheme

    @property
    def reporting_currency(self) -> str:
        return self._currency

    @property
    def allocator(self) -> _CounterAllocator:
        return self._allocator

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    def metrics_source(self) -> MemoryMetrics:
        """Analytics' columnar view of this store (see ``crmcore.adapters.memory._metrics``)."""
        from crmcore.adapters.memory._metrics import MemoryMetrics

        return MemoryMetrics(self)

    def read_state(self) -> AbstractContextManager[_State]:
        """Hold the lock and expose the raw state (for adapters' analytics readers)."""
        return _Held(self, self._state)

    def _locked(self) -> AbstractContextManager[None]:
        return _Held(self, None)

    def __repr__(self) -> str:
        return (
            f"InMemoryStore(scheme={self._scheme.prefix}/{self._scheme.width}, "
            f"reporting_currency={self._currency!r}, customers={len(self._state.customers)})"
        )


_T = TypeVar("_T")


class _Held(Generic[_T]):
    """The store's lock, held for one block (a class, not a generator context manager: an
    incremental refresh takes the lock twice, and the generator's frame was the larger part
    of that cost). Re-entry from the thread that holds it is refused, since it would
    deadlock."""

    __slots__ = ("_store", "_value")

    def __init__(self, store: InMemoryStore, value: _T) -> None:
        self._store = store
        self._value = value

    def __enter__(self) -> _T:
        store = self._store
        me = threading.get_ident()
        if store._owner == me:
            raise ConfigurationError(
                "a unit of work of this in-memory store is already open in this thread; "
                "nesting would deadlock"
            )
        store._lock.acquire()
        store._owner = me
        return self._value

    def __exit__(self, *exc: object) -> None:
        store = self._store
        store._owner = None
        store._lock.release()


class MemoryUnitOfWork:
    """A unit of work of :class:`InMemoryStore` (see the module docstring for its design)."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._state = store._state
        self._undo: list[_Undo] = []
        self._events: list[DomainEvent] = []
        self._lock_cm: AbstractContextManager[None] | None = None
        self._active = False
        self.customers = _Customers(self)
        self.interactions = _Interactions(self)
        self.transactions = _Transactions(self)
        self.aggregates = _Aggregates(self)
        self.segments = _Segments(self)

    def __enter__(self) -> Self:
        if self._active or self._lock_cm is not None:
            raise ConfigurationError("a unit of work is used once; start a new one")
        self._lock_cm = self._store._locked()
        self._lock_cm.__enter__()
        self._active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.rollback()
        finally:
            self._active = False
            assert self._lock_cm is not None
            self._lock_cm.__exit__(None, None, None)

    def _check_active(self) -> None:
        if not self._active:
            raise ConfigurationError("use the unit of work inside a 'with' block")

    def _record(self, undo: _Undo) -> None:
        self._undo.append(undo)

    def commit(self) -> None:
        self._check_active()
        if self._undo:
            self._state.generation += 1
        self._undo.clear()

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()
        self._events.clear()

    def add_event(self, event: DomainEvent) -> None:
        self._events.append(event)

    def collect_events(self) -> list[DomainEvent]:
        events, self._events = self._events, []
        return events

    # -- shared helpers for the repositories ------------------------------------------------

    def _require_customer(self, number: CrmNumber) -> None:
        if number not in self._state.customers:
            if number in self._state.tombstones:
                raise ErasedError("customer", number)
            raise NotFound("customer", number)

    def _update_aggregate(self, number: CrmNumber, **changes: int) -> None:
        state = self._state
        row = state.row_of[number]
        old = {name: int(state.aggregates.columns[name][row]) for name in changes}
        state.aggregates.set_row(row, changes)
        self._record(lambda: state.aggregates.set_row(row, old))

    def _bump_latest(self, occurred_us: int) -> None:
        state = self._state
        if occurred_us > state.latest_event_us:
            previous = state.latest_event_us
            state.latest_event_us = occurred_us

            def undo() -> None:
                state.latest_event_us = previous

            self._record(undo)


def _check_number(number: object) -> None:
    if not isinstance(number, CrmNumber):
        raise ValidationError("number", number, "must be a CrmNumber (parse text first)")


def _index_add(index: dict[str, set[CrmNumber]], key: str, number: CrmNumber) -> None:
    index.setdefault(key, set()).add(number)


def _index_remove(index: dict[str, set[CrmNumber]], key: str, number: CrmNumber) -> None:
    holders = index.get(key)
    if holders is not None:
        holders.discard(number)
        if not holders:
            del index[key]


class _Customers:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow
        self._state = uow._state

    def _index(self, customer: Customer) -> None:
        for email in customer.emails:
            _index_add(self._state.by_email, email.lookup_key, customer.number)
        for phone in customer.phones:
            _index_add(self._state.by_phone, phone.e164, customer.number)
        if customer.external_id is not None:
            assert customer.source is not None
            self._state.by_external_id[(customer.source, customer.external_id)] = customer.number
        row = self._state.row_of[customer.number]
        for tag in customer.tags:
            self._state.by_tag.setdefault(tag, set()).add(row)

    def _unindex(self, customer: Customer) -> None:
        for email in customer.emails:
            _index_remove(self._state.by_email, email.lookup_key, customer.number)
        for phone in customer.phones:
            _index_remove(self._state.by_phone, phone.e164, customer.number)
        if customer.external_id is not None:
            assert customer.source is not None
            self._state.by_external_id.pop((customer.source, customer.external_id), None)
        row = self._state.row_of[customer.number]
        for tag in customer.tags:
            holders = self._state.by_tag.get(tag)
            if holders is not None:
                holders.discard(row)
                if not holders:
                    del self._state.by_tag[tag]

    def _check_external_id(self, customer: Customer) -> None:
        if customer.external_id is None:
            return
        assert customer.source is not None
        holder = self._state.by_external_id.get((customer.source, customer.external_id))
        if holder is not None and holder != customer.number:
            raise DuplicateError("external id", f"{customer.source}/{customer.external_id}")

    def add(self, customer: Customer) -> None:
        self._uow._check_active()
        if not isinstance(customer, Customer):
            raise ValidationError("customer", customer, "must be a Customer")
        customer.validate()
        state = self._state
        number = customer.number
        if number in state.customers or number in state.tombstones:
            raise DuplicateError("crm number", number)
        self._check_external_id(customer)
        stored = _copy(customer)
        state.customers[number] = stored
        row = state.aggregates.append(
            stage=stored.stage.code, created_us=to_us(stored.created_at), alive=1
        )
        state.row_of[number] = row
        state.row_numbers.append(number)
        self._index(stored)

        def undo() -> None:
            self._unindex(stored)
            del state.customers[number]
            del state.row_of[number]
            state.row_numbers.pop()
            state.aggregates.truncate(row)

        self._uow._record(undo)

    def add_many(self, customers: Sequence[Customer]) -> None:
        for customer in customers:
            self.add(customer)

    def get(self, number: CrmNumber) -> Customer:
        self._uow._check_active()
        _check_number(number)
        self._uow._require_customer(number)
        return _copy(self._state.customers[number])

    def find(self, number: CrmNumber) -> Customer | None:
        self._uow._check_active()
        _check_number(number)
        found = self._state.customers.get(number)
        return None if found is None else _copy(found)

    def update(self, customer: Customer) -> None:
        self._uow._check_active()
        if not isinstance(customer, Customer):
            raise ValidationError("customer", customer, "must be a Customer")
        customer.validate()
        state = self._state
        number = customer.number
        self._uow._require_customer(number)
        old = state.customers[number]
        if old.version != customer.version:
            raise ConcurrencyError(
                f"customer {number} was changed by someone else (stored version "
                f"{old.version}, yours {customer.version}); reload and retry"
            )
        self._check_external_id(customer)
        new = _copy(customer)
        new.version = old.version + 1
        self._unindex(old)
        self._index(new)
        state.customers[number] = new
        customer.version = new.version
        self._uow._update_aggregate(number, stage=new.stage.code)

        def undo() -> None:
            self._unindex(new)
            self._index(old)
            state.customers[number] = old

        self._uow._record(undo)

    def erase(self, number: CrmNumber) -> None:
        self._uow._check_active()
        self._uow._require_customer(number)
        state = self._state
        customer = state.customers.pop(number)
        self._unindex(customer)
        state.tombstones.add(number)
        removed_tx = _remove_history(
            state.transactions, state.transactions_of, state.transaction_refs, number
        )
        removed_ix = _remove_history(
            state.interactions, state.interactions_of, state.interaction_refs, number
        )
        row = state.row_of[number]
        old_row = state.aggregates.row(row)
        state.aggregates.set_row(row, new_aggregate_table().defaults)
        tx_hits = _blank_log_rows(state.transaction_log, row)
        ix_hits = _blank_log_rows(state.interaction_log, row)
        # Edit the run lists in place (and restore them in place): undo entries of earlier
        # writes in the same unit of work hold these very list objects.
        old_memberships = {name: list(runs) for name, runs in state.memberships.items()}
        for runs in state.memberships.values():
            runs[:] = [
                attrs.evolve(run, members=run.members - {number}) if number in run.members else run
                for run in runs
            ]

        def undo() -> None:
            state.tombstones.discard(number)
            state.customers[number] = customer
            self._index(customer)
            _restore_history(
                state.transactions, state.transactions_of, state.transaction_refs, removed_tx
            )
            _restore_history(
                state.interactions, state.interactions_of, state.interaction_refs, removed_ix
            )
            state.aggregates.set_row(row, old_row)
            _restore_log_rows(state.transaction_log, tx_hits)
            _restore_log_rows(state.interaction_log, ix_hits)
            for name, runs in old_memberships.items():
                state.memberships[name][:] = runs

        self._uow._record(undo)

    def find_by_email(self, email: str) -> Sequence[Customer]:
        self._uow._check_active()
        try:
            key = email_lookup_key(email)
        except ValidationError:
            return []
        return self._sorted(self._state.by_email.get(key, ()))

    def find_by_phone(self, e164: str) -> Sequence[Customer]:
        self._uow._check_active()
        return self._sorted(self._state.by_phone.get(e164, ()))

    def _sorted(self, numbers: Iterator[CrmNumber] | set[CrmNumber] | tuple[()]) -> list[Customer]:
        return [_copy(self._state.customers[n]) for n in sorted(numbers)]

    def find_by_external_id(self, source: str, external_id: str) -> Customer | None:
        self._uow._check_active()
        number = self._state.by_external_id.get((source, external_id))
        return None if number is None else _copy(self._state.customers[number])

    def numbers_by_external_id(
        self, source: str, external_ids: Collection[str]
    ) -> dict[str, CrmNumber]:
        self._uow._check_active()
        index = self._state.by_external_id
        out: dict[str, CrmNumber] = {}
        for external_id in external_ids:
            number = index.get((source, external_id))
            if number is not None:
                out[external_id] = number
        return out

    def existing(self, numbers: Collection[CrmNumber]) -> set[CrmNumber]:
        self._uow._check_active()
        customers = self._state.customers
        return {n for n in numbers if n in customers}

    def external_ids(self) -> dict[CrmNumber, str]:
        self._uow._check_active()
        return {number: key[1] for key, number in self._state.by_external_id.items()}

    def count(self) -> int:
        self._uow._check_active()
        return len(self._state.customers)

    def numbers(self) -> Sequence[CrmNumber]:
        self._uow._check_active()
        return sorted(self._state.customers)

    def iter_all(self, batch_size: int = 1000) -> Iterator[Customer]:
        self._uow._check_active()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be a positive integer")
        for number in sorted(self._state.customers):
            yield _copy(self._state.customers[number])


_HistoryItem = Interaction | Transaction


def _remove_history(
    items: dict[uuid.UUID, _HistoryItem]
    | dict[uuid.UUID, Interaction]
    | dict[uuid.UUID, Transaction],
    by_customer: dict[CrmNumber, list[uuid.UUID]],
    refs: dict[tuple[str, str], uuid.UUID],
    number: CrmNumber,
) -> tuple[CrmNumber, list[uuid.UUID] | None, list[_HistoryItem]]:
    ids = by_customer.pop(number, None)
    removed: list[_HistoryItem] = []
    for item_id in ids or ():
        item = items.pop(item_id)
        removed.append(item)
        if item.external_ref is not None:
            assert item.source is not None
            refs.pop((item.source, item.external_ref), None)
    return number, ids, removed


def _restore_history(
    items: dict[uuid.UUID, _HistoryItem]
    | dict[uuid.UUID, Interaction]
    | dict[uuid.UUID, Transaction],
    by_customer: dict[CrmNumber, list[uuid.UUID]],
    refs: dict[tuple[str, str], uuid.UUID],
    removed: tuple[CrmNumber, list[uuid.UUID] | None, list[_HistoryItem]],
) -> None:
    number, ids, restored = removed
    if ids is None:
        return
    # Put back the very list object that was removed: undo entries of earlier writes in the
    # same unit of work hold it and pop from it when they are replayed after this one.
    by_customer[number] = ids
    for item in restored:
        items[item.id] = item  # type: ignore[assignment]
        if item.external_ref is not None:
            assert item.source is not None
            refs[(item.source, item.external_ref)] = item.id


def _blank_log_rows(log: ColumnTable, row: int) -> dict[str, Int64Array]:
    """Detach an erased customer's log entries (row -> -1, values zeroed); return for undo."""
    rows = log.view("row")
    hits = (rows == row).nonzero()[0]
    saved: dict[str, Int64Array] = {"index": hits}
    for name in log.names:
        saved[name] = log.columns[name][hits].copy()
        log.columns[name][hits] = -1 if name == "row" else 0
    return saved


def _restore_log_rows(log: ColumnTable, saved: dict[str, Int64Array]) -> None:
    hits = saved["index"]
    for name in log.names:
        log.columns[name][hits] = saved[name]


def _newest_first(
    items: Sequence[_HistoryItem], limit: int | None, before: dt.datetime | None
) -> list[_HistoryItem]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValidationError("limit", limit, "must be a non-negative integer")
    if before is not None:
        cutoff = aware_utc("before", before)
        items = [item for item in items if item.occurred_at < cutoff]
    ordered = sorted(items, key=lambda item: (item.occurred_at, item.id.int), reverse=True)
    return ordered if limit is None else ordered[:limit]


class _History:
    """Shared add/get/list logic of interactions and transactions."""

    kind: str

    def __init__(
        self,
        uow: MemoryUnitOfWork,
        items: dict[uuid.UUID, Any],
        by_customer: dict[CrmNumber, list[uuid.UUID]],
        refs: dict[tuple[str, str], uuid.UUID],
    ) -> None:
        self._uow = uow
        self._state = uow._state
        self._history = (items, by_customer, refs)

    def _stores(
        self,
    ) -> tuple[
        dict[uuid.UUID, _HistoryItem],
        dict[CrmNumber, list[uuid.UUID]],
        dict[tuple[str, str], uuid.UUID],
    ]:
        return self._history

    def _store_item(self, item: _HistoryItem) -> bool:
        self._uow._check_active()
        items, by_customer, refs = self._stores()
        self._uow._require_customer(item.customer)
        # "Already recorded" wins over "id taken": retrying the very same record (same id,
        # same reference) is the idempotent no-op, not a duplicate.
        ref = None if item.external_ref is None else (item.source or "", item.external_ref)
        if ref is not None and ref in refs:
            return False
        if item.id in items:
            raise DuplicateError(f"{self.kind} id", item.id)
        items[item.id] = item
        ids = by_customer.setdefault(item.customer, [])
        ids.append(item.id)
        if ref is not None:
            refs[ref] = item.id

        def undo() -> None:
            del items[item.id]
            ids.pop()
            if not ids:
                by_customer.pop(item.customer, None)
            if ref is not None:
                del refs[ref]

        self._uow._record(undo)
        return True

    def _store_items(self, batch: Sequence[_HistoryItem]) -> tuple[list[_HistoryItem], _Undo]:
        """Store a batch's objects exactly as :meth:`_store_item` would, one by one (first of
        a repeated reference wins), and return the stored ones and one function undoing
        them all. On an error nothing of the batch stays stored."""
        self._uow._check_active()
        items, by_customer, refs = self._stores()
        stored: list[_HistoryItem] = []
        lists: list[list[uuid.UUID]] = []
        keys: list[tuple[str, str] | None] = []

        def forget() -> None:
            for item, ids, ref in zip(
                reversed(stored), reversed(lists), reversed(keys), strict=True
            ):
                del items[item.id]
                ids.pop()
                if not ids:
                    by_customer.pop(item.customer, None)
                if ref is not None:
                    del refs[ref]

        try:
            for item in batch:
                self._uow._require_customer(item.customer)
                ref = None if item.external_ref is None else (item.source or "", item.external_ref)
                if ref is not None and ref in refs:
                    continue
                if item.id in items:
                    raise DuplicateError(f"{self.kind} id", item.id)
                items[item.id] = item
                ids = by_customer.setdefault(item.customer, [])
                ids.append(item.id)
                if ref is not None:
                    refs[ref] = item.id
                stored.append(item)
                lists.append(ids)
                keys.append(ref)
        except BaseException:
            forget()
            raise
        return stored, forget

    def _apply_columns(
        self,
        stored: Sequence[_HistoryItem],
        forget: _Undo,
        log: ColumnTable,
        log_values: dict[str, Int64Array],
        updates: Callable[[dict[str, Int64Array]], None],
        names: tuple[str, ...],
    ) -> None:
        """Append a batch to ``log`` and let ``updates`` fold it into the aggregate columns
        (numpy ufunc.at), recording one undo entry for the whole batch."""
        state = self._state
        rows = log_values["row"]
        touched = np.unique(rows)
        saved = {name: state.aggregates.columns[name][touched].copy() for name in names}
        size = log.size
        log.append_many(log_values)
        updates(state.aggregates.columns)
        previous_latest = state.latest_event_us
        state.latest_event_us = max(previous_latest, int(log_values["occurred_us"].max()))

        def undo() -> None:
            state.latest_event_us = previous_latest
            log.truncate(size)
            for name, values in saved.items():
                state.aggregates.columns[name][touched] = values
            forget()

        self._uow._record(undo)

    def _get(self, item_id: uuid.UUID) -> _HistoryItem:
        self._uow._check_active()
        items, _, _ = self._stores()
        try:
            return items[item_id]
        except KeyError:
            raise NotFound(self.kind, item_id) from None

    def _by_ref(self, source: str, external_ref: str) -> _HistoryItem | None:
        self._uow._check_active()
        items, _, refs = self._stores()
        item_id = refs.get((source, external_ref))
        return None if item_id is None else items[item_id]

    def _for_customer(
        self, number: CrmNumber, limit: int | None, before: dt.datetime | None
    ) -> list[_HistoryItem]:
        self._uow._check_active()
        items, by_customer, _ = self._stores()
        return _newest_first([items[i] for i in by_customer.get(number, ())], limit, before)


class _Interactions(_History):
    kind = "interaction"

    def __init__(self, uow: MemoryUnitOfWork) -> None:
        state = uow._state
        super().__init__(uow, state.interactions, state.interactions_of, state.interaction_refs)

    def add(self, interaction: Interaction) -> bool:
        if not isinstance(interaction, Interaction):
            raise ValidationError("interaction", interaction, "must be an Interaction")
        if not self._store_item(interaction):
            return False
        state = self._state
        number = interaction.customer
        row = state.row_of[number]
        cols = state.aggregates.columns
        occurred = to_us(interaction.occurred_at)
        self._uow._update_aggregate(
            number,
            interaction_count=int(cols["interaction_count"][row]) + 1,
            complaint_count=int(cols["complaint_count"][row]) + (interaction.kind is _COMPLAINT),
            last_interaction_us=max(int(cols["last_interaction_us"][row]), occurred),
        )
        log = state.interaction_log
        size = log.append(
            row=row,
            occurred_us=occurred,
            kind=_KIND_CODE[interaction.kind],
            channel=_CHANNEL_CODE[interaction.channel],
        )
        self._uow._record(lambda: log.truncate(size))
        self._uow._bump_latest(occurred)
        return True

    def add_many(self, interactions: Sequence[Interaction]) -> int:
        """Like :meth:`add` for each, with the aggregates and the log updated column-wise."""
        batch = list(interactions)
        for interaction in batch:
            if not isinstance(interaction, Interaction):
                raise ValidationError("interaction", interaction, "must be an Interaction")
        stored, forget = self._store_items(batch)
        if not stored:
            return 0
        state, n = self._state, len(stored)
        ixs: list[Interaction] = stored  # type: ignore[assignment]
        rows = np.fromiter((state.row_of[i.customer] for i in ixs), np.int64, n)
        occurred = np.fromiter((to_us(i.occurred_at) for i in ixs), np.int64, n)
        kinds = np.fromiter((_KIND_CODE[i.kind] for i in ixs), np.int64, n)
        channels = np.fromiter((_CHANNEL_CODE[i.channel] for i in ixs), np.int64, n)

        def updates(cols: dict[str, Int64Array]) -> None:
            np.add.at(cols["interaction_count"], rows, 1)
            np.add.at(cols["complaint_count"], rows, kinds == _KIND_CODE[_COMPLAINT])
            np.maximum.at(cols["last_interaction_us"], rows, occurred)

        self._apply_columns(
            stored,
            forget,
            state.interaction_log,
            {"row": rows, "occurred_us": occurred, "kind": kinds, "channel": channels},
            updates,
            ("interaction_count", "complaint_count", "last_interaction_us"),
        )
        return n

    def get(self, interaction_id: uuid.UUID) -> Interaction:
        return self._get(interaction_id)  # type: ignore[return-value]

    def find_by_external_ref(self, source: str, external_ref: str) -> Interaction | None:
        return self._by_ref(source, external_ref)  # type: ignore[return-value]

    def for_customer(
        self, number: CrmNumber, *, limit: int | None = None, before: dt.datetime | None = None
    ) -> Sequence[Interaction]:
        return self._for_customer(number, limit, before)  # type: ignore[return-value]


class _Transactions(_History):
    kind = "transaction"

    def __init__(self, uow: MemoryUnitOfWork) -> None:
        state = uow._state
        super().__init__(uow, state.transactions, state.transactions_of, state.transaction_refs)

    def add(self, transaction: Transaction) -> bool:
        self._check(transaction)
        reporting = transaction.reporting_total
        assert reporting is not None  # _check verified it
        if not self._store_item(transaction):
            return False
        state = self._state
        number = transaction.customer
        row = state.row_of[number]
        cols = state.aggregates.columns
        occurred = to_us(transaction.occurred_at)
        minor = reporting.minor_units
        if transaction.kind is TransactionKind.PURCHASE:
            self._uow._update_aggregate(
                number,
                purchase_count=int(cols["purchase_count"][row]) + 1,
                purchase_minor=int(cols["purchase_minor"][row]) + minor,
                first_purchase_us=min(int(cols["first_purchase_us"][row]), occurred),
                last_purchase_us=max(int(cols["last_purchase_us"][row]), occurred),
            )
        else:
            self._uow._update_aggregate(
                number,
                refund_count=int(cols["refund_count"][row]) + 1,
                refund_minor=int(cols["refund_minor"][row]) + minor,
            )
        log = state.transaction_log
        size = log.append(
            row=row,
            occurred_us=occurred,
            kind=0 if transaction.kind is TransactionKind.PURCHASE else 1,
            reporting_minor=minor,
            channel=_SALES_CHANNEL_CODE[transaction.channel],
        )
        self._uow._record(lambda: log.truncate(size))
        self._uow._bump_latest(occurred)
        return True

    def _check(self, transaction: object) -> Transaction:
        if not isinstance(transaction, Transaction):
            raise ValidationError("transaction", transaction, "must be a Transaction")
        reporting = transaction.reporting_total
        if reporting is None:
            raise ValidationError(
                "reporting_total", None, "must be set before storing (the services do this)"
            )
        if reporting.currency != self._uow._store.reporting_currency:
            raise ValidationError(
                "reporting_total.currency",
                reporting.currency,
                f"must be the store's reporting currency {self._uow._store.reporting_currency}",
            )
        return transaction

    def add_many(self, transactions: Sequence[Transaction]) -> int:
        """Like :meth:`add` for each, with the aggregates and the log updated column-wise."""
        batch = [self._check(transaction) for transaction in transactions]
        stored, forget = self._store_items(batch)
        if not stored:
            return 0
        state, n = self._state, len(stored)
        txs: list[Transaction] = stored  # type: ignore[assignment]
        rows = np.fromiter((state.row_of[t.customer] for t in txs), np.int64, n)
        occurred = np.fromiter((to_us(t.occurred_at) for t in txs), np.int64, n)
        minor = np.fromiter(_reporting_minor(txs), np.int64, n)
        refund = np.fromiter((t.kind is TransactionKind.REFUND for t in txs), np.bool_, n)
        channels = np.fromiter((_SALES_CHANNEL_CODE[t.channel] for t in txs), np.int64, n)
        bought = ~refund

        def updates(cols: dict[str, Int64Array]) -> None:
            np.add.at(cols["purchase_count"], rows[bought], 1)
            np.add.at(cols["purchase_minor"], rows[bought], minor[bought])
            np.minimum.at(cols["first_purchase_us"], rows[bought], occurred[bought])
            np.maximum.at(cols["last_purchase_us"], rows[bought], occurred[bought])
            np.add.at(cols["refund_count"], rows[refund], 1)
            np.add.at(cols["refund_minor"], rows[refund], minor[refund])

        self._apply_columns(
            stored,
            forget,
            state.transaction_log,
            {
                "row": rows,
                "occurred_us": occurred,
                "kind": refund.astype(np.int64),
                "reporting_minor": minor,
                "channel": channels,
            },
            updates,
            (
                "purchase_count",
                "purchase_minor",
                "first_purchase_us",
                "last_purchase_us",
                "refund_count",
                "refund_minor",
            ),
        )
        return n

    def get(self, transaction_id: uuid.UUID) -> Transaction:
        return self._get(transaction_id)  # type: ignore[return-value]

    def find_by_external_ref(self, source: str, external_ref: str) -> Transaction | None:
        return self._by_ref(source, external_ref)  # type: ignore[return-value]

    def for_customer(
        self, number: CrmNumber, *, limit: int | None = None, before: dt.datetime | None = None
    ) -> Sequence[Transaction]:
        return self._for_customer(number, limit, before)  # type: ignore[return-value]


def _reporting_minor(transactions: Sequence[Transaction]) -> Iterator[int]:
    for transaction in transactions:
        assert transaction.reporting_total is not None  # checked by _check
        yield transaction.reporting_total.minor_units


class _Aggregates:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow
        self._state = uow._state

    def get(self, number: CrmNumber) -> CustomerAggregate:
        self._uow._check_active()
        self._uow._require_customer(number)
        row = self._state.aggregates.row(self._state.row_of[number])
        return CustomerAggregate(
            customer=number,
            purchase_count=row["purchase_count"],
            refund_count=row["refund_count"],
            purchase_minor=row["purchase_minor"],
            refund_minor=row["refund_minor"],
            first_purchase_at=from_us_or_none(row["first_purchase_us"]),
            last_purchase_at=from_us_or_none(row["last_purchase_us"]),
            interaction_count=row["interaction_count"],
            complaint_count=row["complaint_count"],
            last_interaction_at=from_us_or_none(row["last_interaction_us"]),
        )


class _Segments:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow
        self._state = uow._state

    def save(self, segment: Segment) -> None:
        self._uow._check_active()
        if not isinstance(segment, Segment):
            raise ValidationError("segment", segment, "must be a Segment")
        segments = self._state.segments
        previous = segments.get(segment.name)
        segments[segment.name] = segment

        def undo() -> None:
            if previous is None:
                del segments[segment.name]
            else:
                segments[segment.name] = previous

        self._uow._record(undo)

    def get(self, name: str) -> Segment:
        self._uow._check_active()
        try:
            return self._state.segments[name]
        except KeyError:
            raise NotFound("segment", name) from None

    def list(self) -> Sequence[Segment]:
        self._uow._check_active()
        return [self._state.segments[name] for name in sorted(self._state.segments)]

    def delete(self, name: str) -> None:
        segment = self.get(name)
        state = self._state
        del state.segments[name]
        runs = state.memberships.pop(name, None)

        def undo() -> None:
            state.segments[name] = segment
            if runs is not None:
                state.memberships[name] = runs

        self._uow._record(undo)

    def save_membership(self, membership: SegmentMembership) -> None:
        self._uow._check_active()
        if not isinstance(membership, SegmentMembership):
            raise ValidationError("membership", membership, "must be a SegmentMembership")
        self.get(membership.segment)
        runs = self._state.memberships.setdefault(membership.segment, [])
        keys = [run.as_of for run in runs]
        position = bisect.bisect_left(keys, membership.as_of)
        if position < len(runs) and runs[position].as_of == membership.as_of:
            raise DuplicateError(
                "segment run", f"{membership.segment} as of {membership.as_of.isoformat()}"
            )
        runs.insert(position, membership)

        def undo() -> None:
            del runs[position]

        self._uow._record(undo)

    def latest_membership(
        self, name: str, *, before: dt.datetime | None = None
    ) -> SegmentMembership | None:
        self._uow._check_active()
        runs = self._state.memberships.get(name, [])
        if before is None:
            return runs[-1] if runs else None
        cutoff = aware_utc("before", before)
        position = bisect.bisect_left([run.as_of for run in runs], cutoff)
        return runs[position - 1] if position > 0 else None
