"""The customer entity: validation at construction and on assignment, lifecycle."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore import (
    DEFAULT_SCHEME,
    TRANSITIONS,
    Customer,
    LifecycleStage,
    PersonName,
)
from crmcore.errors import InvalidTransition, ValidationError
from crmcore.testing.strategies import customers

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def make(**overrides: object) -> Customer:
    fields: dict[str, object] = {
        "number": DEFAULT_SCHEME.format(1),
        "name": PersonName("Ann", "Lee"),
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return Customer(**fields)  # type: ignore[arg-type]


def test_contact_points_are_normalised() -> None:
    customer = make(emails=["Ann@Example.COM"], phones=["+44 20 7946 0018"], tags=[" VIP "])
    assert customer.emails[0].address == "Ann@example.com"
    assert customer.emails[0].lookup_key == "ann@example.com"
    assert customer.phones[0].e164 == "+442079460018"
    assert customer.tags == frozenset({"vip"})


@pytest.mark.parametrize(
    ("field", "value", "reported"),
    [
        ("emails", ["ann@", "x"], "emails[0]"),
        ("phones", ["+44 12"], "phones[0]"),
        ("tags", ["two words"], "tags"),
        ("attributes", {"Bad-Key": 1}, "attributes"),
        ("attributes", {"ratio": 0.5}, "attributes.ratio"),
        ("birth_date", dt.date(1850, 1, 1), "birth_date"),
        ("gender", "robot", "gender"),
        ("stage", "vip", "stage"),
        ("version", -1, "version"),
        ("created_at", dt.datetime(2026, 1, 1), "created_at"),
    ],
)
def test_invalid_fields_are_rejected_naming_field_and_value(
    field: str, value: object, reported: str
) -> None:
    with pytest.raises(ValidationError) as info:
        make(**{field: value})
    assert info.value.field == reported


def test_assignment_is_validated_like_construction() -> None:
    customer = make()
    with pytest.raises(ValidationError) as info:
        customer.emails = ("not-an-address",)  # type: ignore[assignment]
    assert info.value.field == "emails[0]"
    assert customer.emails == ()
    customer.tags = frozenset({"Gold"})
    assert customer.tags == frozenset({"gold"})


def test_custom_attributes_are_typed_and_read_only() -> None:
    customer = make(attributes={"tier": "gold", "points": 10, "limit": Decimal("9.99")})
    assert customer.attributes["points"] == 10
    with pytest.raises(TypeError):
        customer.attributes["points"] = 11  # type: ignore[index]


def test_updated_before_created_and_external_id_without_source_are_rejected() -> None:
    with pytest.raises(ValidationError, match="before created_at"):
        make(updated_at=T0 - dt.timedelta(seconds=1))
    with pytest.raises(ValidationError, match="source"):
        make(external_id="E1")


def test_repr_shows_no_personal_data() -> None:
    customer = make(emails=["ann@example.com"], name=PersonName("Ann", "Lee"))
    assert repr(customer) == "Customer(number='C0000000013', stage='lead', version=0)"


@given(
    st.sampled_from(LifecycleStage),
    st.sampled_from(LifecycleStage),
)
def test_stage_changes_follow_the_transition_table(
    start: LifecycleStage, target: LifecycleStage
) -> None:
    customer = make(stage=start)
    if target in TRANSITIONS[start]:
        change = customer.change_stage(target, T0, "because")
        assert customer.stage is target
        assert customer.stage_history[-1] == change
        assert (change.from_stage, change.to_stage, change.reason) == (start, target, "because")
    else:
        with pytest.raises(InvalidTransition):
            customer.change_stage(target, T0)
        assert customer.stage is start
        assert customer.stage_history == ()


def test_churned_customers_come_back_only_through_reactivated() -> None:
    customer = make(stage=LifecycleStage.CHURNED)
    with pytest.raises(InvalidTransition, match="churned to active"):
        customer.change_stage(LifecycleStage.ACTIVE, T0)
    customer.change_stage(LifecycleStage.REACTIVATED, T0, "bought again")
    customer.change_stage(LifecycleStage.ACTIVE, T0 + dt.timedelta(days=1))
    assert [c.to_stage for c in customer.stage_history] == [
        LifecycleStage.REACTIVATED,
        LifecycleStage.ACTIVE,
    ]


def test_every_stage_can_reach_active_or_is_a_dead_end_by_design() -> None:
    reachable = {LifecycleStage.ACTIVE}
    changed = True
    while changed:
        changed = False
        for stage, targets in TRANSITIONS.items():
            if stage not in reachable and targets & reachable:
                reachable.add(stage)
                changed = True
    assert reachable == set(LifecycleStage)


def test_a_customer_holds_no_consents() -> None:
    # Consents live in the append-only ledger; an attribute here could be overwritten.
    customer = make()
    with pytest.raises(AttributeError):
        customer.consents = ()  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        make(consents=())


@given(customers())
def test_generated_customers_are_valid_and_reconstructible(customer: Customer) -> None:
    assert customer.name.display
    assert customer.updated_at >= customer.created_at
    rebuilt = Customer(
        number=customer.number,
        name=customer.name,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
        emails=customer.emails,
        phones=customer.phones,
        tags=customer.tags,
        attributes=customer.attributes,
        stage=customer.stage,
    )
    assert rebuilt.emails == customer.emails
    assert rebuilt.attributes == customer.attributes


def test_the_number_and_stage_cannot_be_reassigned() -> None:
    customer = make()
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        customer.number = DEFAULT_SCHEME.format(2)  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        customer.stage = LifecycleStage.REACTIVATED  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        customer.stage_history = ()  # type: ignore[misc]
    assert attrs.evolve(customer, number=DEFAULT_SCHEME.format(2)).number.value == "C0000000021"


def test_cross_field_rules_are_checked_before_storing() -> None:
    customer = make()
    customer.external_id = "X1"
    with pytest.raises(ValidationError, match="source"):
        customer.validate()


@pytest.mark.parametrize(
    ("field", "value"),
    [("tags", ["nul\x00tag"]), ("organisation", "ACME\ud800"), ("tags", ["tab\there"])],
)
def test_text_no_database_can_store_is_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        make(**{field: value})
    assert info.value.field == field


def test_contact_reprs_hide_personal_data() -> None:
    customer = make(emails=["ann@example.com"], phones=["+442079460018"])
    text = repr((customer.name, customer.emails, customer.phones))
    assert "ann" not in text.lower()
    assert "7946" not in text


@given(customer=customers())
def test_trusted_contact_points_equal_the_validated_ones(customer: Customer) -> None:
    from crmcore.domain import EmailAddress, PhoneNumber
    from crmcore.domain._checks import trusted

    for email in customer.emails:
        again = trusted(EmailAddress, address=email.address, label=email.label)
        assert again == email and hash(again) == hash(email)
        assert again.lookup_key == email.lookup_key
    for phone in customer.phones:
        assert trusted(PhoneNumber, e164=phone.e164, label=phone.label) == phone


def test_trusted_needs_exactly_the_fields_of_the_class() -> None:
    from crmcore.domain import EmailAddress
    from crmcore.domain._checks import trusted

    with pytest.raises(ValidationError) as info:
        trusted(EmailAddress, address="ann@example.com")
    assert info.value.field == "fields"
    with pytest.raises(ValidationError):
        trusted(EmailAddress, address="a@b.org", label="work", extra=1)
