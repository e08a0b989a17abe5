"""The audit entry holds nothing personal by construction; the default masking."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from crmcore.domain import (
    AuditAction,
    AuditEntity,
    AuditEntry,
    AuditOutcome,
    CrmNumber,
    EmailAddress,
    PersonName,
    PhoneNumber,
    check_actor,
)
from crmcore.domain.access import Decision, mask_email, mask_name, mask_phone
from crmcore.errors import AccessDenied, ValidationError

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _entry(**changes: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "at": T0,
        "actor": "user:42",
        "action": "read",
        "entity": "customer",
    }
    fields.update(changes)
    return AuditEntry(**fields)


def test_an_entry_coerces_its_closed_sets_and_sorts_field_names() -> None:
    entry = _entry(fields=["title", "emails", "title"], outcome="masked", rows=3)
    assert entry.action is AuditAction.READ and entry.entity is AuditEntity.CUSTOMER
    assert entry.outcome is AuditOutcome.MASKED and entry.fields == ("emails", "title")
    assert entry.customer is None and entry.rows == 3


@pytest.mark.parametrize(
    "changes",
    [
        {"actor": "Ann Lee"},
        {"actor": "ann@example.com"},
        {"actor": "+8613812341234"},
        {"actor": "1user"},
        {"actor": ""},
        {"actor": "a" * 65},
        {"action": "shout"},
        {"entity": "person"},
        {"outcome": "maybe"},
        {"fields": ["Ann Lee"]},
        {"fields": ["ann@example.com"]},
        {"fields": "emails"},
        {"customer": "C0000000013"},
        {"rows": -1},
        {"rows": True},
        {"at": dt.datetime(2026, 1, 1)},
    ],
)
def test_an_entry_refuses_anything_that_could_carry_personal_data(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _entry(**changes)


def test_actor_ids() -> None:
    for good in ("system", "user:42", "job:nightly-import", "svc/api.v2_eu", "U" + "9" * 63):
        assert check_actor("actor", good) == good
    assert _entry(customer=CrmNumber("C0000000013")).customer == CrmNumber("C0000000013")


def test_default_masking() -> None:
    assert str(mask_email(EmailAddress("Ann.Lee@Example.com"))) == "A***@example.com"
    assert str(mask_phone(PhoneNumber("+8613812341234"))) == "+86 *** **** 1234"
    assert str(mask_phone(PhoneNumber("+442079460958"))) == "+44 *** **** 0958"
    name = mask_name(PersonName(given="Ann", family="Lee"))
    assert (name.given, name.family, name.display) == ("A***", "L***", "A*** L***")
    assert mask_name(PersonName(display="Ann Mary Lee")).display == "A*** M*** L***"
    assert mask_name(PersonName(family="Lee")).display == "L***"


def test_decisions_map_to_outcomes_and_denials_name_no_data() -> None:
    assert [d.outcome for d in Decision] == list(AuditOutcome)
    error = AccessDenied("user:7", "read")
    assert str(error) == "actor 'user:7' may not read"
    assert isinstance(error, PermissionError)
