"""The Crm use cases over the in-memory store: registry, history, idempotency, atomicity."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore import (
    Crm,
    Customer,
    FixedClock,
    InMemoryStore,
    Interaction,
    LifecycleStage,
    Money,
    Transaction,
)
from crmcore.errors import (
    ConcurrencyError,
    ConfigurationError,
    CurrencyConversionError,
    DuplicateError,
    ErasedError,
    EventDeliveryError,
    InvalidTransition,
    NotFound,
    ValidationError,
)
from crmcore.events import (
    CustomerErased,
    CustomerRegistered,
    DomainEvent,
    StageChanged,
    TransactionRecorded,
)
from crmcore.testing.strategies import transactions

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def crm(clock: FixedClock) -> Crm:
    return Crm(InMemoryStore(reporting_currency="EUR"), clock=clock)


def buy(crm: Crm, number: object, amount: str, days: int = 0, **kw: object) -> Transaction:
    return Transaction(
        number,  # type: ignore[arg-type]
        T0 + dt.timedelta(days=days),
        kw.pop("kind", "purchase"),  # type: ignore[arg-type]
        Money(amount, kw.pop("currency", "EUR")),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_registration_allocates_unique_valid_numbers(crm: Crm) -> None:
    numbers = [crm.register(f"Customer {i}").number for i in range(50)]
    assert len(set(numbers)) == 50
    assert all(crm.store.scheme.is_valid(n.value) for n in numbers)
    assert crm.get(numbers[3].value.lower()).name.display == "Customer 3"


def test_bad_registration_stores_nothing_and_uses_no_number(crm: Crm) -> None:
    with pytest.raises(ValidationError) as info:
        crm.register("Ann", emails=["not-an-address"])
    assert info.value.field == "emails[0]"
    first = crm.register("Ann")
    assert crm.store.scheme.sequence_of(first.number) == 1
    with crm.store.unit_of_work() as uow:
        assert uow.customers.count() == 1


def test_duplicate_external_id_is_refused(crm: Crm) -> None:
    crm.register("Ann", source="shop", external_id="42")
    with pytest.raises(DuplicateError, match="shop/42"):
        crm.register("Other Ann", source="shop", external_id="42")
    assert crm.find_by_external_id("shop", "42") is not None


def test_stale_update_raises_and_never_overwrites(crm: Crm) -> None:
    number = crm.register("Ann").number
    mine, theirs = crm.get(number), crm.get(number)
    mine.tags = frozenset({"vip"})
    crm.update(mine)
    theirs.organisation = "ACME"
    with pytest.raises(ConcurrencyError):
        crm.update(theirs)
    stored = crm.get(number)
    assert stored.tags == frozenset({"vip"})
    assert stored.organisation is None
    assert stored.version == 1 == mine.version


def test_transactions_are_idempotent_on_source_and_external_ref(crm: Crm) -> None:
    number = crm.register("Ann").number
    first = crm.record_transaction(buy(crm, number, "10.00", source="erp", external_ref="A1"))
    again = crm.record_transaction(buy(crm, number, "99.00", source="erp", external_ref="A1"))
    assert first.created
    assert not again.created
    assert again.record.id == first.record.id
    aggregate = crm.customer_360(number).aggregate
    assert (aggregate.purchase_count, aggregate.purchase_minor) == (1, 1000)


def test_aggregates_track_purchases_refunds_and_interactions(crm: Crm) -> None:
    number = crm.register("Ann").number
    crm.record_transaction(buy(crm, number, "10.00", days=5))
    crm.record_transaction(buy(crm, number, "2.50", days=1))
    crm.record_transaction(buy(crm, number, "1.00", days=9, kind="refund"))
    crm.record_interaction(
        Interaction(number, T0 + dt.timedelta(days=3), "phone", "inbound", "complaint")
    )
    aggregate = crm.customer_360(number).aggregate
    assert aggregate.purchase_count == 2
    assert aggregate.refund_count == 1
    assert aggregate.net_minor == 1150
    assert aggregate.first_purchase_at == T0 + dt.timedelta(days=1)
    assert aggregate.last_purchase_at == T0 + dt.timedelta(days=5)
    assert (aggregate.interaction_count, aggregate.complaint_count) == (1, 1)


def test_foreign_currency_needs_a_converter(clock: FixedClock) -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=clock)
    number = crm.register("Ann").number
    with pytest.raises(CurrencyConversionError) as info:
        crm.record_transaction(buy(crm, number, "10.00", currency="USD"))
    assert info.value.value == "USD"

    class HalfRate:
        def convert(self, amount: Money, to_currency: str, at: dt.datetime) -> Money:
            return Money((amount.amount / 2).quantize(Decimal("0.01")), to_currency)

    converting = Crm(crm.store, clock=clock, converter=HalfRate())
    stored = converting.record_transaction(buy(crm, number, "10.00", currency="USD")).record
    assert stored.total == Money("10.00", "USD")
    assert stored.reporting_total == Money("5.00", "EUR")


def test_events_are_published_only_after_commit(crm: Crm) -> None:
    events: list[DomainEvent] = []
    crm.subscribe(events.append)
    number = crm.register("Ann").number
    crm.record_transaction(buy(crm, number, "1.00"))
    crm.change_stage(number, LifecycleStage.NEW, "first purchase")
    with pytest.raises(InvalidTransition):
        crm.change_stage(number, LifecycleStage.LEAD)
    with pytest.raises(NotFound):
        crm.record_transaction(buy(crm, crm.store.scheme.format(999), "1.00"))
    assert [type(e) for e in events] == [CustomerRegistered, TransactionRecorded, StageChanged]
    assert crm.get(number).stage is LifecycleStage.NEW


def test_erasure_really_erases_and_retires_the_number(crm: Crm) -> None:
    ann = crm.register("Ann", emails=["ann@example.com"], phones=["+442079460018"])
    crm.record_transaction(buy(crm, ann.number, "1.00", source="erp", external_ref="T1"))
    crm.record_interaction(Interaction(ann.number, T0, "email", "inbound", "inquiry", notes="hi"))
    events: list[DomainEvent] = []
    crm.subscribe(events.append)
    crm.erase(ann.number)
    assert isinstance(events[-1], CustomerErased)
    with pytest.raises(ErasedError, match="erased"):
        crm.get(ann.number)
    assert crm.find_by_email("ann@example.com") == []
    assert crm.find_by_phone("+442079460018") == []
    with crm.store.unit_of_work() as uow:
        assert uow.transactions.for_customer(ann.number) == []
        assert uow.interactions.for_customer(ann.number) == []
        assert uow.transactions.find_by_external_ref("erp", "T1") is None
        with pytest.raises(DuplicateError):
            uow.customers.add(ann)
    assert crm.register("Bob").number != ann.number


@settings(max_examples=40)
@given(st.lists(transactions(currency="EUR", sources=("erp",)), min_size=1, max_size=8))
def test_a_failing_unit_of_work_changes_nothing(txs: list[Transaction]) -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(T0))
    number = crm.register("Ann").number
    crm.record_transaction(Transaction(number, T0, "purchase", Money("5", "EUR")))
    before = crm.customer_360(number)
    store = crm.store

    class Boom(Exception):
        pass

    def failing_unit() -> None:
        with store.unit_of_work() as uow:
            customer = uow.customers.get(number)
            customer.tags = frozenset({"changed"})
            uow.customers.update(customer)
            for tx in txs:
                uow.transactions.add(
                    crm.with_reporting_total(
                        Transaction(
                            number,
                            tx.occurred_at,
                            tx.kind,
                            tx.total,
                            source=tx.source,
                            external_ref=tx.external_ref,
                            id=tx.id,
                        )
                    )
                )
            uow.customers.add(
                Customer(
                    number=store.scheme.format(500),
                    name=customer.name,
                    created_at=T0,
                    updated_at=T0,
                )
            )
            raise Boom

    with pytest.raises(Boom):
        failing_unit()
    after = crm.customer_360(number)
    assert after == before
    with store.unit_of_work() as uow:
        assert uow.customers.count() == 1
        assert uow.customers.find(store.scheme.format(500)) is None
    with store._read_state() as state:
        assert state.transactions.log.size == 1


def test_leaving_without_commit_rolls_back(crm: Crm) -> None:
    number = crm.register("Ann").number
    with crm.store.unit_of_work() as uow:
        uow.transactions.add(crm.with_reporting_total(buy(crm, number, "3.00")))
    assert crm.customer_360(number).aggregate.purchase_count == 0


def test_nesting_units_of_one_memory_store_in_a_thread_is_refused(crm: Crm) -> None:
    with crm.store.unit_of_work(), pytest.raises(ConfigurationError, match="nesting"):
        crm.store.unit_of_work().__enter__()


def test_the_memory_store_lock_is_released_after_a_refused_nesting_or_an_error(crm: Crm) -> None:
    store = crm.store
    assert isinstance(store, InMemoryStore)
    with store.unit_of_work(), pytest.raises(ConfigurationError):
        store._read_state().__enter__()
    with pytest.raises(RuntimeError), store._read_state():
        raise RuntimeError("boom")
    done = threading.Event()
    worker = threading.Thread(target=lambda: (crm.register("Bo"), done.set()))
    worker.start()
    worker.join(timeout=10)
    assert done.is_set()  # another thread got the lock: nothing was left holding it
    assert crm.register("Ann").number


def test_customer_360_shows_recent_history_newest_first(crm: Crm, clock: FixedClock) -> None:
    number = crm.register("Ann").number
    for day in range(15):
        crm.record_transaction(buy(crm, number, "1.00", days=day))
    due = T0 + dt.timedelta(days=30)
    crm.record_interaction(Interaction(number, T0, "phone", "outbound", "care", follow_up_due=due))
    view = crm.customer_360(number, recent=3)
    assert [t.occurred_at.day for t in view.recent_transactions] == [15, 14, 13]
    assert len(view.open_follow_ups) == 1
    clock.set(due + dt.timedelta(seconds=1))
    assert crm.customer_360(number).open_follow_ups == ()


def test_merging_moves_history_and_contact_points_and_retires_the_duplicate(crm: Crm) -> None:
    ann = crm.register("Ann Lee", emails=["ann@example.com"], tags=["vip"])
    dup = crm.register("A. Lee", emails=["ann@work.example"], tags=["b2b"])
    crm.record_transaction(buy(crm, dup.number, "7.00", source="erp", external_ref="D1"))
    crm.record_transaction(buy(crm, ann.number, "3.00", days=2))
    crm.record_interaction(Interaction(dup.number, T0, "chat", "inbound", "complaint"))
    events: list[DomainEvent] = []
    crm.subscribe(events.append)

    merged = crm.merge(ann.number, dup.number)

    assert [e.address for e in merged.emails] == ["ann@example.com", "ann@work.example"]
    assert merged.tags == frozenset({"vip", "b2b"})
    aggregate = crm.customer_360(ann.number).aggregate
    assert (aggregate.purchase_count, aggregate.net_minor, aggregate.complaint_count) == (
        2,
        1000,
        1,
    )
    assert crm.find_by_email("ann@work.example")[0].number == ann.number
    with pytest.raises(ErasedError):
        crm.get(dup.number)
    again = crm.record_transaction(buy(crm, ann.number, "7.00", source="erp", external_ref="D1"))
    assert not again.created
    assert type(events[-1]).__name__ == "CustomersMerged"
    with pytest.raises(ValidationError):
        crm.merge(ann.number, ann.number)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda crm: crm.get("C123"), "crm_number"),
        (lambda crm: crm.get(12345), "crm_number"),
        (lambda crm: crm.change_stage("C0000000013", "vip"), "to_stage"),
        (lambda crm: crm.customer_360("C0000000013", recent=-1), "recent"),
        (lambda crm: crm.find_by_phone("12"), "phone"),
        (lambda crm: crm.record_transaction("not a transaction"), "transaction"),
        (lambda crm: crm.register(""), "name"),
        (lambda crm: crm.register("Ann", stage="gold"), "stage"),
        (lambda crm: crm.register("Ann", birth_date="1990-01-01"), "birth_date"),
    ],
)
def test_bad_input_at_entry_points_names_the_field(crm: Crm, call: object, field: str) -> None:
    crm.register("Somebody")
    with pytest.raises(ValidationError) as info:
        call(crm)  # type: ignore[operator]
    assert info.value.field == field


def test_register_refuses_a_bare_string_where_a_collection_belongs(crm: Crm) -> None:
    with pytest.raises(ValidationError) as info:
        crm.register("Ann", tags="vip")  # type: ignore[arg-type]
    assert info.value.field == "tags"
    with pytest.raises(ValidationError) as info:
        crm.register("Ann", attributes=[1, 2])  # type: ignore[arg-type]
    assert info.value.field == "attributes"


def test_handlers_run_after_the_unit_and_their_failure_does_not_hide_the_commit(
    crm: Crm,
) -> None:
    seen: list[str] = []

    def look_up(event: DomainEvent) -> None:
        if isinstance(event, CustomerRegistered):
            seen.append(crm.get(event.customer).name.display)  # no nested-unit deadlock

    def broken(event: DomainEvent) -> None:
        raise RuntimeError("mail server down")

    crm.subscribe(look_up)
    unsubscribe = crm.subscribe(broken)
    with pytest.raises(EventDeliveryError, match="committed") as info:
        crm.register("Ann")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert seen == ["Ann"]
    assert len(crm.find_by_email("nobody@example.com")) == 0
    with crm.store.unit_of_work() as uow:
        assert uow.customers.count() == 1
    unsubscribe()
    unsubscribe()
    crm.register("Bob")
    assert seen == ["Ann", "Bob"]


def test_a_refused_update_leaves_the_callers_object_retryable(crm: Crm) -> None:
    number = crm.register("Ann", source="shop", external_id="1").number
    crm.register("Bob", source="shop", external_id="2")
    ann = crm.get(number)
    ann.external_id = "2"
    with pytest.raises(DuplicateError):
        crm.update(ann)
    assert ann.version == 0
    ann.external_id = "3"
    crm.update(ann)
    assert crm.get(number).external_id == "3"


def test_merge_dedupes_emails_and_carries_the_import_key(crm: Crm) -> None:
    ann = crm.register("Ann", emails=["ann@example.com"])
    dup = crm.register("Ann", emails=["ANN@example.com"], source="web", external_id="W1")
    merged = crm.merge(ann.number, dup.number)
    assert [e.address for e in merged.emails] == ["ann@example.com"]
    found = crm.find_by_external_id("web", "W1")
    assert found is not None
    assert found.number == ann.number
