"""Retention on every backend: the rules change exactly what they say, a dry run reports
exactly what a run changes, a second run changes nothing, batches do not change the result,
and an anonymised customer leaves no personal data in any table while its analytics stay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from tests.helpers import backend_url, store_text, unique_prefix
from tests.subject_data import SENTINEL, SENTINEL_DAY, SENTINEL_PHONE, T0, populate

from crmcore import InMemoryStore
from crmcore.analytics import RFM_FIELDS
from crmcore.clock import FixedClock
from crmcore.domain import Interaction, Money, SalesChannel, Transaction, TransactionKind
from crmcore.domain.retention import (
    ANONYMISED_FIELDS,
    ANONYMISED_NAME,
    AnonymiseInactiveCustomers,
    BlankInteractionNotes,
    DeleteInactiveCustomers,
    days,
    years,
)
from crmcore.errors import ErasedError, ValidationError
from crmcore.ports import Store
from crmcore.services import Analytics, Crm

_NOTES = ("notes", "subject")
BACKENDS = ("memory", "sqlite-memory", "postgresql", "mariadb")
AS_OF = T0 + dt.timedelta(days=3650)
_MARKERS = (SENTINEL, SENTINEL_PHONE.removeprefix("+"), SENTINEL_DAY.isoformat())


def _sql(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> Any:
    from crmcore.adapters.sqlalchemy import SqlStore

    return SqlStore.from_url(
        backend_url(request, name, tmp_path),
        create_schema=True,
        reporting_currency="EUR",
        table_prefix=unique_prefix(),
    )


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore(reporting_currency="EUR")
        return
    sql = _sql(request, request.param, tmp_path)
    try:
        yield sql
    finally:
        sql.drop_schema()
        sql.close()


def _world(store: Store) -> tuple[Crm, Any, Any, Any]:
    """The sentinel subject (inactive since T0 + 41 days), a bystander active until 9 years
    later, and a customer registered after every cut-off."""
    crm = Crm(store, clock=FixedClock(T0 - dt.timedelta(days=1)))
    subject, bystander = populate(crm)
    crm.record_transaction(
        Transaction(
            customer=bystander,
            occurred_at=T0 + dt.timedelta(days=3300),
            kind=TransactionKind.PURCHASE,
            total=Money("5.00", "EUR"),
            channel=SalesChannel.STORE,
        )
    )
    crm.clock = FixedClock(AS_OF - dt.timedelta(days=30))
    newcomer = crm.register("Newcomer").number
    crm.clock = FixedClock(AS_OF)
    return crm, subject, bystander, newcomer


def _summary(report: Any) -> list[tuple[str, int, list[str]]]:
    return [(o.rule.kind, o.changed, [n.value for n in o.customers]) for o in report.outcomes]


def test_dry_run_reports_what_the_run_changes_and_a_second_run_changes_nothing(
    store: Store,
) -> None:
    crm, subject, bystander, newcomer = _world(store)
    rules = [
        BlankInteractionNotes(older_than=years(3)),
        AnonymiseInactiveCustomers(inactive_for=years(7)),
        DeleteInactiveCustomers(inactive_for=years(20)),
    ]
    audit_before = len(crm.audit())
    before = crm.export_subject(subject) | {"audit": None}
    dry = crm.apply_retention(rules, dry_run=True, batch_size=1)
    # A dry run changes nothing and writes no audit entry.
    assert [e.action.value for e in crm.audit()[audit_before:]] == ["export"]
    assert crm.export_subject(subject) | {"audit": None} == before
    real = crm.apply_retention(rules, batch_size=1)
    assert _summary(dry) == _summary(real)
    assert dry.dry_run and not real.dry_run and real.as_of == AS_OF
    assert _summary(real) == [
        ("blank_interaction_notes", 2, [subject.value]),
        ("anonymise_inactive_customers", 1, [subject.value]),
        ("delete_inactive_customers", 0, []),
    ]
    assert real.outcomes[1].cutoff == AS_OF.replace(year=AS_OF.year - 7)
    entries = [(e.action.value, e.entity.value, e.customer, e.fields, e.rows) for e in crm.audit()]
    blanked = [e for e in entries if e[:4] == ("retention", "interaction", subject, _NOTES)]
    assert sum(e[4] for e in blanked) == 2  # one entry per customer and batch, with a count
    assert ("retention", "customer", subject, ANONYMISED_FIELDS, None) in entries
    again = crm.apply_retention(rules)
    assert again.changed == 0
    assert crm.apply_retention(rules, dry_run=True).changed == 0
    assert crm.get(bystander).name.display == "Bob Bystander"
    assert crm.get(newcomer).anonymised_at is None


def test_the_dry_run_accounts_for_earlier_rules_of_the_same_run(store: Store) -> None:
    crm, subject, _, _ = _world(store)
    # Deleted first: its interactions are not blanked afterwards.
    rules = [DeleteInactiveCustomers(inactive_for=years(7)), BlankInteractionNotes(years(3))]
    dry = crm.apply_retention(rules, dry_run=True)
    real = crm.apply_retention(rules, batch_size=2)
    assert (
        _summary(dry)
        == _summary(real)
        == [
            ("delete_inactive_customers", 1, [subject.value]),
            ("blank_interaction_notes", 0, []),
        ]
    )
    with pytest.raises(ErasedError):
        crm.get(subject)


def test_blanking_notes_keeps_everything_else(store: Store) -> None:
    crm, subject, _, _ = _world(store)
    before: list[Interaction] = crm.customer_360(subject, recent=100).recent_interactions  # type: ignore[assignment]
    report = crm.apply_retention([BlankInteractionNotes(older_than=days(3650 - 2))])
    assert report.outcomes[0].changed == 1  # only the interaction older than the cut-off
    after = crm.customer_360(subject, recent=100).recent_interactions
    assert after[0] == before[0]
    assert after[1] == attrs.evolve(before[1], subject=None, notes=None)
    assert crm.get(subject).name.given == f"Ann{SENTINEL}"


def _analytics(crm: Crm, number: Any) -> tuple[Any, dict[str, Any]]:
    analytics = Analytics(crm)
    score = analytics.rfm(AS_OF).explain(number)
    row = crm.store.metrics_source().customer_row(number, AS_OF)
    # Profile data and the consent ledger (its sources and evidence name the person),
    # removed on purpose.
    personal = {"gender", "birth_year", "country", "consents"}
    return (score.r, score.f, score.m, score.segment), {
        k: v for k, v in row.items() if k not in personal
    }


def test_an_anonymised_customer_leaves_no_personal_data_and_keeps_its_analytics(
    store: Store,
) -> None:
    crm, subject, bystander, _ = _world(store)
    dump = store_text(store)
    assert all(marker in dump for marker in _MARKERS)  # the dump does see them
    scores, metrics = _analytics(crm, subject)
    assert set(RFM_FIELDS) <= set(metrics)
    crm.apply_retention([AnonymiseInactiveCustomers(inactive_for=years(7))])
    dump = store_text(store)
    for marker in _MARKERS:
        assert marker.lower() not in dump.lower(), marker
    assert _analytics(crm, subject) == (scores, metrics)
    anonymous = crm.get(subject)
    assert anonymous.name.display == ANONYMISED_NAME
    assert anonymous.anonymised_at == AS_OF
    assert (anonymous.emails, anonymous.phones, anonymous.addresses) == ((), (), ())
    assert anonymous.stage.value == "new" and anonymous.stage_history[0].reason == ""
    exported = crm.export_subject(subject)
    assert len(exported["transactions"]) == 3  # kept, de-identified, for the analytics
    assert exported["totals"]["net"] == {"amount": "145.25", "currency": "EUR"}
    assert crm.get(bystander).emails  # nobody else is touched


def test_bad_arguments_change_nothing() -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(AS_OF))
    rule = BlankInteractionNotes(years(1))
    for call in (
        lambda: crm.apply_retention(["blank"]),  # type: ignore[list-item]
        lambda: crm.apply_retention([rule], as_of=AS_OF.replace(tzinfo=None)),
        lambda: crm.apply_retention([rule], batch_size=0),
    ):
        with pytest.raises(ValidationError):
            call()
    with pytest.raises(ValidationError):
        years(0)
    with pytest.raises(ValidationError):
        BlankInteractionNotes(older_than=3)  # type: ignore[arg-type]
