"""The host's access policy: denied use cases raise and are audited, masked reads return a
masked customer that no path can store, on memory and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from crmcore import Crm, InMemoryStore
from crmcore.domain import AuditAction, AuditOutcome, CrmNumber, Customer
from crmcore.domain.access import Decision, MaskedEmail, MaskedPhone
from crmcore.errors import AccessDenied, ConfigurationError, ValidationError
from crmcore.ports import Store
from crmcore.services import Analytics
from crmcore.testing.contract._support import T0, make_interaction


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


class Rules:
    """A policy by table: (actor, action) -> decision, default allow; records its calls."""

    def __init__(self, table: dict[tuple[str, AuditAction], Decision]) -> None:
        self.table = table
        self.calls: list[tuple[str, AuditAction, CrmNumber | None]] = []

    def __call__(self, actor: str, action: AuditAction, number: CrmNumber | None) -> Decision:
        self.calls.append((actor, action, number))
        return self.table.get((actor, action), Decision.ALLOW)


def _setup(store: Store, policy: Rules) -> tuple[Crm, CrmNumber]:
    crm = Crm(store, policy=policy)
    ann = crm.register(
        "Ann Lee",
        emails=["ann.lee@example.com"],
        phones=["+8613812341234"],
        source="erp",
        external_id="E1",
    )
    return crm, ann.number


def test_a_denied_read_raises_and_its_denial_is_committed(store: Store) -> None:
    policy = Rules({("user:intern", AuditAction.READ): Decision.DENY})
    crm, ann = _setup(store, policy)
    with crm.acting_as("user:intern"):
        with pytest.raises(AccessDenied) as raised:
            crm.get(ann)
        with pytest.raises(AccessDenied):
            crm.find_by_number(ann.value)
        with pytest.raises(AccessDenied):
            crm.find_by_external_id("erp", "E1")
        with pytest.raises(AccessDenied):
            crm.get(store.scheme.format(99_999))  # refused before existence is revealed
    assert raised.value.actor == "user:intern" and raised.value.action == "read"
    assert "Ann" not in str(raised.value) and "example" not in str(raised.value)
    denied = crm.audit(actor="user:intern")
    assert [(e.action, e.customer, e.outcome) for e in denied] == [
        (AuditAction.READ, ann, AuditOutcome.DENIED),
        (AuditAction.READ, ann, AuditOutcome.DENIED),
        (AuditAction.READ, ann, AuditOutcome.DENIED),
        (AuditAction.READ, store.scheme.format(99_999), AuditOutcome.DENIED),
    ]
    assert crm.get(ann).name.display == "Ann Lee"  # the system actor is allowed
    assert ("user:intern", AuditAction.READ, ann) in policy.calls


def test_a_denied_find_refuses_the_whole_lookup(store: Store) -> None:
    policy = Rules({("user:intern", AuditAction.FIND): Decision.DENY})
    crm, ann = _setup(store, policy)
    with crm.acting_as("user:intern"), pytest.raises(AccessDenied):
        crm.find_by_email("ann.lee@example.com")
    entries = crm.audit(actor="user:intern")
    assert [(e.action, e.customer, e.outcome) for e in entries] == [
        (AuditAction.FIND, ann, AuditOutcome.DENIED)
    ]


def test_a_masked_read_masks_contact_points_and_is_audited_as_masked(store: Store) -> None:
    policy = Rules(
        {
            ("user:agent", action): Decision.MASK
            for action in (AuditAction.READ, AuditAction.FIND, AuditAction.VIEW_360)
        }
    )
    crm, ann = _setup(store, policy)
    crm.record_interaction(make_interaction(ann, T0, subject="Refund", notes="Card ends 4242"))
    with crm.acting_as("user:agent"):
        shown = crm.get(ann)
        found = crm.find_by_email("ann.lee@example.com")
        view = crm.customer_360(ann)
    assert isinstance(shown, Customer) and shown.masked
    assert [str(e) for e in shown.emails] == ["a***@example.com"]
    assert isinstance(shown.emails[0], MaskedEmail)
    assert [str(p) for p in shown.phones] == ["+86 *** **** 1234"]
    assert isinstance(shown.phones[0], MaskedPhone)
    assert str(shown.name) == "A*** L***"
    assert shown.external_id is None and shown.birth_date is None
    assert shown.number == ann and found == [shown]
    assert view.customer == shown
    assert [(i.subject, i.notes) for i in view.recent_interactions] == [(None, None)]
    outcomes = [e.outcome for e in crm.audit(actor="user:agent")]
    assert outcomes == [AuditOutcome.MASKED] * 3
    assert not crm.get(ann).masked  # the system actor sees it all


def test_a_masked_customer_can_never_be_stored(store: Store) -> None:
    policy = Rules({("user:agent", AuditAction.READ): Decision.MASK})
    crm, ann = _setup(store, policy)
    with crm.acting_as("user:agent"):
        shown = crm.get(ann)
    shown.title = "Dr"
    with pytest.raises(ValidationError, match="masked"):
        crm.update(shown)
    with pytest.raises(ValidationError, match="masked"):
        crm.register_many([attrs.evolve(shown)])
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        shown.masked = False  # type: ignore[misc]
    with pytest.raises(ValidationError, match="masked"), store.unit_of_work() as uow:
        uow.customers.update(shown)  # the repositories refuse it too
    stored = crm.get(ann)
    assert [str(e) for e in stored.emails] == ["ann.lee@example.com"]
    assert stored.title is None


def test_writes_are_guarded_deny_only(store: Store) -> None:
    policy = Rules(
        {
            ("user:viewer", AuditAction.ERASE): Decision.DENY,
            ("user:viewer", AuditAction.IMPORT_CUSTOMERS): Decision.DENY,
            ("user:agent", AuditAction.UPDATE): Decision.MASK,  # a mask does not stop a write
        }
    )
    crm, ann = _setup(store, policy)
    with crm.acting_as("user:viewer"), pytest.raises(AccessDenied):
        crm.erase(ann)
    assert crm.get(ann).name.display == "Ann Lee"
    with crm.acting_as("user:agent"):
        customer = crm.get(ann)
        customer.title = "Dr"
        crm.update(customer)
    assert crm.get(ann).title == "Dr"
    entries = crm.audit(action="erase")
    assert [(e.actor, e.customer, e.outcome) for e in entries] == [
        ("user:viewer", ann, AuditOutcome.DENIED)
    ]


def test_analytics_are_guarded_too(store: Store) -> None:
    policy = Rules({("user:intern", AuditAction.SCORE): Decision.DENY})
    crm, _ = _setup(store, policy)
    analytics = Analytics(crm)
    with crm.acting_as("user:intern"), pytest.raises(AccessDenied):
        analytics.rfm()
    assert [e.outcome for e in crm.audit(action="score")] == [AuditOutcome.DENIED]


def test_a_policy_must_answer_with_a_decision(store: Store) -> None:
    crm, ann = _setup(store, Rules({}))
    crm.context.policy = lambda actor, action, number: "allow"  # type: ignore[assignment,return-value]
    with pytest.raises(ConfigurationError, match="Decision"):
        crm.get(ann)


def test_a_custom_masker_is_used_and_must_mark_its_result(store: Store) -> None:
    policy = Rules({("user:agent", AuditAction.READ): Decision.MASK})
    crm, ann = _setup(store, policy)

    def initials_only(customer: Customer) -> Customer:
        return attrs.evolve(customer, emails=(), phones=(), masked=True)

    crm.context.masker = initials_only
    with crm.acting_as("user:agent"):
        assert crm.get(ann).emails == ()
    crm.context.masker = lambda customer: customer
    with crm.acting_as("user:agent"), pytest.raises(ConfigurationError, match="masked"):
        crm.get(ann)
