"""The consent use cases on the in-memory store: events, registration, the deprecated path."""

from __future__ import annotations

import datetime as dt

import pytest

from crmcore import Consent, ConsentPurpose, Crm, FixedClock, InMemoryStore, InteractionChannel
from crmcore.errors import NotFound, ValidationError
from crmcore.events import ConsentChanged, DomainEvent

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def crm() -> Crm:
    return Crm(InMemoryStore(), clock=FixedClock(T0))


def test_each_decision_publishes_a_consent_changed_event(crm: Crm) -> None:
    ann = crm.register("Ann").number
    seen: list[DomainEvent] = []
    crm.subscribe(seen.append)
    granted = crm.grant_consent(ann, "marketing", "email", evidence="EV-1", actor="user:42")
    withdrawn = crm.withdraw_consent(ann, "marketing")
    assert seen == [
        ConsentChanged(T0, ann, granted.id, "marketing", "email", True),
        ConsentChanged(T0, ann, withdrawn.id, "marketing", None, False),
    ]
    assert granted.actor == "user:42" and withdrawn.actor == "system"
    assert "EV-1" not in repr(seen)


def test_register_writes_initial_ledger_entries_and_new_customer_refuses_them(crm: Crm) -> None:
    consents = [
        Consent(ConsentPurpose.MARKETING, None, True, T0, source="shop"),
        Consent(ConsentPurpose.MARKETING, InteractionChannel.SMS, False, T0),
    ]
    ann = crm.register("Ann", consents=consents).number
    history = crm.consent_history(ann)
    assert [(r.purpose, r.channel, r.granted, r.source) for r in history] == [
        ("marketing", None, True, "shop"),
        ("marketing", InteractionChannel.SMS, False, None),
    ]
    with pytest.raises(ValidationError, match="consents"):
        crm.new_customer("Bob", consents=consents)
    with pytest.raises(ValidationError, match="consents"):
        crm.register("Bob", consents=["marketing"])  # type: ignore[list-item]
    assert crm.count_customers() == 1  # nothing stored, no number used for the bad one


def test_record_consent_still_works_with_a_deprecation_warning(crm: Crm) -> None:
    ann = crm.register("Ann").number
    with pytest.warns(DeprecationWarning, match="grant_consent"):
        customer = crm.record_consent(ann, Consent(ConsentPurpose.PROFILING, None, True, T0))
    assert customer.number == ann
    assert crm.consent_state(ann).granted("profiling")


def test_bad_input_stores_nothing(crm: Crm) -> None:
    ann = crm.register("Ann").number
    with pytest.raises(ValidationError, match="purpose"):
        crm.grant_consent(ann, "Marketing!")
    with pytest.raises(ValidationError, match="channel"):
        crm.grant_consent(ann, "marketing", "fax")
    with pytest.raises(ValidationError, match="lawful_basis"):
        crm.grant_consent(ann, "marketing", lawful_basis="because")
    with pytest.raises(ValidationError, match="expires_at"):
        crm.grant_consent(ann, "marketing", expires_at=T0 - dt.timedelta(days=1))
    with pytest.raises(NotFound):
        crm.grant_consent(crm.store.scheme.format(999), "marketing")
    assert crm.consent_history(ann) == []
