"""The in-memory customer repository: customers, their lookup indexes and erasure."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Final

import attrs
import numpy as np

from crmcore._epoch import to_us
from crmcore.adapters.memory._columns import ALIVE, Int64Array
from crmcore.adapters.memory._context import TransactionContext
from crmcore.analytics.columns import STAGE_CODES
from crmcore.domain import CrmNumber, Customer, LifecycleStage
from crmcore.domain._checks import aware_utc
from crmcore.domain.contact import email_lookup_key
from crmcore.domain.numbers import trusted_numbers
from crmcore.errors import ConcurrencyError, DuplicateError, ValidationError
from crmcore.ports.customer_batch import CustomerBatch
from crmcore.ports.retention import page_limit

__all__ = ["Customers", "check_number"]

_STAGE: Final = dict(STAGE_CODES)  # a plain dict: looked up on every add and update


def _copy(customer: Customer) -> Customer:
    # Collections inside a Customer are immutable, so a shallow copy is a safe copy.
    return copy.copy(customer)


def check_number(number: object) -> None:
    """Raise unless ``number`` is a :class:`CrmNumber`.

    Raises:
        ValidationError: it is not (text must be parsed first).
    """
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


class Customers:
    """:class:`~crmcore.ports.CustomerRepository` of one in-memory unit of work.

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._context = context
        self._state = context.state

    def _index(self, customer: Customer) -> None:
        state = self._state
        for email in customer.emails:
            _index_add(state.by_email, email.lookup_key, customer.number)
        for phone in customer.phones:
            _index_add(state.by_phone, phone.e164, customer.number)
        if customer.external_id is not None:
            assert customer.source is not None
            state.by_external_id[(customer.source, customer.external_id)] = customer.number
        row = state.row_of[customer.number]
        for tag in customer.tags:
            state.by_tag.setdefault(tag, set()).add(row)

    def _unindex(self, customer: Customer) -> None:
        state = self._state
        for email in customer.emails:
            _index_remove(state.by_email, email.lookup_key, customer.number)
        for phone in customer.phones:
            _index_remove(state.by_phone, phone.e164, customer.number)
        if customer.external_id is not None:
            assert customer.source is not None
            state.by_external_id.pop((customer.source, customer.external_id), None)
        row = state.row_of[customer.number]
        for tag in customer.tags:
            holders = state.by_tag.get(tag)
            if holders is not None:
                holders.discard(row)
                if not holders:
                    del state.by_tag[tag]

    def _check_external_id(self, customer: Customer) -> None:
        if customer.external_id is None:
            return
        assert customer.source is not None
        holder = self._state.by_external_id.get((customer.source, customer.external_id))
        if holder is not None and holder != customer.number:
            raise DuplicateError("external id", f"{customer.source}/{customer.external_id}")

    def add(self, customer: Customer) -> None:
        self._context.check_active()
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
            {"stage": _STAGE[stored.stage], "created_us": to_us(stored.created_at), ALIVE: 1}
        )
        state.row_of[number] = row
        state.row_by_text[number.value] = row
        state.row_numbers.append(number)
        self._index(stored)

        def undo() -> None:
            self._unindex(stored)
            del state.customers[number]
            del state.row_of[number]
            del state.row_by_text[number.value]
            state.row_numbers.pop()
            state.aggregates.truncate(row)

        self._context.undo.append(undo)

    def add_many(self, customers: Sequence[Customer]) -> None:
        for customer in customers:
            self.add(customer)

    def add_batch(self, batch: CustomerBatch) -> None:
        """A validated column batch: checked for taken keys as :meth:`add_many` checks its
        customers, then stored with the aggregate rows appended column-wise and one undo
        entry for the whole batch (the customers are built without re-validation)."""
        self._context.check_active()
        if not isinstance(batch, CustomerBatch):
            raise ValidationError("batch", batch, "must be a CustomerBatch")
        if not len(batch):
            return
        fresh = batch.customers()
        numbers = [customer.number for customer in fresh]
        self._check_batch_keys(numbers, batch)
        self._insert(fresh, numbers, batch.stage.tolist(), batch.created_us)

    def add_owned(self, customers: Sequence[Customer]) -> None:
        """Store ``customers`` that nobody else holds (a copy's or a restore's freshly built
        objects): checked for taken keys and cross-field rules as :meth:`add_many` checks
        them, but stored as they are (no defensive copy) with one undo entry for all.

        Raises:
            ValidationError: an item is not a customer, or breaks a cross-field rule.
            DuplicateError: a number or external id is taken, or repeats in ``customers``.
        """
        self._context.check_active()
        fresh = list(customers)
        for index, customer in enumerate(fresh):
            if not isinstance(customer, Customer):
                raise ValidationError(f"customers[{index}]", customer, "must be a Customer")
            customer.validate()
        if not fresh:
            return
        numbers = [customer.number for customer in fresh]
        self._check_keys(numbers, [(c.source, c.external_id) for c in fresh])
        created = np.fromiter((to_us(c.created_at) for c in fresh), np.int64, len(fresh))
        self._insert(fresh, numbers, [c.stage for c in fresh], created)

    def _insert(
        self,
        fresh: list[Customer],
        numbers: list[CrmNumber],
        stage: list[LifecycleStage],
        created_us: Int64Array,
    ) -> None:
        """Store checked customers column-wise, with one undo entry for all of them."""
        state = self._state
        customers = state.customers
        customers.update(zip(numbers, fresh, strict=True))
        stages = np.fromiter(map(_STAGE.__getitem__, stage), np.int64, len(fresh))
        rows = state.aggregates.append_many(
            {
                "stage": stages,
                "created_us": created_us,
                ALIVE: np.ones(len(fresh), dtype=np.int64),
            }
        )
        state.row_of.update(zip(numbers, rows, strict=True))
        state.row_by_text.update(zip((n.value for n in numbers), rows, strict=True))
        state.row_numbers.extend(numbers)
        state.by_external_id.update(
            ((c.source, c.external_id), c.number)  # type: ignore[misc]  # source set with id
            for c in fresh
            if c.external_id is not None
        )
        # Rows sharing one tag set are indexed together (an import has few distinct sets).
        by_tags: dict[frozenset[str], list[int]] = {}
        for row, customer in zip(rows, fresh, strict=True):
            if customer.tags:
                by_tags.setdefault(customer.tags, []).append(row)
        for tags, tagged in by_tags.items():
            for tag in tags:
                state.by_tag.setdefault(tag, set()).update(tagged)
        contacts = [customer for customer in fresh if customer.emails or customer.phones]
        for customer in contacts:
            for email in customer.emails:
                _index_add(state.by_email, email.lookup_key, customer.number)
            for phone in customer.phones:
                _index_add(state.by_phone, phone.e164, customer.number)
        start = rows.start

        def undo() -> None:
            for customer in fresh:
                self._unindex(customer)
            for number in numbers:
                del customers[number]
                del state.row_of[number]
                del state.row_by_text[number.value]
            del state.row_numbers[start:]
            state.aggregates.truncate(start)

        self._context.undo.append(undo)

    def _check_batch_keys(self, numbers: list[CrmNumber], batch: CustomerBatch) -> None:
        keys = zip(batch.source.tolist(), batch.external_id.tolist(), strict=True)
        self._check_keys(numbers, list(keys))

    def _check_keys(
        self, numbers: list[CrmNumber], external: list[tuple[str | None, str | None]]
    ) -> None:
        state = self._state
        if len(set(numbers)) != len(numbers):
            seen: set[CrmNumber] = set()
            for number in numbers:
                if number in seen:
                    raise DuplicateError("crm number", number)
                seen.add(number)
        for number in numbers:
            if number in state.customers or number in state.tombstones:
                raise DuplicateError("crm number", number)
        keys: set[tuple[str | None, str]] = set()
        taken = state.by_external_id
        for source, external_id in external:
            if external_id is None:
                continue
            key = (source, external_id)
            if key in keys or key in taken:
                raise DuplicateError("external id", f"{source}/{external_id}")
            keys.add(key)

    def get(self, number: CrmNumber) -> Customer:
        self._context.check_active()
        check_number(number)
        self._context.require_customer(number)
        return _copy(self._state.customers[number])

    def find(self, number: CrmNumber) -> Customer | None:
        self._context.check_active()
        check_number(number)
        found = self._state.customers.get(number)
        return None if found is None else _copy(found)

    def update(self, customer: Customer) -> None:
        context = self._context
        context.check_active()
        if not isinstance(customer, Customer):
            raise ValidationError("customer", customer, "must be a Customer")
        customer.validate()
        state = self._state
        number = customer.number
        context.require_customer(number)
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
        context.update_aggregate(state.row_of[number], {"stage": _STAGE[new.stage]})

        def undo() -> None:
            self._unindex(new)
            self._index(old)
            state.customers[number] = old

        context.undo.append(undo)

    def lock(self, numbers: Collection[CrmNumber]) -> None:
        self._context.check_active()
        for number in numbers:
            check_number(number)
        # Nothing more to do: a unit of work holds the store's lock from start to end, so no
        # other unit can touch these customers meanwhile.

    def erase(self, number: CrmNumber) -> None:
        context = self._context
        context.check_active()
        context.require_customer(number)
        state = self._state
        customer = state.customers.pop(number)
        self._unindex(customer)
        state.tombstones.add(number)
        row = state.row_of[number]
        restore_transactions = state.transactions.remove_customer(number, row)
        restore_interactions = state.interactions.remove_customer(number, row)
        old_row = state.aggregates.row(row)
        state.aggregates.set_row(row, state.aggregates.defaults)
        # Erasure is the one path that removes consent ledger entries.
        ledger = state.consents.pop(number, [])
        state.consent_ids.difference_update(record.id for record in ledger)
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
            restore_transactions()
            restore_interactions()
            state.aggregates.set_row(row, old_row)
            if ledger:
                state.consents[number] = ledger
                state.consent_ids.update(record.id for record in ledger)
            for name, runs in old_memberships.items():
                state.memberships[name][:] = runs

        context.undo.append(undo)

    def find_by_email(self, email: str) -> Sequence[Customer]:
        self._context.check_active()
        try:
            key = email_lookup_key(email)
        except ValidationError:
            return []
        return self._sorted(self._state.by_email.get(key, ()))

    def find_by_phone(self, e164: str) -> Sequence[Customer]:
        self._context.check_active()
        return self._sorted(self._state.by_phone.get(e164, ()))

    def _sorted(self, numbers: Iterable[CrmNumber]) -> list[Customer]:
        return [_copy(self._state.customers[n]) for n in sorted(numbers)]

    def find_by_external_id(self, source: str, external_id: str) -> Customer | None:
        self._context.check_active()
        number = self._state.by_external_id.get((source, external_id))
        return None if number is None else _copy(self._state.customers[number])

    def numbers_by_external_id(
        self, source: str, external_ids: Collection[str]
    ) -> dict[str, CrmNumber]:
        self._context.check_active()
        index = self._state.by_external_id
        out: dict[str, CrmNumber] = {}
        for external_id in external_ids:
            number = index.get((source, external_id))
            if number is not None:
                out[external_id] = number
        return out

    def existing(self, numbers: Collection[CrmNumber]) -> set[CrmNumber]:
        self._context.check_active()
        customers = self._state.customers
        return {n for n in numbers if n in customers}

    def existing_texts(self, texts: Collection[str]) -> set[str]:
        self._context.check_active()
        state = self._state
        items = list(texts)
        get = state.row_by_text.get
        rows = np.fromiter((get(text, -1) for text in items), np.int64, len(items))
        for i in np.flatnonzero(rows < 0).tolist():
            # Not in the text index: ask the number index (a customer stored by a path that
            # does not fill the text index, or no such customer).
            rows[i] = state.row_of.get(trusted_numbers([items[i]])[0], -1)
        known = rows >= 0
        # Erased customers keep their row, with "alive" 0.
        known[known] = self._state.aggregates.columns[ALIVE][rows[known]] == 1
        return {text for text, hit in zip(items, known.tolist(), strict=True) if hit}

    def external_ids(self) -> dict[CrmNumber, str]:
        self._context.check_active()
        return {number: key[1] for key, number in self._state.by_external_id.items()}

    def count(self) -> int:
        self._context.check_active()
        return len(self._state.customers)

    def numbers(self) -> Sequence[CrmNumber]:
        self._context.check_active()
        return sorted(self._state.customers)

    def inactive(
        self,
        cutoff: dt.datetime,
        *,
        include_anonymised: bool = False,
        after: CrmNumber | None = None,
        limit: int = 1000,
    ) -> Sequence[CrmNumber]:
        self._context.check_active()
        when = aware_utc("cutoff", cutoff)
        cut = to_us(when)
        limit = page_limit(limit)
        state = self._state
        active: set[int] = set()
        for history in (state.transactions, state.interactions):
            rows = history.log.view("row")
            recent = rows[(history.log.view("occurred_us") >= cut) & (rows >= 0)]
            active.update(np.unique(recent).tolist())
        row_of = state.row_of
        found = sorted(
            number
            for number, customer in state.customers.items()
            if (after is None or number > after)
            and customer.created_at < when
            and (include_anonymised or customer.anonymised_at is None)
            and row_of[number] not in active
        )
        return found[:limit]

    def iter_all(self, batch_size: int = 1000) -> Iterator[Customer]:
        self._context.check_active()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be a positive integer")
        for number in sorted(self._state.customers):
            yield _copy(self._state.customers[number])
