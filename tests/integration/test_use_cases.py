"""The bulk and segment use cases the CLI, the synthetic generator and the docs go through,
on the in-memory store and on SQLite."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmcore import Crm, FixedClock, InMemoryStore, Interaction, Money, Transaction
from crmcore.analytics import field
from crmcore.domain import (
    CustomerRegistered,
    DomainEvent,
    InteractionRecorded,
    LifecycleStage,
    StageChange,
)
from crmcore.errors import DuplicateError, NotFound, RuleSyntaxError, ValidationError
from crmcore.ports import Store
from crmcore.services import Analytics, Registration

sqlalchemy = pytest.importorskip("sqlalchemy")

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore(reporting_currency="EUR")
        return
    from crmcore.adapters.sqlalchemy import SqlStore

    sql = SqlStore.from_url(f"sqlite:///{tmp_path / 'crm.sqlite'}", reporting_currency="EUR")
    sql.create_schema()
    try:
        yield sql
    finally:
        sql.close()


@pytest.fixture
def crm(store: Store) -> Crm:
    return Crm(store, clock=FixedClock(T0))


def test_new_customer_validates_and_stores_nothing(crm: Crm) -> None:
    draft = crm.new_customer("Ann Lee", emails=["ANN@example.com"], source="shop", external_id="1")
    assert draft.emails[0].address == "ANN@example.com"
    assert draft.created_at == T0
    assert crm.count_customers() == 0
    with pytest.raises(ValidationError) as raised:
        crm.new_customer("Bob", emails=["not an address"])
    assert raised.value.field.startswith("emails")
    earlier = T0 - dt.timedelta(days=400)
    assert crm.new_customer("Old", registered_at=earlier).created_at == earlier


def test_register_many_numbers_in_order_and_is_idempotent_on_the_import_key(crm: Crm) -> None:
    seen: list[DomainEvent] = []
    crm.subscribe(seen.append)
    first = crm.register_many(
        [
            crm.new_customer("Ann", source="shop", external_id="1"),
            crm.new_customer("Bob", source="shop", external_id="2"),
            crm.new_customer("Ann again", source="shop", external_id="1"),  # repeat: first wins
            crm.new_customer("Cy"),  # no import key: always new
        ]
    )
    assert isinstance(first, Registration)
    assert [c.name.display for c in first.registered] == ["Ann", "Bob", "Cy"]
    assert first.created == 3
    assert first.already_registered == 1
    numbers = [c.number for c in first.registered]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3
    assert [type(e) for e in seen] == [CustomerRegistered] * 3
    assert [e.customer for e in seen] == numbers  # type: ignore[attr-defined]
    for customer in first.registered:
        assert crm.get(customer.number) == customer

    again = crm.register_many(
        [
            crm.new_customer("Ann", source="shop", external_id="1"),
            crm.new_customer("Dee", source="shop", external_id="3"),
        ]
    )
    assert [c.name.display for c in again.registered] == ["Dee"]
    assert again.already_registered == 1
    assert crm.count_customers() == 4
    assert crm.numbers_by_external_id("shop", ["1", "2", "3", "4"]) == {
        "1": numbers[0],
        "2": numbers[1],
        "3": again.registered[0].number,
    }


def test_register_many_keeps_imported_dates_stage_and_history(crm: Crm) -> None:
    joined = T0 - dt.timedelta(days=800)
    draft = crm.new_customer("Eve", registered_at=joined)
    change = draft.change_stage(LifecycleStage.PROSPECT, joined + dt.timedelta(days=1), "call")
    (eve,) = crm.register_many([draft]).registered
    stored = crm.get(eve.number)
    assert stored.created_at == joined
    assert stored.stage is LifecycleStage.PROSPECT
    assert stored.stage_history == (change,)
    assert isinstance(change, StageChange)


def test_register_many_refuses_a_non_customer_and_stores_nothing(crm: Crm) -> None:
    with pytest.raises(ValidationError) as raised:
        crm.register_many([crm.new_customer("Ann"), "Bob"])  # type: ignore[list-item]
    assert raised.value.field == "customers[1]"
    assert crm.count_customers() == 0


def test_record_interactions_in_bulk_is_idempotent_and_silent(crm: Crm) -> None:
    ann = crm.register("Ann")
    seen: list[DomainEvent] = []
    crm.subscribe(seen.append)

    def contact(ref: str) -> Interaction:
        return Interaction(
            ann.number, T0, "email", "inbound", "inquiry", source="x", external_ref=ref
        )

    result = crm.record_interactions([contact("a"), contact("b"), contact("a")])
    assert (result.created, result.already_recorded) == (2, 1)
    again = crm.record_interactions([contact("b"), contact("c")])
    assert (again.created, again.already_recorded) == (1, 1)
    assert seen == []
    assert crm.customer_360(ann.number).aggregate.interaction_count == 3
    with pytest.raises(ValidationError):
        crm.record_interactions([contact("d"), object()])  # type: ignore[list-item]
    assert crm.customer_360(ann.number).aggregate.interaction_count == 3


def test_recording_one_interaction_twice_returns_the_first(crm: Crm) -> None:
    ann = crm.register("Ann")
    seen: list[DomainEvent] = []
    crm.subscribe(seen.append)
    one = Interaction(ann.number, T0, "phone", "inbound", "complaint", source="x", external_ref="1")
    other = Interaction(ann.number, T0, "sms", "inbound", "inquiry", source="x", external_ref="1")
    assert crm.record_interaction(one).created
    again = crm.record_interaction(other)
    assert not again.created
    assert again.record == one
    assert [type(e) for e in seen] == [InteractionRecorded]


def test_bulk_lookups(crm: Crm) -> None:
    ann = crm.register("Ann", source="crm", external_id="A1")
    cy = crm.register("Cy")
    gone = crm.register("Gone", source="crm", external_id="G1")
    crm.erase(gone.number)
    assert crm.existing_numbers([ann.number, cy.number.value, gone.number]) == {
        ann.number,
        cy.number,
    }
    assert crm.existing_numbers([]) == set()
    assert crm.numbers_by_external_id("crm", []) == {}
    assert crm.external_ids() == {ann.number: "A1"}
    assert crm.count_customers() == 2


def test_segment_definitions_go_through_analytics(crm: Crm) -> None:
    analytics = Analytics(crm)
    assert analytics.segments() == []
    big = analytics.define_segment("big", "monetary >= 1000", "big spenders")
    built = analytics.define_segment("often", field("frequency") >= 3)
    assert analytics.segment("big") == big
    assert built.rule == "frequency >= 3"
    assert [s.name for s in analytics.segments()] == ["big", "often"]
    with pytest.raises(RuleSyntaxError):
        analytics.define_segment("big", "monetary >=")
    assert analytics.segment("big").rule == "monetary >= 1000"  # unchanged
    analytics.define_segment("big", "monetary >= 2000")
    assert analytics.segment("big").rule == "monetary >= 2000"
    analytics.delete_segment("big")
    with pytest.raises(NotFound):
        analytics.segment("big")
    with pytest.raises(NotFound):
        analytics.delete_segment("big")
    assert [s.name for s in analytics.segments()] == ["often"]


def test_define_and_run_is_all_or_nothing(crm: Crm) -> None:
    analytics = Analytics(crm)
    ann = crm.register("Ann")
    crm.record_transaction(Transaction(ann.number, T0, "purchase", Money("20.00", "EUR")))
    run = analytics.define_and_run_segment("buyers", "frequency >= 1", T0)
    assert run.membership.members == {ann.number}
    assert run.entered == {ann.number}
    assert analytics.latest_run("buyers") == run.membership
    assert analytics.latest_run("buyers", before=T0) is None
    with pytest.raises(DuplicateError):
        analytics.define_and_run_segment("buyers", "frequency >= 5", T0)
    assert analytics.segment("buyers").rule == "frequency >= 1"  # the refused run saved nothing
    with pytest.raises(NotFound):
        analytics.latest_run("nobody")
