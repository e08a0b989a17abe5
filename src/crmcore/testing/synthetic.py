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
registered with ``source="demo"`` and ``external_id="D<n>"`` (``n`` counts on from the
customers already in the store); transactions and
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
from crmcore.services import Crm

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
_UNREGISTERED: Final = CrmNumber("C0000000000")  # a placeholder; registration numbers them
_SPAN_DAYS: Final = 3 * 365


@attrs.frozen
class GeneratedCounts:
    """How much :func:`populate` wrote."""

    customers: int
    transactions: int
    interactions: int


def _instant(end: dt.datetime, days_before: float) -> dt.datetime:
    return end - dt.timedelta(seconds=round(days_before * _DAY_S))


@attrs.frozen
class _Chunk:
    """One batch of generated customers (unregistered) and their history as arrays."""

    people: list[Customer]
    labels: list[int]
    # Purchases: owner row, age in days, amount in minor units, sales channel index, and
    # the refund (if any) of each purchase.
    owner: np.ndarray
    ages: np.ndarray
    amounts: np.ndarray
    channels: np.ndarray
    refund_ages: np.ndarray
    refunded: np.ndarray
    # Interactions: owner row, age, channel, kind, inbound.
    contact_owner: np.ndarray
    contact_ages: np.ndarray
    contact_channels: np.ndarray
    contact_kinds: np.ndarray
    inbound: np.ndarray


def _chunk(rng: np.random.Generator, labels: list[int], end: dt.datetime) -> _Chunk:
    n = len(labels)
    # Ages in days before `end`: when each customer arrived and when they stopped buying.
    created = rng.uniform(30, _SPAN_DAYS, n)
    stopped = np.maximum(created - rng.exponential(900, n), 0.0)
    given = rng.integers(len(_GIVEN), size=n)
    family = rng.integers(len(_FAMILY), size=n)
    vip = rng.random(n) < 0.05
    newsletter = rng.random(n) < 0.3
    people: list[Customer] = []
    for i, label in enumerate(labels):
        first, last = _GIVEN[given[i]], _FAMILY[family[i]]
        joined = _instant(end, float(created[i]))
        tags = {"vip"} if vip[i] else set()
        if newsletter[i]:
            tags.add("newsletter")
        people.append(
            Customer(
                number=_UNREGISTERED,
                name=PersonName(given=first, family=last),
                created_at=joined,
                updated_at=joined,
                emails=(EmailAddress(f"{first}.{last}.{label}@example.com".lower()),),
                tags=frozenset(tags),
                stage=LifecycleStage.LEAD,
                source="demo",
                external_id=f"D{label}",
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
    # Interactions: Poisson(3) per customer, any time since they arrived.
    contacts = rng.poisson(3, n)
    contact_owner = np.repeat(np.arange(n), contacts)
    contact_ages = rng.uniform(0, created[contact_owner])
    contact_channels = rng.choice(len(_CONTACT), contact_owner.size, p=_CONTACT_P)
    contact_kinds = rng.choice(len(_KINDS), contact_owner.size, p=_KIND_P)
    inbound = rng.random(contact_owner.size) < 0.6
    return _Chunk(
        people,
        labels,
        owner,
        ages,
        amounts,
        channels,
        refund_ages,
        refunded,
        contact_owner,
        contact_ages,
        contact_channels,
        contact_kinds,
        inbound,
    )


def _transactions(
    chunk: _Chunk, numbers: list[CrmNumber], end: dt.datetime, currency: str
) -> list[Transaction]:
    transactions: list[Transaction] = []
    for j in range(chunk.owner.size):
        c = int(chunk.owner[j])
        total = Money.from_minor_units(int(chunk.amounts[j]), currency)
        channel = _SALES[int(chunk.channels[j])]
        ref = f"S{chunk.labels[c]}-{j}"
        kinds = [(TransactionKind.PURCHASE, float(chunk.ages[j]), ref)]
        if chunk.refunded[j]:
            kinds.append((TransactionKind.REFUND, float(chunk.refund_ages[j]), f"{ref}-R"))
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
    return transactions


def _interactions(chunk: _Chunk, numbers: list[CrmNumber], end: dt.datetime) -> list[Interaction]:
    return [
        Interaction(
            numbers[int(chunk.contact_owner[j])],
            _instant(end, float(chunk.contact_ages[j])),
            _CONTACT[int(chunk.contact_channels[j])],
            Direction.INBOUND if chunk.inbound[j] else Direction.OUTBOUND,
            _KINDS[int(chunk.contact_kinds[j])],
            subject="demo contact",
            source="demo",
            external_ref=f"I{chunk.labels[int(chunk.contact_owner[j])]}-{j}",
        )
        for j in range(chunk.contact_owner.size)
    ]


def _classify(chunk: _Chunk, end: dt.datetime, as_of: dt.datetime) -> None:
    """Move each customer to the stage the default lifecycle policy gives it as of ``as_of``.

    The same rules ``Analytics.reclassify`` applies, evaluated on the generated history, so
    a store starts with realistic stages and stage histories.
    """
    from crmcore.analytics._lifecycle import LifecyclePolicy

    policy = LifecyclePolicy()
    bought: dict[int, list[dt.datetime]] = {}
    for j in range(chunk.owner.size):
        at = _instant(end, float(chunk.ages[j]))
        if at <= as_of:
            bought.setdefault(int(chunk.owner[j]), []).append(at)
    for row, customer in enumerate(chunk.people):
        times = bought.get(row)
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

    Writes in batches through the bulk use cases (``Crm.register_many``,
    ``record_transactions``, ``record_interactions``; one unit of work each) and calls
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
    crm = Crm(store)
    # Labels continue after the customers already there, so every import key is new.
    base = crm.count_customers()
    written = GeneratedCounts(0, 0, 0)
    done = 0
    index = 0
    while done < customers:
        size = min(batch_size, customers - done)
        rng = np.random.default_rng([seed, index])
        chunk = _chunk(rng, list(range(base + done + 1, base + done + size + 1)), end)
        if stages_as_of is not None:
            _classify(chunk, end, stages_as_of)
        registration = crm.register_many(chunk.people)
        numbers = [c.number for c in registration.registered]
        if len(numbers) != size:  # pragma: no cover - only if labels were taken meanwhile
            raise ValidationError("customers", customers, "import keys already registered")
        sales = crm.record_transactions(
            _transactions(chunk, numbers, end, store.reporting_currency)
        )
        contacts = crm.record_interactions(_interactions(chunk, numbers, end))
        written = GeneratedCounts(
            written.customers + size,
            written.transactions + sales.created,
            written.interactions + contacts.created,
        )
        done += size
        index += 1
        on_progress(done)
    return written
