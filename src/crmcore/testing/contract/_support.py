"""What every part of the contract shares: the store fixture, settings, builders and helpers.

Private to :mod:`crmcore.testing.contract`; the names here are not API.
"""

from __future__ import annotations

import abc
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from crmcore._epoch import MICROS_PER_DAY, to_us
from crmcore.analytics import FIELDS
from crmcore.clock import FixedClock
from crmcore.domain import (
    CrmNumber,
    Customer,
    CustomerAggregate,
    Direction,
    Interaction,
    InteractionChannel,
    InteractionKind,
    Money,
    PersonName,
    Transaction,
    TransactionKind,
)
from crmcore.ports import Store, UnitOfWork
from crmcore.services import Crm
from crmcore.testing import strategies as cst

__all__ = [
    "HISTORY_HIGH",
    "HISTORY_LOW",
    "HISTORY_TAGS",
    "ONE_DAY",
    "PROPERTY_SETTINGS",
    "T0",
    "Boom",
    "History",
    "StoreFixture",
    "fill_history",
    "fold",
    "get_customer",
    "get_transaction",
    "histories",
    "is_utc",
    "make_customer",
    "make_interaction",
    "make_transaction",
    "read",
    "record",
    "reference_rows",
    "register",
    "with_reporting_total",
    "write",
]

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


class Boom(Exception):
    """Raised inside a unit of work to prove that a failed unit leaves no trace."""


def write(store: Store, action: Callable[[UnitOfWork], T]) -> T:
    """Run ``action`` in a unit of work and commit it."""
    with store.unit_of_work() as uow:
        result = action(uow)
        uow.commit()
    return result


def read(store: Store, action: Callable[[UnitOfWork], T]) -> T:
    """Run ``action`` in a unit of work that commits nothing."""
    with store.unit_of_work() as uow:
        return action(uow)


def get_customer(store: Store, number: CrmNumber) -> Customer:
    with store.unit_of_work() as uow:
        return uow.customers.get(number)


def get_transaction(store: Store, transaction_id: uuid.UUID) -> Transaction:
    with store.unit_of_work() as uow:
        return uow.transactions.get(transaction_id)


def record(store: Store, item: Interaction | Transaction) -> bool:
    """Add one interaction or transaction in its own committed unit of work."""
    with store.unit_of_work() as uow:
        if isinstance(item, Transaction):
            created = uow.transactions.add(item)
        else:
            created = uow.interactions.add(item)
        uow.commit()
    return created


def make_customer(store: Store, **changes: Any) -> Customer:
    """A minimal valid customer with a freshly allocated number of ``store``."""
    fields: dict[str, Any] = {
        "number": store.scheme.format(store.allocator.allocate()),
        "name": PersonName(given="Ann", family="Lee"),
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Customer(**fields)


def register(store: Store, **changes: Any) -> Customer:
    customer = make_customer(store, **changes)
    write(store, lambda uow: uow.customers.add(customer))
    return customer


def make_interaction(number: CrmNumber, at: dt.datetime = T0, **changes: Any) -> Interaction:
    fields: dict[str, Any] = {
        "customer": number,
        "occurred_at": at,
        "channel": InteractionChannel.PHONE,
        "direction": Direction.INBOUND,
        "kind": InteractionKind.INQUIRY,
    }
    fields.update(changes)
    return Interaction(**fields)


def make_transaction(
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


def with_reporting_total(store: Store, tx: Transaction) -> Transaction:
    """Give a generated transaction a reporting total in the store's currency."""
    # Zero only for a free purchase, as Transaction requires; otherwise any positive amount.
    minor = 0 if tx.total.minor_units == 0 else max(1, tx.total.minor_units % 10**9)
    return attrs.evolve(tx, reporting_total=Money.from_minor_units(minor, store.reporting_currency))


def fold(number: CrmNumber, history: list[Interaction | Transaction]) -> CustomerAggregate:
    aggregate = CustomerAggregate(customer=number)
    for item in history:
        if isinstance(item, Transaction):
            aggregate = aggregate.with_transaction(item)
        else:
            aggregate = aggregate.with_interaction(item)
    return aggregate


def is_utc(value: dt.datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)


class StoreFixture(abc.ABC):
    """How a contract class gets its stores: implement :meth:`make_store`.

    The base of every contract class. Subclass a contract in a test module (the subclass's
    name must start with ``Test``) and implement :meth:`make_store`; override
    :meth:`close_store` if a store holds resources. Each test gets a fresh store through
    the :meth:`store` fixture.
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


# -- random histories for the analytics cases --------------------------------------------------

HISTORY_LOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
"""Earliest instant of a generated history."""
HISTORY_HIGH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
"""Latest instant of a generated history."""
HISTORY_TAGS = ("vip", "gold", "b2b", "früh", "%", "a_b", "早期")
"""The tags generated customers carry (rules test these and case and space variants)."""


@attrs.frozen
class History:
    """Customers and their history, to be recorded in an empty store, and an as-of instant."""

    customers: list[Customer]
    transactions: list[Transaction]
    interactions: list[Interaction]
    as_of: dt.datetime
    erase: bool
    """Whether the first customer is erased after recording (when there are several)."""


def _rfc(value: uuid.UUID) -> uuid.UUID:
    return uuid.UUID(int=value.int, version=4)


@st.composite
def _histories(draw: st.DrawFn, currency: str) -> History:
    customers = draw(
        st.lists(
            cst.customers(min_created=HISTORY_LOW, max_created=HISTORY_HIGH),
            min_size=1,
            max_size=12,
            # One customer per CRM number and per import key (stores refuse a second).
            unique_by=(lambda c: c.number, lambda c: (c.source, c.external_id or c.number.value)),
        )
    )
    for customer in customers:
        customer.owner = draw(st.none() | st.sampled_from(cst.RULE_TEXTS))
        customer.tags = frozenset(draw(st.lists(st.sampled_from(HISTORY_TAGS), max_size=3)))
    numbers = st.sampled_from([c.number for c in customers])
    # Few distinct days and amounts, so ties are common; refunds can exceed purchases.
    days = st.integers(0, 40).map(lambda d: HISTORY_HIGH - dt.timedelta(days=d * 7, hours=d % 5))
    transactions = draw(
        st.lists(
            cst.transactions(
                numbers,
                currency=currency,
                min_occurred=HISTORY_LOW,
                max_occurred=HISTORY_HIGH,
                with_lines=False,
            ),
            max_size=30,
        )
    )
    transactions = [
        attrs.evolve(tx, occurred_at=draw(days)) if draw(st.booleans()) else tx
        for tx in transactions
    ]
    # MariaDB's native UUID column rejects ids whose variant bits are not RFC 4122's (an
    # adapter limitation reported separately); real ids are uuid4.
    transactions = [attrs.evolve(tx, id=_rfc(tx.id)) for tx in transactions]
    interactions = [
        attrs.evolve(i, id=_rfc(i.id))
        for i in draw(
            st.lists(
                cst.interactions(numbers, min_occurred=HISTORY_LOW, max_occurred=HISTORY_HIGH),
                max_size=15,
            )
        )
    ]
    as_of = draw(
        st.sampled_from(
            [HISTORY_HIGH + dt.timedelta(days=1), HISTORY_HIGH + dt.timedelta(microseconds=1)]
        )
        | cst.aware_datetimes(min_value=HISTORY_LOW, max_value=HISTORY_HIGH)
    )
    return History(customers, transactions, interactions, as_of, draw(st.booleans()))


def histories(currency: str = "USD") -> st.SearchStrategy[History]:
    """Up to 12 customers (owners with SQL-hostile text, tags from :data:`HISTORY_TAGS`), up
    to 30 transactions in ``currency`` with many ties, up to 15 interactions, and an as-of
    instant (after everything, or inside the history)."""
    return _histories(currency)


def fill_history(store: Store, history: History) -> Crm:
    """Record ``history`` in ``store`` through the use cases; the :class:`Crm` used."""
    crm = Crm(store, clock=FixedClock(HISTORY_HIGH + dt.timedelta(days=2)))
    with store.unit_of_work() as uow:
        uow.customers.add_many([attrs.evolve(c) for c in history.customers])
        uow.commit()
    for tx in history.transactions:
        crm.record_transaction(tx)
    for interaction in history.interactions:
        crm.record_interaction(interaction)
    if history.erase and len(history.customers) > 1:
        crm.erase(history.customers[0].number)
    return crm


def reference_rows(store: Store, as_of: dt.datetime) -> dict[str, dict[str, Any]]:
    """Every snapshot field of every customer of ``store`` as of ``as_of``, recomputed from
    the stored objects: the aggregate fields by :class:`~crmcore.domain.CustomerAggregate`'s
    fold of the history up to ``as_of``, the profile fields from the customer."""
    as_of_us = to_us(as_of)
    out: dict[str, dict[str, Any]] = {}
    with store.unit_of_work() as uow:
        for number in uow.customers.numbers():
            c = uow.customers.get(number)
            txs = [t for t in uow.transactions.for_customer(number) if t.occurred_at <= as_of]
            ixs = [i for i in uow.interactions.for_customer(number) if i.occurred_at <= as_of]
            agg = fold(number, [*txs, *ixs])
            last = agg.last_purchase_at
            row: dict[str, Any] = {
                "crm_number": number.value,
                "frequency": agg.purchase_count,
                "refunds": agg.refund_count,
                "monetary": agg.net_minor,
                "first_purchase_at": agg.first_purchase_at,
                "last_purchase_at": last,
                "recency_days": None
                if last is None
                else (as_of_us - to_us(last)) // MICROS_PER_DAY,
                "tenure_days": (as_of_us - to_us(c.created_at)) // MICROS_PER_DAY,
                "interactions": agg.interaction_count,
                "complaints": agg.complaint_count,
                "last_interaction_at": agg.last_interaction_at,
                "stage": c.stage.value,
                "created_at": c.created_at,
                "tags": c.tags,
                "gender": None if c.gender is None else c.gender.value,
                "birth_year": None if c.birth_date is None else c.birth_date.year,
                "owner": c.owner,
                "country": c.addresses[0].country if c.addresses else None,
            }
            for name in FIELDS:
                if name.startswith("interactions_"):
                    channel = name.removeprefix("interactions_")
                    row[name] = sum(i.channel.value == channel for i in ixs)
            out[number.value] = row
    return out
