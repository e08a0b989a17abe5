"""A small, seeded generator of realistic customer histories, for demos and tests.

``crmcore demo`` and the ``crm_seeded_store`` pytest fixture use it; so can your tests::

    from crmcore import InMemoryStore
    from crmcore.testing.synthetic import populate

    store = InMemoryStore()
    populate(store, 1000, seed=42)

The shape follows the benchmark generator (``benchmarks/data.py``), scaled to run in
seconds: purchases per customer are negative-binomial (heavy tail, mean ~8, about one customer
in eight never buys), amounts lognormal, ~3% of purchases are refunded a few days later, each
customer buys only during an active period that ends (churn) at a random time, and
interactions are Poisson(3) per customer with ~6% complaints. Everything happens in the three
years before ``end``; the same seed gives the same histories.

Names and e-mail addresses are made up from short fixed lists and the reserved domain
``example.com``: the generated stores contain no real person's data. Every customer is
registered with ``source="demo"`` and ``external_id="D<sequence>"``; transactions and
interactions carry ``source="demo"`` and unique external references.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

import attrs
import numpy as np

from crmcore.domain import (
    CrmNumber,
    Customer,
    Direction,
    EmailAddress,
    Interaction,
    InteractionChannel,
    InteractionKind,
    LifecycleStage,
    Money,
    PersonName,
    SalesChannel,
    Transaction,
    TransactionKind,
)
from crmcore.domain._checks import aware_utc
from crmcore.errors import ValidationError
from crmcore.ports import Store

__all__ = ["DEMO_END", "GeneratedCounts", "populate"]

DEMO_END: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
"""The demo's "now": every generated event happens before it."""

_GIVEN: Final = [
    "Ada",
    "Ben",
    "Chloe",
    "Dan",
    "Eva",
    "Finn",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kim",
    "Lea",
    "Milan",
    "Nora",
    "Omar",
    "Pia",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uma",
    "Viktor",
    "Wen",
    "Xavi",
    "Yara",
    "Zoe",
]
_FAMILY: Final = [
    "Adler",
    "Berg",
    "Costa",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Meyer",
    "Novak",
    "Olsen",
    "Petrov",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Umar",
    "Vogel",
    "Weber",
    "Xu",
    "Young",
    "Zimmer",
]
_SALES: Final = list(SalesChannel)
_SALES_P: Final = np.array([0.5, 0.3, 0.08, 0.05, 0.06, 0.01])
_CONTACT: Final = list(InteractionChannel)
_CONTACT_P: Final = np.array([0.2, 0.35, 0.05, 0.15, 0.05, 0.05, 0.14, 0.01])
_KINDS: Final = list(InteractionKind)
_KIND_P: Final = np.array([0.3, 0.06, 0.1, 0.3, 0.14, 0.1])
_DAY_S: Final = 86_400.0
_SPAN_DAYS: Final = 3 * 365


@attrs.frozen
class GeneratedCounts:
    """How much :func:`populate` wrote."""

    customers: int
    transactions: int
    interactions: int


def _instant(end: dt.datetime, days_before: float) -> dt.datetime:
    return end - dt.timedelta(seconds=round(days_before * _DAY_S))


def _chunk(
    rng: np.random.Generator,
    numbers: list[CrmNumber],
    sequences: list[int],
    end: dt.datetime,
    currency: str,
) -> tuple[list[Customer], list[Transaction], list[Interaction]]:
    n = len(numbers)
    # Ages in days before `end`: when each customer arrived and when they stopped buying.
    created = rng.uniform(30, _SPAN_DAYS, n)
    stopped = np.maximum(created - rng.exponential(900, n), 0.0)
    given = rng.integers(len(_GIVEN), size=n)
    family = rng.integers(len(_FAMILY), size=n)
    vip = rng.random(n) < 0.05
    newsletter = rng.random(n) < 0.3
    customers: list[Customer] = []
    for i, number in enumerate(numbers):
        first, last = _GIVEN[given[i]], _FAMILY[family[i]]
        joined = _instant(end, float(created[i]))
        tags = {"vip"} if vip[i] else set()
        if newsletter[i]:
            tags.add("newsletter")
        customers.append(
            Customer(
                number=number,
                name=PersonName(given=first, family=last),
                created_at=joined,
                updated_at=joined,
                emails=(EmailAddress(f"{first}.{last}.{sequences[i]}@example.com".lower()),),
                tags=frozenset(tags),
                stage=LifecycleStage.LEAD,
                source="demo",
                external_id=f"D{sequences[i]}",
            )
        )
    # Purchases: all of the chunk at once, then refunds of ~3% of them a few days later.
    counts = rng.negative_binomial(1.1, 1.1 / (1.1 + 8.0), n)
    owner = np.repeat(np.arange(n), counts)
    ages = rng.uniform(stopped[owner], created[owner])
    amounts = np.maximum(rng.lognormal(3.6, 0.8, owner.size) * 100, 100).astype(np.int64)
    channels = rng.choice(len(_SALES), owner.size, p=_SALES_P)
    refund_ages = ages - rng.uniform(1, 20, owner.size)
    refunded = (rng.random(owner.size) < 0.03) & (refund_ages > 0)
    transactions: list[Transaction] = []
    for j in range(owner.size):
        c = int(owner[j])
        total = Money.from_minor_units(int(amounts[j]), currency)
        channel = _SALES[int(channels[j])]
        ref = f"S{sequences[c]}-{j}"
        kinds = [(TransactionKind.PURCHASE, float(ages[j]), ref)]
        if refunded[j]:
            kinds.append((TransactionKind.REFUND, float(refund_ages[j]), f"{ref}-R"))
        for kind, age, external_ref in kinds:
            transactions.append(
                Transaction(
                    numbers[c],
                    _instant(end, age),
                    kind,
                    total,
                    channel=channel,
                    source="demo",
                    external_ref=external_ref,
                    reporting_total=total,
                )
            )
    # Interactions: Poisson(3) per customer, any time since they arrived.
    contacts = rng.poisson(3, n)
    owner = np.repeat(np.arange(n), contacts)
    ages = rng.uniform(0, created[owner])
    channels = rng.choice(len(_CONTACT), owner.size, p=_CONTACT_P)
    kinds_ix = rng.choice(len(_KINDS), owner.size, p=_KIND_P)
    inbound = rng.random(owner.size) < 0.6
    interactions = [
        Interaction(
            numbers[int(owner[j])],
            _instant(end, float(ages[j])),
            _CONTACT[int(channels[j])],
            Direction.INBOUND if inbound[j] else Direction.OUTBOUND,
            _KINDS[int(kinds_ix[j])],
            subject="demo contact",
            source="demo",
            external_ref=f"I{sequences[int(owner[j])]}-{j}",
        )
        for j in range(owner.size)
    ]
    return customers, transactions, interactions


def _classify(
    customers: list[Customer], transactions: list[Transaction], as_of: dt.datetime
) -> None:
    """Move each customer to the stage the default lifecycle policy gives it as of ``as_of``.

    The same rules ``Analytics.reclassify`` applies, evaluated on the generated history, so
    a store starts with realistic stages and stage histories.
    """
    from crmcore.analytics._lifecycle import LifecyclePolicy

    policy = LifecyclePolicy()
    bought: dict[CrmNumber, list[dt.datetime]] = {}
    for tx in transactions:
        if tx.kind is TransactionKind.PURCHASE and tx.occurred_at <= as_of:
            bought.setdefault(tx.customer, []).append(tx.occurred_at)
    for customer in customers:
        times = bought.get(customer.number)
        if not times:
            continue
        first, last = min(times), max(times)
        recency = (as_of - last) // dt.timedelta(days=1)
        span = (last - first) // dt.timedelta(microseconds=1)
        health, reason = policy.health_one(recency, len(times), span)
        for to_stage, why in policy.plan(customer.stage, health, reason, len(times), 0):
            customer.change_stage(to_stage, as_of, why)
        customer.updated_at = max(customer.updated_at, as_of)


def populate(
    store: Store,
    customers: int,
    *,
    seed: int = 7,
    end: dt.datetime = DEMO_END,
    batch_size: int = 1000,
    stages_as_of: dt.datetime | None = None,
    on_progress: Callable[[int], None] = lambda _: None,
) -> GeneratedCounts:
    """Generate ``customers`` customers with their histories and write them to ``store``.

    Writes in batches (one unit of work each) through the bulk repository methods and calls
    ``on_progress(customers_written)`` after each batch. Customers are registered as leads
    unless ``stages_as_of`` is given.

    Args:
        store: an empty or non-empty store (new customers get new numbers).
        customers: how many customers to generate.
        seed: the random seed; the same seed and size give the same histories.
        end: every generated event happens before this instant.
        batch_size: customers per unit of work.
        stages_as_of: if given, each customer is moved (with recorded stage changes at that
            instant) to the stage the default lifecycle policy gives its history as of then,
            as if the store had been reclassified at that time.
        on_progress: called with the number of customers written so far.

    Returns:
        How many customers, transactions and interactions were written.

    Raises:
        ValidationError: a negative ``customers`` or a non-positive ``batch_size``.
    """
    for name, value, low in (("customers", customers, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValidationError(name, value, f"must be an integer >= {low}")
    end = aware_utc("end", end)
    if stages_as_of is not None:
        stages_as_of = aware_utc("stages_as_of", stages_as_of)
    written = GeneratedCounts(0, 0, 0)
    done = 0
    index = 0
    while done < customers:
        size = min(batch_size, customers - done)
        rng = np.random.default_rng([seed, index])
        sequences = list(store.allocator.allocate_many(size))
        numbers = [store.scheme.format(s) for s in sequences]
        people, sales, contacts = _chunk(rng, numbers, sequences, end, store.reporting_currency)
        if stages_as_of is not None:
            _classify(people, sales, stages_as_of)
        with store.unit_of_work() as uow:
            uow.customers.add_many(people)
            created_tx = uow.transactions.add_many(sales)
            created_ix = uow.interactions.add_many(contacts)
            uow.commit()
        written = GeneratedCounts(
            written.customers + len(people),
            written.transactions + created_tx,
            written.interactions + created_ix,
        )
        done += size
        index += 1
        on_progress(done)
    return written
