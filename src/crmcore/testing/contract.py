"""The adapter contract: what every crmcore store must do, as test cases you can inherit.

:mod:`crmcore.ports` says in prose what a store must do; this module says it in executable
form. Apply it to an adapter by subclassing :class:`StoreContract` in a test module and
telling it how to make a fresh, empty store::

    from crmcore.testing.contract import StoreContract
    from my_adapter import MyStore

    class TestMyStore(StoreContract):
        def make_store(self):
            return MyStore.connect("...")

        def close_store(self, store):   # optional: release what make_store took
            store.drop_everything()

pytest collects every ``test_*`` method of the subclass. crmcore applies the very same class
to the in-memory store, SQLite (file and ``:memory:``), PostgreSQL and MariaDB, so a
third-party adapter that passes it behaves like crmcore's own.

Property-style cases use :mod:`crmcore.testing.strategies` with modest example counts
(:data:`PROPERTY_SETTINGS`) so that running the contract on several backends stays fast; each
case makes one store and keeps its examples independent of each other (fresh numbers, fresh
ids), so a slow-to-create store is created once per test, not once per example.

Importing this module imports pytest and hypothesis (they are test dependencies, the
``[testing]`` extra); importing :mod:`crmcore` never does.
"""

from __future__ import annotations

import abc
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmcore.clock import FixedClock
from crmcore.domain import (
    CrmNumber,
    Customer,
    CustomerAggregate,
    CustomerErased,
    CustomerRegistered,
    Direction,
    DomainEvent,
    EmailAddress,
    Interaction,
    InteractionChannel,
    InteractionKind,
    LifecycleStage,
    Money,
    PersonName,
    PhoneNumber,
    SalesChannel,
    Segment,
    SegmentMembership,
    Transaction,
    TransactionKind,
    TransactionLine,
)
from crmcore.errors import (
    ConcurrencyError,
    DuplicateError,
    ErasedError,
    InvalidTransition,
    NotFound,
    ValidationError,
)
from crmcore.ports import Store, UnitOfWork
from crmcore.services import Crm
from crmcore.testing import strategies as cst

__all__ = ["PROPERTY_SETTINGS", "StoreContract"]

T = TypeVar("T")

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    # The store fixture is function-scoped on purpose (examples are independent of each
    # other), and one contract method runs on many subclasses (one per backend): the
    # examples are valid for every backend, so sharing them in the database is harmless.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)
"""Hypothesis settings of the contract's property cases: few examples, no deadline."""

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
"""A fixed instant the example-based cases build their timestamps from."""
ONE_DAY = dt.timedelta(days=1)


class _Boom(Exception):
    """Raised inside a unit of work to prove that a failed unit leaves no trace."""


def _write(store: Store, action: Callable[[UnitOfWork], T]) -> T:
    """Run ``action`` in a unit of work and commit it."""
    with store.unit_of_work() as uow:
        result = action(uow)
        uow.commit()
    return result


def _read(store: Store, action: Callable[[UnitOfWork], T]) -> T:
    """Run ``action`` in a unit of work that commits nothing."""
    with store.unit_of_work() as uow:
        return action(uow)


def _get(store: Store, number: CrmNumber) -> Customer:
    with store.unit_of_work() as uow:
        return uow.customers.get(number)


def _get_transaction(store: Store, transaction_id: uuid.UUID) -> Transaction:
    with store.unit_of_work() as uow:
        return uow.transactions.get(transaction_id)


def _record(store: Store, item: Interaction | Transaction) -> bool:
    """Add one interaction or transaction in its own committed unit of work."""
    with store.unit_of_work() as uow:
        if isinstance(item, Transaction):
            created = uow.transactions.add(item)
        else:
            created = uow.interactions.add(item)
        uow.commit()
    return created


def _customer(store: Store, **changes: Any) -> Customer:
    """A minimal valid customer with a freshly allocated number of ``store``."""
    fields: dict[str, Any] = {
        "number": store.scheme.format(store.allocator.allocate()),
        "name": PersonName(given="Ann", family="Lee"),
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Customer(**fields)


def _register(store: Store, **changes: Any) -> Customer:
    customer = _customer(store, **changes)
    _write(store, lambda uow: uow.customers.add(customer))
    return customer


def _interaction(number: CrmNumber, at: dt.datetime = T0, **changes: Any) -> Interaction:
    fields: dict[str, Any] = {
        "customer": number,
        "occurred_at": at,
        "channel": InteractionChannel.PHONE,
        "direction": Direction.INBOUND,
        "kind": InteractionKind.INQUIRY,
    }
    fields.update(changes)
    return Interaction(**fields)


def _transaction(
    store: Store,
    number: CrmNumber,
    at: dt.datetime = T0,
    minor: int = 1000,
    kind: TransactionKind = TransactionKind.PURCHASE,
    **changes: Any,
) -> Transaction:
    amount = Money.from_minor_units(minor, store.reporting_currency)
    fields: dict[str, Any] = {
        "customer": number,
        "occurred_at": at,
        "kind": kind,
        "total": amount,
        "reporting_total": amount,
    }
    fields.update(changes)
    return Transaction(**fields)


def _with_reporting_total(store: Store, tx: Transaction) -> Transaction:
    """Give a generated transaction a reporting total in the store's currency."""
    minor = max(1, tx.total.minor_units % 10**9)
    return attrs.evolve(tx, reporting_total=Money.from_minor_units(minor, store.reporting_currency))


def _fold(number: CrmNumber, history: list[Interaction | Transaction]) -> CustomerAggregate:
    aggregate = CustomerAggregate(customer=number)
    for item in history:
        if isinstance(item, Transaction):
            aggregate = aggregate.with_transaction(item)
        else:
            aggregate = aggregate.with_interaction(item)
    return aggregate


def _is_utc(value: dt.datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)


class StoreContract(abc.ABC):
    """The behaviour every :class:`~crmcore.ports.Store` must have, as pytest test methods.

    Subclass it in a test module (the subclass's name must start with ``Test``) and implement
    :meth:`make_store`; override :meth:`close_store` if a store holds resources. Each test
    gets a fresh store through the :meth:`store` fixture.
    """

    @abc.abstractmethod
    def make_store(self) -> Store:
        """Return a new, empty store (reporting currency and scheme of your choice)."""

    def close_store(self, store: Store) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release what :meth:`make_store` acquired (default: nothing)."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        """A fresh store for one test, closed afterwards."""
        store = self.make_store()
        try:
            yield store
        finally:
            self.close_store(store)

    # -- number allocation -------------------------------------------------------------------

    def test_allocated_sequences_are_unique_and_format_under_the_scheme(self, store: Store) -> None:
        singles = [store.allocator.allocate() for _ in range(50)]
        batch = list(store.allocator.allocate_many(100))
        every = singles + batch
        assert len(batch) == 100
        assert len(set(every)) == len(every)
        assert all(isinstance(s, int) and s >= 1 for s in every)
        for sequence in every:
            number = store.scheme.format(sequence)
            assert store.scheme.parse(number.value) == number
        assert list(store.allocator.allocate_many(0)) == []

    def test_numbers_are_never_reused_after_erase(self, store: Store) -> None:
        erased = _register(store)
        _write(store, lambda uow: uow.customers.erase(erased.number))
        later = {store.scheme.format(s) for s in store.allocator.allocate_many(20)}
        assert erased.number not in later
        with pytest.raises(DuplicateError):
            _write(store, lambda uow: uow.customers.add(_customer(store, number=erased.number)))

    def test_a_sequence_taken_by_a_rolled_back_unit_is_not_handed_out_again(
        self, store: Store
    ) -> None:
        with store.unit_of_work() as uow:
            taken = store.allocator.allocate()
            uow.customers.add(_customer(store, number=store.scheme.format(taken)))
        assert store.allocator.allocate() != taken

    # -- customers: add, get, find -----------------------------------------------------------

    @PROPERTY_SETTINGS
    @given(customer=cst.customers())
    def test_a_stored_customer_reads_back_equal(self, store: Store, customer: Customer) -> None:
        customer = attrs.evolve(customer, number=store.scheme.format(store.allocator.allocate()))
        if customer.external_id is not None:
            customer.external_id = f"{customer.external_id}-{customer.number.value}"
        _write(store, lambda uow: uow.customers.add(customer))
        loaded = _read(store, lambda uow: uow.customers.get(customer.number))
        assert loaded == customer
        assert loaded.version == 0
        assert _is_utc(loaded.created_at) and _is_utc(loaded.updated_at)
        assert all(_is_utc(c.at) for c in loaded.consents)

    def test_get_of_an_unknown_number_raises_not_found(self, store: Store) -> None:
        unknown = store.scheme.format(store.allocator.allocate())
        with pytest.raises(NotFound) as caught:
            _read(store, lambda uow: uow.customers.get(unknown))
        assert not isinstance(caught.value, ErasedError)
        assert _read(store, lambda uow: uow.customers.find(unknown)) is None

    def test_get_of_an_erased_customer_raises_erased_error(self, store: Store) -> None:
        customer = _register(store)
        _write(store, lambda uow: uow.customers.erase(customer.number))
        with pytest.raises(ErasedError):
            _read(store, lambda uow: uow.customers.get(customer.number))
        assert _read(store, lambda uow: uow.customers.find(customer.number)) is None

    def test_adding_a_taken_number_raises_duplicate_and_keeps_the_first(self, store: Store) -> None:
        first = _register(store, name=PersonName(display="First"))
        second = _customer(store, number=first.number, name=PersonName(display="Second"))
        with pytest.raises(DuplicateError):
            _write(store, lambda uow: uow.customers.add(second))
        assert _read(store, lambda uow: uow.customers.get(first.number)) == first

    def test_adding_a_taken_external_id_raises_duplicate(self, store: Store) -> None:
        _register(store, source="erp", external_id="E-1")
        clash = _customer(store, source="erp", external_id="E-1")
        with pytest.raises(DuplicateError):
            _write(store, lambda uow: uow.customers.add(clash))
        assert _read(store, lambda uow: uow.customers.find(clash.number)) is None
        # The same external id from another source is another record.
        other = _register(store, source="webshop", external_id="E-1")
        found = _read(store, lambda uow: uow.customers.find_by_external_id("webshop", "E-1"))
        assert found == other

    def test_returned_customers_are_copies(self, store: Store) -> None:
        customer = _register(store, tags=frozenset({"vip"}))
        loaded = _read(store, lambda uow: uow.customers.get(customer.number))
        loaded.tags = frozenset({"changed"})
        loaded.name = PersonName(display="Changed")
        assert _read(store, lambda uow: uow.customers.get(customer.number)) == customer

    def test_add_many_stores_every_customer(self, store: Store) -> None:
        batch = [_customer(store, source="crm", external_id=f"X{i}") for i in range(7)]
        _write(store, lambda uow: uow.customers.add_many(batch))
        assert _read(store, lambda uow: uow.customers.count()) == 7
        for customer in batch:
            assert _get(store, customer.number) == customer

    def test_add_many_rejects_repeats_within_the_batch_and_stores_nothing(
        self, store: Store
    ) -> None:
        one = _customer(store, source="crm", external_id="same")
        two = _customer(store, source="crm", external_id="same")
        with pytest.raises(DuplicateError):
            _write(store, lambda uow: uow.customers.add_many([one, two]))
        again = _customer(store)
        with pytest.raises(DuplicateError):
            _write(store, lambda uow: uow.customers.add_many([again, attrs.evolve(again)]))
        assert _read(store, lambda uow: uow.customers.count()) == 0

    # -- customers: update -------------------------------------------------------------------

    def test_update_writes_changes_and_bumps_the_version(self, store: Store) -> None:
        customer = _register(store)
        loaded = _read(store, lambda uow: uow.customers.get(customer.number))
        loaded.organisation = "Acme"
        loaded.emails = (EmailAddress("ann@acme.example"),)
        loaded.updated_at = T0 + dt.timedelta(days=1)
        _write(store, lambda uow: uow.customers.update(loaded))
        assert loaded.version == 1
        stored = _read(store, lambda uow: uow.customers.get(customer.number))
        assert stored == loaded
        # The same object can be changed and updated again.
        loaded.organisation = "Acme Ltd"
        _write(store, lambda uow: uow.customers.update(loaded))
        assert _read(store, lambda uow: uow.customers.get(customer.number)).version == 2

    def test_a_stale_update_raises_concurrency_error_and_overwrites_nothing(
        self, store: Store
    ) -> None:
        customer = _register(store)
        mine = _read(store, lambda uow: uow.customers.get(customer.number))
        theirs = _read(store, lambda uow: uow.customers.get(customer.number))
        theirs.organisation = "Theirs"
        _write(store, lambda uow: uow.customers.update(theirs))
        mine.organisation = "Mine"
        with pytest.raises(ConcurrencyError):
            _write(store, lambda uow: uow.customers.update(mine))
        stored = _read(store, lambda uow: uow.customers.get(customer.number))
        assert stored.organisation == "Theirs"
        assert stored.version == 1

    def test_update_of_an_unknown_customer_raises_not_found(self, store: Store) -> None:
        ghost = _customer(store)
        with pytest.raises(NotFound):
            _write(store, lambda uow: uow.customers.update(ghost))
        assert _read(store, lambda uow: uow.customers.count()) == 0

    def test_update_to_a_taken_external_id_raises_duplicate(self, store: Store) -> None:
        _register(store, source="erp", external_id="A")
        other = _register(store, source="erp", external_id="B")
        changed = _read(store, lambda uow: uow.customers.get(other.number))
        changed.external_id = "A"
        with pytest.raises(DuplicateError):
            _write(store, lambda uow: uow.customers.update(changed))
        assert _read(store, lambda uow: uow.customers.get(other.number)) == other

    def test_update_moves_the_lookup_keys(self, store: Store) -> None:
        customer = _register(
            store,
            emails=(EmailAddress("old@example.com"),),
            phones=(PhoneNumber("+12025550100"),),
            source="erp",
            external_id="OLD",
        )
        loaded = _read(store, lambda uow: uow.customers.get(customer.number))
        loaded.emails = (EmailAddress("new@example.com"),)
        loaded.phones = (PhoneNumber("+12025550199"),)
        loaded.external_id = "NEW"
        _write(store, lambda uow: uow.customers.update(loaded))

        def lookups(uow: UnitOfWork) -> tuple[Any, ...]:
            c = uow.customers
            return (
                [x.number for x in c.find_by_email("old@example.com")],
                [x.number for x in c.find_by_email("new@example.com")],
                [x.number for x in c.find_by_phone("+12025550100")],
                [x.number for x in c.find_by_phone("+12025550199")],
                c.find_by_external_id("erp", "OLD"),
                getattr(c.find_by_external_id("erp", "NEW"), "number", None),
            )

        n = customer.number
        assert _read(store, lookups) == ([], [n], [], [n], None, n)

    # -- customers: lookups and listings ----------------------------------------------------

    def test_find_by_email_is_case_insensitive_and_ordered_by_number(self, store: Store) -> None:
        first = _register(store, emails=(EmailAddress("Ann.Lee@Example.COM"),))
        second = _register(
            store, emails=(EmailAddress("x@example.org"), EmailAddress("ann.lee@example.com"))
        )
        _register(store, emails=(EmailAddress("someone@example.com"),))
        for text in ("ann.lee@example.com", "ANN.LEE@EXAMPLE.COM", " Ann.Lee@example.com "):
            with store.unit_of_work() as uow:
                found = uow.customers.find_by_email(text)
            assert [c.number for c in found] == sorted([first.number, second.number])
        assert _read(store, lambda uow: uow.customers.find_by_email("nobody@example.com")) == []
        assert _read(store, lambda uow: uow.customers.find_by_email("not an address")) == []
        found = _read(store, lambda uow: uow.customers.find_by_email("ann.lee@example.com"))
        assert found[0] == first

    def test_find_by_phone_and_by_external_id(self, store: Store) -> None:
        one = _register(store, phones=(PhoneNumber("+12025550123"),))
        two = _register(
            store,
            phones=(PhoneNumber("+4930123456"), PhoneNumber("+12025550123")),
            source="erp",
            external_id="K-9",
        )
        found = _read(store, lambda uow: uow.customers.find_by_phone("+12025550123"))
        assert [c.number for c in found] == sorted([one.number, two.number])
        assert _read(store, lambda uow: uow.customers.find_by_phone("+4930123456")) == [two]
        assert _read(store, lambda uow: uow.customers.find_by_phone("+4930123457")) == []
        assert _read(store, lambda uow: uow.customers.find_by_external_id("erp", "K-9")) == two
        assert _read(store, lambda uow: uow.customers.find_by_external_id("erp", "k-9")) is None
        assert _read(store, lambda uow: uow.customers.find_by_external_id("crm", "K-9")) is None

    def test_count_numbers_and_iter_all_exclude_erased_and_ascend(self, store: Store) -> None:
        sequences = list(store.allocator.allocate_many(7))
        customers = [_customer(store, number=store.scheme.format(s)) for s in sequences]
        # Insert out of order: listings must still ascend by number.
        for customer in reversed(customers):
            with store.unit_of_work() as uow:
                uow.customers.add(customer)
                uow.commit()
        _write(store, lambda uow: uow.customers.erase(customers[2].number))
        alive = sorted(c.number for c in customers if c is not customers[2])
        assert _read(store, lambda uow: uow.customers.count()) == 6
        assert list(_read(store, lambda uow: uow.customers.numbers())) == alive
        for batch_size in (1, 2, 4, 1000):
            with store.unit_of_work() as uow:
                listed = list(uow.customers.iter_all(batch_size))
            assert [c.number for c in listed] == alive
        by_number = {c.number: c for c in customers}
        listed = _read(store, lambda uow: list(uow.customers.iter_all(3)))
        assert listed == [by_number[n] for n in alive]

    def test_customer_repositories_check_their_input(self, store: Store) -> None:
        customer = _register(store)
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError) as info:
                uow.customers.get(customer.number.value)  # type: ignore[arg-type]
            assert info.value.field == "number"
            for bad in (0, -1, True, "10"):
                with pytest.raises(ValidationError) as info:
                    list(uow.customers.iter_all(bad))  # type: ignore[arg-type]
                assert info.value.field == "batch_size"
        # Cross-field rules are checked before storing (single fields on assignment).
        unsourced = _customer(store)
        unsourced.external_id = "X-1"
        with pytest.raises(ValidationError) as info:
            _write(store, lambda uow: uow.customers.add(unsourced))
        assert info.value.field == "source"
        with pytest.raises(ValidationError) as info:
            _write(store, lambda uow: uow.customers.add_many([_customer(store), unsourced]))
        assert info.value.field == "source"
        backdated = _get(store, customer.number)
        backdated.updated_at = T0 - ONE_DAY
        with pytest.raises(ValidationError) as info:
            _write(store, lambda uow: uow.customers.update(backdated))
        assert info.value.field == "updated_at"
        assert _read(store, lambda uow: uow.customers.count()) == 1
        assert _get(store, customer.number) == customer

    def test_an_empty_store_lists_nothing(self, store: Store) -> None:
        assert _read(store, lambda uow: uow.customers.count()) == 0
        assert list(_read(store, lambda uow: uow.customers.numbers())) == []
        assert _read(store, lambda uow: list(uow.customers.iter_all())) == []
        assert list(_read(store, lambda uow: uow.segments.list())) == []

    # -- interactions and transactions -------------------------------------------------------

    @PROPERTY_SETTINGS
    @given(interaction=cst.interactions())
    def test_a_stored_interaction_reads_back_equal(
        self, store: Store, interaction: Interaction
    ) -> None:
        customer = _register(store)
        stored = attrs.evolve(interaction, customer=customer.number, id=uuid.uuid4())
        if stored.external_ref is not None:
            stored = attrs.evolve(stored, external_ref=f"{stored.external_ref}-{stored.id}")
        assert _write(store, lambda uow: uow.interactions.add(stored)) is True
        loaded = _read(store, lambda uow: uow.interactions.get(stored.id))
        assert loaded == stored
        assert _is_utc(loaded.occurred_at)
        assert loaded.follow_up_due is None or _is_utc(loaded.follow_up_due)
        assert _read(store, lambda uow: list(uow.interactions.for_customer(customer.number))) == [
            stored
        ]
        if stored.external_ref is not None:
            assert stored.source is not None
            found = _read(
                store,
                lambda uow: uow.interactions.find_by_external_ref(
                    stored.source,  # type: ignore[arg-type]
                    stored.external_ref,  # type: ignore[arg-type]
                ),
            )
            assert found == stored

    @PROPERTY_SETTINGS
    @given(transaction=cst.transactions())
    def test_a_stored_transaction_reads_back_equal(
        self, store: Store, transaction: Transaction
    ) -> None:
        customer = _register(store)
        stored = _with_reporting_total(
            store, attrs.evolve(transaction, customer=customer.number, id=uuid.uuid4())
        )
        if stored.external_ref is not None:
            stored = attrs.evolve(stored, external_ref=f"{stored.external_ref}-{stored.id}")
        assert _write(store, lambda uow: uow.transactions.add(stored)) is True
        loaded = _read(store, lambda uow: uow.transactions.get(stored.id))
        assert loaded == stored
        assert loaded.total.minor_units == stored.total.minor_units
        assert loaded.total.currency == stored.total.currency
        assert _is_utc(loaded.occurred_at)
        assert _read(store, lambda uow: list(uow.transactions.for_customer(customer.number))) == [
            stored
        ]

    def test_history_of_an_unknown_customer_raises_not_found(self, store: Store) -> None:
        ghost = store.scheme.format(store.allocator.allocate())
        with pytest.raises(NotFound):
            _write(store, lambda uow: uow.interactions.add(_interaction(ghost)))
        with pytest.raises(NotFound):
            _write(store, lambda uow: uow.transactions.add(_transaction(store, ghost)))
        with pytest.raises(NotFound):
            _read(store, lambda uow: uow.aggregates.get(ghost))

    def test_get_of_unknown_history_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            _read(store, lambda uow: uow.interactions.get(uuid.uuid4()))
        with pytest.raises(NotFound):
            _read(store, lambda uow: uow.transactions.get(uuid.uuid4()))
        assert _read(store, lambda uow: uow.interactions.find_by_external_ref("a", "b")) is None
        assert _read(store, lambda uow: uow.transactions.find_by_external_ref("a", "b")) is None

    def test_a_taken_history_id_raises_duplicate(self, store: Store) -> None:
        customer = _register(store)
        interaction = _interaction(customer.number)
        transaction = _transaction(store, customer.number)
        _write(store, lambda uow: uow.interactions.add(interaction))
        _write(store, lambda uow: uow.transactions.add(transaction))
        with pytest.raises(DuplicateError):
            _write(
                store,
                lambda uow: uow.interactions.add(
                    attrs.evolve(interaction, occurred_at=T0 + dt.timedelta(hours=1))
                ),
            )
        with pytest.raises(DuplicateError):
            _write(
                store,
                lambda uow: uow.transactions.add(
                    attrs.evolve(transaction, occurred_at=T0 - ONE_DAY)
                ),
            )
        aggregate = _read(store, lambda uow: uow.aggregates.get(customer.number))
        assert (aggregate.interaction_count, aggregate.purchase_count) == (1, 1)

    def test_recording_an_external_ref_twice_writes_nothing_the_second_time(
        self, store: Store
    ) -> None:
        customer = _register(store)
        n = customer.number
        first_tx = _transaction(store, n, source="erp", external_ref="INV-1")
        retry_tx = _transaction(store, n, T0 + dt.timedelta(days=3), 999_999, source="erp")
        retry_tx = attrs.evolve(retry_tx, external_ref="INV-1")
        first_ix = _interaction(n, source="helpdesk", external_ref="T-1")
        retry_ix = _interaction(
            n, T0 + dt.timedelta(days=3), kind=InteractionKind.COMPLAINT, source="helpdesk"
        )
        retry_ix = attrs.evolve(retry_ix, external_ref="T-1")
        assert _write(store, lambda uow: uow.transactions.add(first_tx)) is True
        assert _write(store, lambda uow: uow.interactions.add(first_ix)) is True
        before = _read(store, lambda uow: uow.aggregates.get(n))
        assert _write(store, lambda uow: uow.transactions.add(retry_tx)) is False
        assert _write(store, lambda uow: uow.interactions.add(retry_ix)) is False
        # Retrying the very same record (same id too) is also "already recorded".
        assert _write(store, lambda uow: uow.transactions.add(first_tx)) is False
        assert _write(store, lambda uow: uow.interactions.add(first_ix)) is False
        assert _read(store, lambda uow: uow.aggregates.get(n)) == before
        assert _read(store, lambda uow: list(uow.transactions.for_customer(n))) == [first_tx]
        assert _read(store, lambda uow: list(uow.interactions.for_customer(n))) == [first_ix]
        with pytest.raises(NotFound):
            _read(store, lambda uow: uow.transactions.get(retry_tx.id))
        found = _read(store, lambda uow: uow.transactions.find_by_external_ref("erp", "INV-1"))
        assert found == first_tx
        # The same reference from another source is another record.
        other = _transaction(store, n, source="webshop", external_ref="INV-1")
        assert _write(store, lambda uow: uow.transactions.add(other)) is True

    def test_history_is_newest_first_with_ties_by_id_limit_and_before(self, store: Store) -> None:
        customer = _register(store)
        other = _register(store)
        n = customer.number
        times = [T0 + dt.timedelta(hours=h) for h in (5, 1, 3, 3, 3, 0)]
        ixs = [_interaction(n, t) for t in times]
        txs = [_transaction(store, n, t) for t in times]
        _write(store, lambda uow: uow.interactions.add_many(ixs))
        _write(store, lambda uow: uow.transactions.add_many(txs))
        _write(store, lambda uow: uow.interactions.add(_interaction(other.number)))
        _write(store, lambda uow: uow.transactions.add(_transaction(store, other.number)))
        cut = T0 + dt.timedelta(hours=3)
        # ``before`` in another offset is the same instant.
        shifted = cut.astimezone(dt.timezone(dt.timedelta(hours=-7)))
        items: list[Interaction] | list[Transaction]
        for items in (ixs, txs):
            expected: list[Any] = sorted(
                items, key=lambda i: (i.occurred_at, i.id.int), reverse=True
            )
            before = [i for i in expected if i.occurred_at < cut]
            with store.unit_of_work() as uow:
                repo: Any = uow.interactions if items is ixs else uow.transactions
                assert list(repo.for_customer(n)) == expected
                assert list(repo.for_customer(n, limit=2)) == expected[:2]
                assert list(repo.for_customer(n, limit=0)) == []
                assert list(repo.for_customer(n, before=cut)) == before
                assert list(repo.for_customer(n, before=shifted, limit=1)) == before[:1]

    def test_any_uuid_is_stored_as_is_and_ties_break_by_its_integer_value(
        self, store: Store
    ) -> None:
        # Ids of every shape: nil and all-ones, time-based (v1, whose groups some databases
        # reorder), version 0 and variant bits a database might reject, random ones.
        ids = [
            uuid.UUID(int=0),
            uuid.UUID(int=2**128 - 1),
            uuid.UUID("0123456789abcdef0123456789abcdef"),
            uuid.UUID("fedcba9876543210fedcba9876543210"),
            uuid.UUID("00000001-0002-1003-8004-000000000005"),
            uuid.UUID("ffffffff-0000-1000-8000-000000000000"),
            uuid.UUID("00000000-ffff-1000-8000-000000000000"),
            uuid.UUID("12345678-1234-7234-f234-123456789abc"),
            uuid.uuid4(),
        ]
        customer = _register(store)
        n = customer.number
        ixs = [_interaction(n, id=i) for i in ids]
        txs = [_transaction(store, n, id=i) for i in ids]
        assert _write(store, lambda uow: uow.interactions.add_many(ixs)) == len(ids)
        assert _write(store, lambda uow: uow.transactions.add_many(txs)) == len(ids)
        items: list[Interaction] | list[Transaction]
        for items in (ixs, txs):
            expected: list[Any] = sorted(items, key=lambda i: i.id.int, reverse=True)
            with store.unit_of_work() as uow:
                repo: Any = uow.interactions if items is ixs else uow.transactions
                assert list(repo.for_customer(n)) == expected
                for k in (1, 3, 5):
                    assert list(repo.for_customer(n, limit=k)) == expected[:k]
                assert [repo.get(i).id for i in ids] == ids

    def test_the_longest_texts_and_documents_round_trip_exactly(self, store: Store) -> None:
        # Well past 64 KB each once encoded (a 4-byte character 20,000 times is 80 KB).
        customer = _register(
            store,
            attributes={f"a{i}": "😀" * 2000 for i in range(12)},
            tags=frozenset({f"t{i}" for i in range(50)}),
        )
        n = customer.number
        notes = "😀" * 20_000
        ix = _interaction(n, notes=notes)
        unit = Money.from_minor_units(199, store.reporting_currency)
        lines = tuple(
            TransactionLine(f"SKU-{i:04d}-{'x' * 90}", Decimal("1.5"), unit, "é😀" * 250)
            for i in range(150)
        )
        tx = _transaction(store, n, lines=lines)
        assert _record(store, ix) is True
        assert _record(store, tx) is True
        assert _get(store, n) == customer
        stored_ix = _read(store, lambda uow: uow.interactions.get(ix.id))
        assert stored_ix == ix and stored_ix.notes == notes
        stored_tx = _get_transaction(store, tx.id)
        assert stored_tx == tx and stored_tx.lines == lines

    def test_add_many_counts_new_records_and_the_first_of_a_repeat_wins(self, store: Store) -> None:
        customer = _register(store)
        n = customer.number
        _write(
            store,
            lambda uow: uow.transactions.add(
                _transaction(store, n, source="erp", external_ref="OLD")
            ),
        )
        first = _transaction(store, n, T0, 100, source="erp", external_ref="NEW")
        repeat = _transaction(store, n, T0, 700, source="erp", external_ref="NEW")
        plain = _transaction(store, n, T0, 50)
        batch = [
            _transaction(store, n, T0, 1, source="erp", external_ref="OLD"),
            first,
            repeat,
            plain,
        ]
        assert _write(store, lambda uow: uow.transactions.add_many(batch)) == 2
        assert _write(store, lambda uow: uow.transactions.add_many([])) == 0
        found = _read(store, lambda uow: uow.transactions.find_by_external_ref("erp", "NEW"))
        assert found == first
        aggregate = _read(store, lambda uow: uow.aggregates.get(n))
        assert aggregate.purchase_count == 3
        assert aggregate.purchase_minor == 1000 + 100 + 50

        ix_first = _interaction(n, source="helpdesk", external_ref="A")
        ix_repeat = _interaction(n, kind=InteractionKind.COMPLAINT, source="helpdesk")
        ix_repeat = attrs.evolve(ix_repeat, external_ref="A")
        ix_batch = [ix_first, ix_repeat, _interaction(n), ix_first]
        assert _write(store, lambda uow: uow.interactions.add_many(ix_batch)) == 2
        aggregate = _read(store, lambda uow: uow.aggregates.get(n))
        assert (aggregate.interaction_count, aggregate.complaint_count) == (2, 0)

    def test_a_transaction_without_reporting_total_is_rejected(self, store: Store) -> None:
        customer = _register(store)
        tx = attrs.evolve(_transaction(store, customer.number), reporting_total=None)
        with pytest.raises(ValidationError):
            _write(store, lambda uow: uow.transactions.add(tx))
        with pytest.raises(ValidationError):
            _write(store, lambda uow: uow.transactions.add_many([tx]))
        assert _read(store, lambda uow: uow.aggregates.get(customer.number)).purchase_count == 0

    # -- aggregates --------------------------------------------------------------------------

    def test_a_customer_without_history_has_an_all_zero_aggregate(self, store: Store) -> None:
        customer = _register(store)
        aggregate = _read(store, lambda uow: uow.aggregates.get(customer.number))
        assert aggregate == CustomerAggregate(customer=customer.number)

    def test_aggregates_fold_purchases_refunds_and_interactions(self, store: Store) -> None:
        customer = _register(store)
        n = customer.number
        late, early = T0 + dt.timedelta(days=30), T0 - dt.timedelta(days=30)
        history: list[Interaction | Transaction] = [
            _transaction(store, n, T0, 1500),
            _transaction(store, n, late, 250, TransactionKind.REFUND),  # refunds move no dates
            _transaction(store, n, early, 700),
            _interaction(n, late, kind=InteractionKind.COMPLAINT),
            _interaction(n, early),
        ]
        for item in history:
            _record(store, item)
        aggregate = _read(store, lambda uow: uow.aggregates.get(n))
        assert aggregate == CustomerAggregate(
            customer=n,
            purchase_count=2,
            refund_count=1,
            purchase_minor=2200,
            refund_minor=250,
            first_purchase_at=early,
            last_purchase_at=T0,
            interaction_count=2,
            complaint_count=1,
            last_interaction_at=late,
        )
        assert aggregate.net_minor == 1950

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_aggregates_equal_a_fold_of_the_history_in_any_order(
        self, store: Store, data: st.DataObject
    ) -> None:
        customer = _register(store)
        n = customer.number
        txs = data.draw(
            st.lists(
                cst.transactions(n, refund_probability=0.3, sources=None, with_lines=False),
                max_size=8,
                unique_by=lambda t: t.id,
            )
        )
        ixs = data.draw(
            st.lists(cst.interactions(n, sources=None), max_size=8, unique_by=lambda i: i.id)
        )
        # Fresh ids: examples share the store, and generated ids repeat across examples.
        txs = [_with_reporting_total(store, attrs.evolve(t, id=uuid.uuid4())) for t in txs]
        ixs = [attrs.evolve(i, id=uuid.uuid4()) for i in ixs]
        history: list[Interaction | Transaction] = data.draw(st.permutations([*txs, *ixs]))
        bulk = data.draw(st.booleans())
        if bulk:
            _write(store, lambda uow: uow.transactions.add_many(txs))
            _write(store, lambda uow: uow.interactions.add_many(ixs))
        else:
            for item in history:
                _record(store, item)
        assert _read(store, lambda uow: uow.aggregates.get(n)) == _fold(n, history)

    # -- erasure -----------------------------------------------------------------------------

    def test_erase_removes_personal_data_history_aggregates_and_memberships(
        self, store: Store
    ) -> None:
        gone = _register(
            store,
            emails=(EmailAddress("gone@example.com"),),
            phones=(PhoneNumber("+12025550111"),),
            source="erp",
            external_id="GONE",
        )
        kept = _register(store, emails=(EmailAddress("gone@example.com"),))
        ix = _interaction(gone.number, source="helpdesk", external_ref="H1")
        tx = _transaction(store, gone.number, source="erp", external_ref="R1")
        kept_tx = _transaction(store, kept.number, source="erp", external_ref="R2")
        run = SegmentMembership("vip", T0, frozenset({gone.number, kept.number}))

        def setup(uow: UnitOfWork) -> None:
            uow.interactions.add(ix)
            uow.transactions.add(tx)
            uow.transactions.add(kept_tx)
            uow.segments.save(Segment("vip", "frequency >= 1"))
            uow.segments.save_membership(run)

        _write(store, setup)
        _write(store, lambda uow: uow.customers.erase(gone.number))

        def after(uow: UnitOfWork) -> None:
            c = uow.customers
            assert [x.number for x in c.find_by_email("gone@example.com")] == [kept.number]
            assert c.find_by_phone("+12025550111") == []
            assert c.find_by_external_id("erp", "GONE") is None
            assert list(c.numbers()) == [kept.number]
            assert list(uow.interactions.for_customer(gone.number)) == []
            assert list(uow.transactions.for_customer(gone.number)) == []
            assert uow.interactions.find_by_external_ref("helpdesk", "H1") is None
            assert uow.transactions.find_by_external_ref("erp", "R1") is None
            assert uow.transactions.find_by_external_ref("erp", "R2") == kept_tx
            with pytest.raises(NotFound):
                uow.interactions.get(ix.id)
            with pytest.raises(NotFound):
                uow.transactions.get(tx.id)
            with pytest.raises(NotFound):
                uow.aggregates.get(gone.number)
            latest = uow.segments.latest_membership("vip")
            assert latest is not None
            assert latest.members == frozenset({kept.number})
            assert uow.aggregates.get(kept.number).purchase_count == 1

        _read(store, after)

    def test_erasing_twice_or_an_unknown_number_raises_not_found(self, store: Store) -> None:
        customer = _register(store)
        _write(store, lambda uow: uow.customers.erase(customer.number))
        with pytest.raises(ErasedError):
            _write(store, lambda uow: uow.customers.erase(customer.number))
        ghost = store.scheme.format(store.allocator.allocate())
        with pytest.raises(NotFound):
            _write(store, lambda uow: uow.customers.erase(ghost))
        with pytest.raises(NotFound):
            _write(store, lambda uow: uow.customers.update(customer))
        with pytest.raises(NotFound):
            _write(store, lambda uow: uow.interactions.add(_interaction(customer.number)))

    # -- segments ----------------------------------------------------------------------------

    def test_segments_save_replace_list_and_delete(self, store: Store) -> None:
        _write(store, lambda uow: uow.segments.save(Segment("zeta", "frequency >= 3")))
        _write(store, lambda uow: uow.segments.save(Segment("alpha", "recency_days <= 30")))
        replaced = Segment("zeta", "frequency >= 5", description="Frequent buyers ✓")
        _write(store, lambda uow: uow.segments.save(replaced))
        listed = _read(store, lambda uow: list(uow.segments.list()))
        assert [s.name for s in listed] == ["alpha", "zeta"]
        assert _read(store, lambda uow: uow.segments.get("zeta")) == replaced
        _write(store, lambda uow: uow.segments.delete("alpha"))
        with pytest.raises(NotFound):
            _read(store, lambda uow: uow.segments.get("alpha"))
        with pytest.raises(NotFound):
            _write(store, lambda uow: uow.segments.delete("alpha"))
        assert [s.name for s in _read(store, lambda uow: list(uow.segments.list()))] == ["zeta"]

    def test_membership_runs_latest_before_and_duplicates(self, store: Store) -> None:
        a, b = _register(store).number, _register(store).number
        _write(store, lambda uow: uow.segments.save(Segment("vip", "frequency >= 3")))
        runs = [
            SegmentMembership("vip", T0 + dt.timedelta(days=d), members)
            for d, members in ((2, frozenset({a, b})), (0, frozenset({a})), (1, frozenset()))
        ]
        for run in runs:
            with store.unit_of_work() as uow:
                uow.segments.save_membership(run)
                uow.commit()

        def latest(uow: UnitOfWork, before: dt.datetime | None = None) -> Any:
            return uow.segments.latest_membership("vip", before=before)

        assert _read(store, latest) == runs[0]
        assert _read(store, lambda uow: latest(uow, T0 + dt.timedelta(days=2))) == runs[2]
        assert _read(store, lambda uow: latest(uow, T0 + dt.timedelta(hours=1))) == runs[1]
        assert _read(store, lambda uow: latest(uow, T0)) is None
        shifted = (T0 + dt.timedelta(days=1, microseconds=1)).astimezone(
            dt.timezone(dt.timedelta(hours=9))
        )
        assert _read(store, lambda uow: latest(uow, shifted)) == runs[2]
        with pytest.raises(DuplicateError):
            _write(
                store,
                lambda uow: uow.segments.save_membership(
                    SegmentMembership("vip", T0, frozenset({b}))
                ),
            )
        with pytest.raises(NotFound):
            _write(
                store,
                lambda uow: uow.segments.save_membership(
                    SegmentMembership("nope", T0, frozenset())
                ),
            )
        assert _read(store, lambda uow: uow.segments.latest_membership("nope")) is None
        # Deleting a segment deletes its runs.
        _write(store, lambda uow: uow.segments.delete("vip"))
        _write(store, lambda uow: uow.segments.save(Segment("vip", "frequency >= 3")))
        assert _read(store, latest) is None

    # -- units of work -----------------------------------------------------------------------

    def _fill(self, store: Store, uow: UnitOfWork, existing: Customer) -> Customer:
        """Write one of everything in ``uow`` (used by the atomicity cases)."""
        new = _customer(store, source="erp", external_id="NEW")
        uow.customers.add(new)
        uow.interactions.add(_interaction(existing.number, source="helpdesk", external_ref="X"))
        uow.transactions.add(_transaction(store, existing.number, source="erp", external_ref="X"))
        uow.transactions.add_many([_transaction(store, new.number)])
        changed = uow.customers.get(existing.number)
        changed.organisation = "Changed"
        uow.customers.update(changed)
        uow.segments.save(Segment("vip", "frequency >= 3"))
        uow.segments.save_membership(SegmentMembership("vip", T0, frozenset({existing.number})))
        return new

    def _snapshot(self, store: Store, numbers: list[CrmNumber]) -> Any:
        def read(uow: UnitOfWork) -> Any:
            return (
                uow.customers.count(),
                list(uow.customers.numbers()),
                [uow.customers.find(n) for n in numbers],
                [uow.aggregates.get(n) for n in numbers if uow.customers.find(n)],
                [list(uow.interactions.for_customer(n)) for n in numbers],
                [list(uow.transactions.for_customer(n)) for n in numbers],
                uow.transactions.find_by_external_ref("erp", "X"),
                uow.interactions.find_by_external_ref("helpdesk", "X"),
                uow.customers.find_by_external_id("erp", "NEW"),
                list(uow.segments.list()),
                uow.segments.latest_membership("vip"),
            )

        return _read(store, read)

    def test_a_unit_that_raises_persists_nothing(self, store: Store) -> None:
        existing = _register(store)
        _write(store, lambda uow: uow.transactions.add(_transaction(store, existing.number)))
        before = self._snapshot(store, [existing.number])
        created: list[Customer] = []

        def failing_unit() -> None:
            with store.unit_of_work() as uow:
                created.append(self._fill(store, uow, existing))
                uow.customers.erase(existing.number)
                raise _Boom

        with pytest.raises(_Boom):
            failing_unit()
        assert self._snapshot(store, [existing.number]) == before
        assert _read(store, lambda uow: uow.customers.find(created[0].number)) is None

    def test_a_unit_left_without_commit_rolls_back(self, store: Store) -> None:
        existing = _register(store)
        before = self._snapshot(store, [existing.number])
        with store.unit_of_work() as uow:
            self._fill(store, uow, existing)
        assert self._snapshot(store, [existing.number]) == before
        with store.unit_of_work() as uow:
            self._fill(store, uow, existing)
            uow.rollback()
        assert self._snapshot(store, [existing.number]) == before

    def test_a_unit_reads_its_own_writes_and_commits_them_for_the_next(self, store: Store) -> None:
        existing = _register(store)
        with store.unit_of_work() as uow:
            new = self._fill(store, uow, existing)
            inside = (
                uow.customers.get(new.number),
                uow.customers.get(existing.number).organisation,
                uow.aggregates.get(existing.number).interaction_count,
                uow.segments.get("vip"),
            )
            uow.commit()
        after = _read(
            store,
            lambda uow: (
                uow.customers.get(new.number),
                uow.customers.get(existing.number).organisation,
                uow.aggregates.get(existing.number).interaction_count,
                uow.segments.get("vip"),
            ),
        )
        assert inside == after
        assert after[1] == "Changed"
        assert after[2] == 1

    def test_a_failed_stage_change_leaves_the_stored_customer_unchanged(self, store: Store) -> None:
        customer = _register(store, stage=LifecycleStage.LEAD)

        def two_changes() -> None:
            with store.unit_of_work() as uow:
                loaded = uow.customers.get(customer.number)
                loaded.change_stage(LifecycleStage.PROSPECT, T0)
                uow.customers.update(loaded)
                again = uow.customers.get(customer.number)
                again.change_stage(LifecycleStage.ACTIVE, T0)  # prospect -> active: illegal
                uow.customers.update(again)
                uow.commit()

        with pytest.raises(InvalidTransition):
            two_changes()
        assert _read(store, lambda uow: uow.customers.get(customer.number)) == customer

    def test_events_are_queued_and_cleared_by_rollback(self, store: Store) -> None:
        event = DomainEvent(at=T0)
        with store.unit_of_work() as uow:
            uow.add_event(event)
            uow.commit()
            assert uow.collect_events() == [event]
            assert uow.collect_events() == []
        with store.unit_of_work() as uow:
            uow.add_event(event)
            uow.rollback()
            assert uow.collect_events() == []

    def test_use_cases_publish_events_only_when_they_commit(self, store: Store) -> None:
        clock = FixedClock(T0)
        crm = Crm(store, clock=clock)
        seen: list[DomainEvent] = []
        crm.subscribe(seen.append)
        ann = crm.register("Ann Lee", emails=["ann@example.com"], source="erp", external_id="1")
        assert seen == [CustomerRegistered(at=T0, customer=ann.number)]
        with pytest.raises(DuplicateError):
            crm.register("Bob", source="erp", external_id="1")
        with pytest.raises(InvalidTransition):
            crm.change_stage(ann.number, LifecycleStage.REACTIVATED)
        assert len(seen) == 1
        crm.erase(ann.number)
        assert seen[-1] == CustomerErased(at=T0, customer=ann.number)
        assert len(seen) == 2

    # -- time and money ----------------------------------------------------------------------

    @PROPERTY_SETTINGS
    @given(at=cst.aware_datetimes(), micro=st.integers(0, 999_999))
    def test_timestamps_round_trip_to_the_microsecond_in_utc(
        self, store: Store, at: dt.datetime, micro: int
    ) -> None:
        instant = at.replace(microsecond=micro)
        customer = _register(store, created_at=instant, updated_at=instant)
        ix = _interaction(customer.number, instant, follow_up_due=instant)
        _write(store, lambda uow: uow.interactions.add(ix))
        loaded = _read(store, lambda uow: uow.customers.get(customer.number))
        loaded_ix = _read(store, lambda uow: uow.interactions.get(ix.id))
        for value in (loaded.created_at, loaded_ix.occurred_at, loaded_ix.follow_up_due):
            assert value == instant
            assert value is not None and _is_utc(value)
            assert value.microsecond == instant.astimezone(dt.UTC).microsecond
        aggregate = _read(store, lambda uow: uow.aggregates.get(customer.number))
        assert aggregate.last_interaction_at == instant

    def test_extreme_offsets_and_microseconds_round_trip(self, store: Store) -> None:
        instants = [
            dt.datetime(
                2031, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.timezone(-dt.timedelta(hours=12))
            ),
            dt.datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))),
            dt.datetime(
                2024,
                2,
                29,
                5,
                45,
                0,
                123_456,
                tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45)),
            ),
        ]
        customer = _register(store)
        txs = [_transaction(store, customer.number, at) for at in instants]
        _write(store, lambda uow: uow.transactions.add_many(txs))
        for tx in txs:
            loaded = _get_transaction(store, tx.id)
            assert loaded.occurred_at == tx.occurred_at
            assert _is_utc(loaded.occurred_at)
        aggregate = _read(store, lambda uow: uow.aggregates.get(customer.number))
        assert aggregate.first_purchase_at == min(instants)
        assert aggregate.last_purchase_at == max(instants)

    def test_money_keeps_exact_minor_units_in_every_currency(self, store: Store) -> None:
        customer = _register(store)
        amounts = [
            Money(Decimal("123456789"), "JPY"),
            Money(Decimal("1.001"), "KWD"),
            Money(Decimal("0.01"), "EUR"),
            Money(Decimal("99999999.99"), "EUR"),
            Money(Decimal("12.3456"), "CLF"),
            Money(Decimal("0.1"), "USD") + Money(Decimal("0.2"), "USD"),
        ]
        reporting = [Money.from_minor_units(m, store.reporting_currency) for m in (1, 3, 10**12)]
        txs = []
        for i, amount in enumerate(amounts):
            line = TransactionLine(sku="SKU-1", quantity=Decimal("1.5"), unit_price=amount)
            txs.append(
                Transaction(
                    customer=customer.number,
                    occurred_at=T0,
                    kind=TransactionKind.PURCHASE if i % 2 else TransactionKind.REFUND,
                    total=amount,
                    channel=SalesChannel.ONLINE,
                    lines=(line,),
                    reporting_total=reporting[i % len(reporting)],
                )
            )
        _write(store, lambda uow: uow.transactions.add_many(txs))
        for tx in txs:
            loaded = _get_transaction(store, tx.id)
            assert loaded == tx
            assert str(loaded.total) == str(tx.total)
            assert loaded.lines[0].unit_price.minor_units == tx.total.minor_units
            assert loaded.lines[0].quantity == Decimal("1.5")
        aggregate = _read(store, lambda uow: uow.aggregates.get(customer.number))
        purchases = [t.signed_reporting_minor for t in txs if t.kind is TransactionKind.PURCHASE]
        refunds = [-t.signed_reporting_minor for t in txs if t.kind is TransactionKind.REFUND]
        assert aggregate.purchase_minor == sum(purchases)
        assert aggregate.refund_minor == sum(refunds)
