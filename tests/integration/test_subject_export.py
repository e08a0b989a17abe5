"""The subject access export: complete, plain JSON, valid against its shipped schema, and the
same document on every backend for the same data."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import backend_url, unique_prefix
from tests.jsonschema_lite import errors
from tests.subject_data import NOW, SENTINEL, populate

from crmcore import InMemoryStore
from crmcore.clock import FixedClock
from crmcore.errors import ErasedError, NotFound, ValidationError
from crmcore.ports import Store
from crmcore.services import Crm
from crmcore.services._subject import (
    EXPORT_SCHEMA,
    audit_section,
    consents_section,
    export_json_schema,
    json_ready,
)

BACKENDS = ("memory", "sqlite-memory", "postgresql", "mariadb")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore(reporting_currency="EUR")
        return
    from crmcore.adapters.sqlalchemy import SqlStore

    url = backend_url(request, request.param, tmp_path)
    sql = SqlStore.from_url(
        url, create_schema=True, reporting_currency="EUR", table_prefix=unique_prefix()
    )
    try:
        yield sql
    finally:
        sql.drop_schema()
        sql.close()


def _without_entry_ids(exported: dict[str, Any]) -> dict[str, Any]:
    # Audit entries and consent records carry random ids (uuid4): the one part of the data
    # that is not the same on two stores fed the same use cases.
    return exported | {
        section: [{**e, "id": "-"} for e in exported[section]] for section in ("audit", "consents")
    }


def _reference_export() -> dict[str, Any]:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(NOW))
    subject, _ = populate(crm)
    return crm.export_subject(subject)


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_export_is_identical_on_every_backend(store: Store) -> None:
    crm = Crm(store, clock=FixedClock(NOW))
    subject, _ = populate(crm)
    exported = _without_entry_ids(crm.export_subject(subject.value))
    reference = _without_entry_ids(_reference_export())
    assert exported == reference
    # Byte for byte, not only equal as values (1 == 1.0 == True would pass above).
    assert json.dumps(exported, sort_keys=True) == json.dumps(reference, sort_keys=True)


def test_export_is_plain_json_valid_against_the_shipped_schema() -> None:
    exported = _reference_export()
    assert _plain(exported)
    text = json.dumps(exported, allow_nan=False)  # no default, no NaN
    assert json.loads(text) == exported
    assert errors(export_json_schema(), exported) == []
    assert exported["schema"] == EXPORT_SCHEMA and exported["version"] == 1


def test_the_schema_check_catches_a_wrong_export() -> None:
    # The validator is ours, so prove it rejects what the schema forbids.
    schema = export_json_schema()
    exported = _reference_export()
    for path, bad in (
        (("transactions", 0, "total", "amount"), 120.0),
        (("profile", "birth_date"), "17/03/1971"),
        (("interactions", 0, "occurred_at"), "2020-01-07T09:30:36+01:00"),
        (("profile", "stage"), "gold"),
    ):
        wrong = copy.deepcopy(exported)
        target: Any = wrong
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = bad
        assert errors(schema, wrong), path
    extra = copy.deepcopy(exported)
    extra["profile"]["shadow"] = "x"
    assert errors(schema, extra)
    del extra["profile"]["shadow"], extra["scores"]
    assert errors(schema, extra)


def test_export_holds_everything_about_the_subject_and_nothing_of_others() -> None:
    exported = _reference_export()
    profile = exported["profile"]
    assert profile["name"]["given"] == f"Ann{SENTINEL}"
    assert profile["attributes"]["credit"] == {"type": "decimal", "value": "12.5"}
    assert profile["attributes"]["shoe_size"] == {"type": "int", "value": 39}
    assert exported["consents"][0]["source"] == f"web-form-{SENTINEL}"
    assert [e["label"] for e in exported["contact_points"]["emails"]] == ["personal", "work"]
    assert exported["contact_points"]["addresses"][0]["postal_code"] == f"10{SENTINEL}"
    assert [s["to"] for s in exported["stage_history"]] == ["new"]
    assert [t["external_ref"] for t in exported["transactions"]] == [
        "order-1",
        "order-2",
        "order-3",
    ]
    assert exported["transactions"][0]["lines"][0] == {
        "sku": "SKU-1",
        "quantity": "2",
        "unit_price": {"amount": "50.00", "currency": "EUR"},
        "description": f"gift {SENTINEL}",
    }
    assert [i["notes"] for i in exported["interactions"]] == [
        f"Customer {SENTINEL} said her address is {SENTINEL}"
    ] * 2
    assert exported["totals"]["net"] == {"amount": "145.25", "currency": "EUR"}
    assert [m["segment"] for m in exported["segment_memberships"]] == ["buyers", "buyers"]
    scores = exported["scores"]
    assert scores["metrics"]["frequency"] == 2 and scores["metrics"]["monetary"] == 14525
    assert scores["rfm"]["scored"] and scores["rfm"]["segment"] is not None
    assert scores["rfm"]["monetary"] == {"amount": "145.25", "currency": "EUR"}
    assert 0.0 <= scores["churn_risk"] <= 1.0
    assert "bob" not in json.dumps(exported).lower()
    # The ledger, with who recorded each decision and how.
    assert [(c["purpose"], c["decision"]) for c in exported["consents"]] == [
        ("marketing", "granted")
    ]
    # The audit trail about the subject, oldest first, without this export's own entry.
    actions = [entry["action"] for entry in exported["audit"]]
    assert actions[0] == "register" and "export" not in actions
    assert all(entry["customer"] == exported["crm_number"] for entry in exported["audit"])
    assert SENTINEL not in json.dumps(exported["audit"])
    again = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(NOW))
    number, _ = populate(again)
    again.export_subject(number)
    assert again.export_subject(number)["audit"][-1]["action"] == "export"


def test_the_profile_holds_every_field_of_the_customer() -> None:
    import attrs

    from crmcore.domain import Customer

    exported = _reference_export()
    elsewhere = {"number": "crm_number", "emails": None, "phones": None, "addresses": None}
    # stage_history has its own section; masked marks a policy's masked view, never stored
    # (an export under a masking decision is refused).
    elsewhere |= {"stage_history": None, "masked": None}
    for field in attrs.fields(Customer):
        if field.name in elsewhere:
            key = elsewhere[field.name]
            assert key is None or key in exported["profile"]
        else:
            assert field.name in exported["profile"], field.name
    assert set(exported["contact_points"]) == {"emails", "phones", "addresses"}


def test_erased_and_unknown_customers_are_refused() -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(NOW))
    subject, bystander = populate(crm)
    crm.erase(subject)
    with pytest.raises(ErasedError):
        crm.export_subject(subject)
    with pytest.raises(NotFound):
        crm.export_subject(crm.store.scheme.format(999))
    with pytest.raises(ValidationError):
        crm.export_subject("C00000000X")
    assert crm.export_subject(bystander)["segment_memberships"] != []


class _Ledger:
    def __init__(self, entries: list[object]) -> None:
        self.entries = entries
        self.asked: list[object] = []

    def history(self, number: object) -> list[object]:
        self.asked.append(number)
        return self.entries

    def query(self, *, number: object) -> list[object]:
        return self.history(number)


class _Uow:
    def __init__(self, **repositories: object) -> None:
        self.__dict__.update(repositories)


def test_consent_and_audit_sections_read_their_repositories_when_the_store_has_them() -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(NOW))
    subject, _ = populate(crm)
    record = crm.consent_history(subject)[0]
    ledger, log = _Ledger([record]), _Ledger([])
    uow: Any = _Uow(consents=ledger, audit=log)
    assert consents_section(uow, subject) == [json_ready(record)]
    assert audit_section(uow, subject) == []
    assert ledger.asked == [subject] and log.asked == [subject]


@pytest.mark.parametrize("decision", ["mask", "deny"])
def test_an_export_the_policy_masks_or_denies_is_refused_and_audited(decision: str) -> None:
    from crmcore.domain.access import Decision
    from crmcore.domain.audit import AuditAction, AuditOutcome
    from crmcore.errors import AccessDenied

    def policy(actor: str, action: AuditAction, number: object) -> Decision:
        return Decision(decision) if action is AuditAction.EXPORT else Decision.ALLOW

    store = InMemoryStore(reporting_currency="EUR")
    crm = Crm(store, clock=FixedClock(NOW), policy=policy, actor="user:7")
    subject, _ = populate(crm)
    with pytest.raises(AccessDenied):
        crm.export_subject(subject)
    last = crm.audit(subject)[-1]
    assert (last.action, last.outcome, last.actor) == (
        AuditAction.EXPORT,
        AuditOutcome.DENIED,
        "user:7",
    )
