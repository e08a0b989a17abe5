"""The seeded synthetic store behind ``crmcore demo`` and the ``crm_seeded_store`` fixture."""

from __future__ import annotations

import datetime as dt

import pytest

from crmcore import Analytics, Crm, FixedClock, InMemoryStore, ValidationError
from crmcore.testing.synthetic import DEMO_END, populate


def _summary(store: InMemoryStore) -> list[tuple[str, int, int, int]]:
    rows = []
    with store.unit_of_work() as uow:
        for customer in uow.customers.iter_all():
            agg = uow.aggregates.get(customer.number)
            rows.append(
                (customer.number.value, agg.purchase_count, agg.net_minor, agg.interaction_count)
            )
    return rows


def test_the_same_seed_gives_the_same_store() -> None:
    first, second, other = InMemoryStore(), InMemoryStore(), InMemoryStore()
    populate(first, 150, seed=11, batch_size=40)
    populate(second, 150, seed=11, batch_size=40)
    populate(other, 150, seed=12, batch_size=40)
    assert _summary(first) == _summary(second)
    assert _summary(first) != _summary(other)


def test_the_store_looks_like_a_real_customer_base() -> None:
    store = InMemoryStore()
    counts = populate(store, 600, seed=5)
    assert counts.customers == 600
    assert 4 <= counts.transactions / counts.customers <= 14
    rows = _summary(store)
    never_bought = sum(1 for _, purchases, _, _ in rows if purchases == 0)
    assert 0.03 < never_bought / len(rows) < 0.3
    purchases = sorted(p for _, p, _, _ in rows)
    assert purchases[-1] > 4 * purchases[len(purchases) // 2]  # a heavy tail
    with store.unit_of_work() as uow:
        sample = [uow.customers.get(uow.customers.numbers()[i]) for i in range(0, 600, 50)]
        history = [t for c in sample for t in uow.transactions.for_customer(c.number)]
    assert all(str(c.primary_email).endswith("@example.com") for c in sample)
    assert all(t.occurred_at < DEMO_END for t in history)
    assert {t.kind.value for t in history} <= {"purchase", "refund"}


def test_the_generated_store_scores_and_segments() -> None:
    store = InMemoryStore()
    populate(store, 300, seed=9)
    analytics = Analytics(Crm(store, clock=FixedClock(DEMO_END)))
    result = analytics.rfm(as_of=DEMO_END)
    assert 0 < result.n < 300
    assert len(set(result.segments()[result.scored].tolist())) >= 5
    moves = analytics.reclassify(as_of=DEMO_END)
    assert moves


@pytest.mark.parametrize(("customers", "batch_size"), [(-1, 10), (10, 0), (True, 10)])
def test_bad_arguments_are_rejected(customers: int, batch_size: int) -> None:
    with pytest.raises(ValidationError):
        populate(InMemoryStore(), customers, batch_size=batch_size)


def test_naive_end_is_rejected() -> None:
    with pytest.raises(ValidationError):
        populate(InMemoryStore(), 1, end=dt.datetime(2026, 1, 1))


def test_the_seeded_store_fixture(crm_seeded_store: InMemoryStore) -> None:
    with crm_seeded_store.unit_of_work() as uow:
        assert uow.customers.count() == 200
