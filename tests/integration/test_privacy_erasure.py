"""Erasure erases: personal data in every field, the consent ledger's evidence, interaction
notes, transaction lines, audit entries and segment memberships, then ``erase``, and nothing of
it is left anywhere in the store, on every backend, with and without encryption (issue 13)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import backend_url, store_text, unique_prefix

from crmcore import Crm, FixedClock, InMemoryStore, Money, Transaction
from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.crypto import KeyRing
from crmcore.domain import (
    Direction,
    Interaction,
    InteractionChannel,
    InteractionKind,
    PersonName,
    PostalAddress,
    TransactionLine,
)
from crmcore.errors import ErasedError
from crmcore.ports import Store
from crmcore.services import Analytics

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
MARK = "qvxerase"  # in every personal value below, and in nothing crmcore writes itself
PHONE = "+442079460931"  # a phone number holds no letters: searched for as digits


@pytest.fixture(
    params=[
        "memory",
        "sqlite-file",
        "sqlite-file-encrypted",
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("postgresql-encrypted", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("mariadb-encrypted", marks=pytest.mark.mariadb),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    name: str = request.param
    if name == "memory":
        yield InMemoryStore(reporting_currency="EUR")
        return
    backend = name.removesuffix("-encrypted")
    ring = KeyRing.generate() if name.endswith("-encrypted") else None
    sql = SqlStore.from_url(
        backend_url(request, backend, tmp_path),
        create_schema=True,
        reporting_currency="EUR",
        table_prefix=unique_prefix("x"),
        keyring=ring,
    )
    try:
        yield sql
    finally:
        sql.drop_schema()
        sql.close()


def _person(crm: Crm, tag: str) -> Any:
    m = f"{MARK}{tag}"
    return crm.register(
        PersonName(f"Ann{m}", f"Lee{m}", f"Dr Ann Lee {m}"),
        emails=[f"ann.{m}@example.org"],
        phones=[PHONE if tag == "s" else "+442079460932"],
        addresses=[PostalAddress("GB", (f"1 {m} Street",), f"Town{m}", None, f"N1{m}")],
        birth_date=dt.date(1971, 3, 17),
        title=f"Dr{m}",
        job_title=f"Engineer{m}",
        organisation=f"Acme{m}",
        attributes={"nickname": f"annie{m}"},
        source="erp",
        external_id=f"ext-{m}",
    )


def _history(crm: Crm, number: Any, tag: str) -> None:
    m = f"{MARK}{tag}"
    crm.grant_consent(
        number, "marketing", "email", source=f"form-{m}", evidence=f"scan-{m}", at=NOW
    )
    crm.record_interaction(
        Interaction(
            customer=number,
            occurred_at=NOW - dt.timedelta(days=3),
            channel=InteractionChannel.PHONE,
            direction=Direction.INBOUND,
            kind=InteractionKind.COMPLAINT,
            subject=f"subject {m}",
            notes=f"she said her address is {m}",
            outcome=f"outcome {m}",
            agent=f"agent{m}",
        )
    )
    crm.record_transaction(
        Transaction(
            number,
            NOW - dt.timedelta(days=2),
            "purchase",
            Money("42.00", "EUR"),
            lines=(
                TransactionLine(
                    f"SKU-{tag}", Decimal(1), Money("42.00", "EUR"), description=f"gift {m}"
                ),
            ),
        )
    )


def test_erasure_leaves_nothing_personal_in_the_store(store: Store) -> None:
    crm = Crm(store, clock=FixedClock(NOW), actor="agent:7")
    subject = _person(crm, "s")
    bystander = _person(crm, "b")
    for who, tag in ((subject.number, "s"), (bystander.number, "b")):
        _history(crm, who, tag)
    analytics = Analytics(crm)
    analytics.define_and_run_segment("buyers", "frequency >= 1", NOW)
    crm.get(subject.number)  # audited reads
    crm.find_by_email(f"ann.{MARK}s@example.org")
    exported = crm.export_subject(subject.number)
    assert exported["consents"][0]["evidence"] == f"scan-{MARK}s"

    before = store_text(store)
    encrypted = isinstance(store, SqlStore) and store.encrypted
    if not encrypted:  # the search sees personal data where it is stored in the clear
        assert f"{MARK}s" in before and PHONE.lstrip("+") in before

    crm.erase(subject.number)

    after = store_text(store)
    assert f"{MARK}s" not in after.lower()
    assert PHONE.lstrip("+") not in after
    # The bystander is untouched, the audit trail kept (numbers and field names only).
    assert crm.get(bystander.number).name.given == f"Ann{MARK}b"
    assert crm.consent_history(bystander.number)[0].evidence == f"scan-{MARK}b"
    assert any(e.action.value == "erase" for e in crm.audit(number=subject.number))
    membership = analytics.latest_run("buyers")
    assert membership is not None and subject.number not in membership.members
    with pytest.raises(ErasedError):
        crm.export_subject(subject.number)
