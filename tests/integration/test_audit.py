"""The audit trail through the use cases: every write and personal read of ``Crm`` and
``Analytics`` leaves exactly its entry, in the use case's own transaction, on memory and SQLite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import random
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pytest

from crmcore import Crm, FixedClock, InMemoryStore
from crmcore.domain import (
    AuditAction,
    AuditEntity,
    AuditEntry,
    AuditOutcome,
    Consent,
    ConsentPurpose,
    CrmNumber,
)
from crmcore.domain.retention import AnonymiseInactiveCustomers, days
from crmcore.errors import ConcurrencyError, NotFound, ValidationError
from crmcore.ports import Store
from crmcore.services import Analytics
from crmcore.testing.contract._support import make_interaction, make_transaction

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
A = AuditAction
C, IX, TX, S = (
    AuditEntity.CUSTOMER,
    AuditEntity.INTERACTION,
    AuditEntity.TRANSACTION,
    AuditEntity.SEGMENT,
)

Kind = Literal["write", "personal read", "non-personal read"]


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


class World:
    """A store with two customers, history and a saved segment, and the facades over it."""

    def __init__(self, store: Store) -> None:
        self.clock = FixedClock(T0)
        self.crm = Crm(store, clock=self.clock, actor="job:setup")
        self.analytics = Analytics(self.crm)
        crm = self.crm
        self.ann = crm.register(
            "Ann Lee",
            emails=["ann@example.com"],
            phones=["+442079460958"],
            source="erp",
            external_id="E1",
        ).number
        self.bob = crm.register("Bob Roe").number
        self.extra = crm.register("Cy Doe").number
        crm.record_transaction(make_transaction(store, self.ann, T0 - dt.timedelta(days=3)))
        # Enough repeat buyers for the predictive models to fit.
        rng = random.Random(3)
        buyers = crm.register_many([crm.new_customer(f"Buyer {i}") for i in range(30)])
        crm.record_transactions(
            make_transaction(
                store, c.number, T0 - dt.timedelta(days=rng.randint(1, 300)), rng.randint(500, 9000)
            )
            for c in buyers.registered
            for _ in range(rng.randint(1, 6))
        )
        self.analytics.define_segment("buyers", "frequency >= 1")
        self.clock.advance(minutes=1)
        self.result: Any = None

    def entries(self) -> list[AuditEntry]:
        return self.crm.audit()


Expected = list[tuple[AuditAction, AuditEntity, CrmNumber | None]]
Call = Callable[[World], Any]


def _tx_table(w: World) -> pa.Table:
    return pa.table(
        {
            "crm_number": [w.ann.value, w.bob.value],
            "occurred_at": pa.array([T0, T0], pa.timestamp("us", "UTC")),
            "kind": ["purchase", "purchase"],
            "amount": pa.array(["5.00", "6.00"], pa.string()),
            "currency": ["EUR", "EUR"],
        }
    )


def _ix_table(w: World) -> pa.Table:
    return pa.table(
        {
            "crm_number": [w.ann.value],
            "occurred_at": pa.array([T0], pa.timestamp("us", "UTC")),
            "channel": ["email"],
            "direction": ["inbound"],
            "kind": ["inquiry"],
        }
    )


def _lifetime_value(w: World) -> object:
    purchases = w.analytics.fit_bgnbd()
    return w.analytics.customer_lifetime_value(purchases, w.analytics.fit_gamma_gamma())


def _acting(w: World) -> None:
    with w.crm.acting_as("user:9"):
        pass


def _update(w: World) -> None:
    customer = w.crm.get(w.ann)
    customer.title = "Dr"
    customer.tags = frozenset({"vip"})
    w.crm.update(customer)


# ONE table: every public method of Crm and Analytics, its kind, how to call it, and the
# entries it must leave (action, entity, customer). A method missing here fails the test.
METHODS: dict[str, tuple[Kind, Call, Callable[[World], Expected]]] = {
    # -- Crm: writes
    "register": (
        "write",
        lambda w: w.crm.register("Dee"),
        lambda w: [(A.REGISTER, C, w.result.number)],
    ),
    "register_many": (
        "write",
        lambda w: w.crm.register_many([w.crm.new_customer("Eve"), w.crm.new_customer("Fay")]),
        lambda w: [(A.REGISTER_MANY, C, None)],
    ),
    "update": (
        "write",
        _update,
        lambda w: [(A.READ, C, w.ann), (A.UPDATE, C, w.ann)],
    ),
    "change_stage": (
        "write",
        lambda w: w.crm.change_stage(w.bob, "prospect"),
        lambda w: [(A.CHANGE_STAGE, C, w.bob)],
    ),
    "record_consent": (
        "write",
        lambda w: _deprecated(
            lambda: w.crm.record_consent(
                w.bob, Consent(ConsentPurpose.MARKETING, None, granted=True, at=T0)
            )
        ),
        lambda w: [(A.CONSENT, C, w.bob)],
    ),
    "grant_consent": (
        "write",
        lambda w: w.crm.grant_consent(w.bob, "marketing", "email", evidence="EV-1"),
        lambda w: [(A.CONSENT, C, w.bob)],
    ),
    "withdraw_consent": (
        "write",
        lambda w: w.crm.withdraw_consent(w.bob, "marketing"),
        lambda w: [(A.CONSENT, C, w.bob)],
    ),
    "consent_history": (
        "personal read",
        lambda w: w.crm.consent_history(w.ann),
        lambda w: [(A.READ, C, w.ann)],
    ),
    "consent_state": (
        "personal read",
        lambda w: w.crm.consent_state(w.ann),
        lambda w: [(A.READ, C, w.ann)],
    ),
    "erase": ("write", lambda w: w.crm.erase(w.extra), lambda w: [(A.ERASE, C, w.extra)]),
    "merge": (
        "write",
        lambda w: w.crm.merge(w.ann, w.extra),
        lambda w: [(A.MERGE, C, w.extra), (A.MERGE, C, w.ann)],
    ),
    "record_interaction": (
        "write",
        lambda w: w.crm.record_interaction(make_interaction(w.bob, T0)),
        lambda w: [(A.RECORD_INTERACTION, IX, w.bob)],
    ),
    "record_interactions": (
        "write",
        lambda w: w.crm.record_interactions([make_interaction(w.bob, T0)]),
        lambda w: [(A.RECORD_INTERACTIONS, IX, None)],
    ),
    "record_transaction": (
        "write",
        lambda w: w.crm.record_transaction(make_transaction(w.crm.store, w.bob, T0)),
        lambda w: [(A.RECORD_TRANSACTION, TX, w.bob)],
    ),
    "record_transactions": (
        "write",
        lambda w: w.crm.record_transactions([make_transaction(w.crm.store, w.bob, T0)]),
        lambda w: [(A.RECORD_TRANSACTIONS, TX, None)],
    ),
    "import_transactions": (
        "write",
        lambda w: w.crm.import_transactions(_tx_table(w)),
        lambda w: [(A.IMPORT_TRANSACTIONS, TX, None)],
    ),
    "import_interactions": (
        "write",
        lambda w: w.crm.import_interactions(_ix_table(w)),
        lambda w: [(A.IMPORT_INTERACTIONS, IX, None)],
    ),
    "import_customers": (
        "write",
        lambda w: w.crm.import_customers(pa.table({"display_name": ["Gil", "Hal"]})),
        lambda w: [(A.IMPORT_CUSTOMERS, C, None)],
    ),
    # -- Crm: personal reads
    "get": ("personal read", lambda w: w.crm.get(w.ann), lambda w: [(A.READ, C, w.ann)]),
    "find_by_number": (
        "personal read",
        lambda w: w.crm.find_by_number(w.ann.value),
        lambda w: [(A.READ, C, w.ann)],
    ),
    "find_by_email": (
        "personal read",
        lambda w: w.crm.find_by_email("ANN@example.com"),
        lambda w: [(A.FIND, C, w.ann)],
    ),
    "find_by_phone": (
        "personal read",
        lambda w: w.crm.find_by_phone("020 7946 0958", "GB"),
        lambda w: [(A.FIND, C, w.ann)],
    ),
    "find_by_external_id": (
        "personal read",
        lambda w: w.crm.find_by_external_id("erp", "E1"),
        lambda w: [(A.READ, C, w.ann)],
    ),
    "customer_360": (
        "personal read",
        lambda w: w.crm.customer_360(w.ann),
        lambda w: [(A.VIEW_360, C, w.ann)],
    ),
    # -- Crm: reads of no personal data (numbers, counts, the trail) and pure helpers
    "new_customer": ("non-personal read", lambda w: w.crm.new_customer("Ivy"), lambda w: []),
    "with_reporting_total": (
        "non-personal read",
        lambda w: w.crm.with_reporting_total(make_transaction(w.crm.store, w.bob, T0)),
        lambda w: [],
    ),
    "numbers_by_external_id": (
        "non-personal read",
        lambda w: w.crm.numbers_by_external_id("erp", ["E1"]),
        lambda w: [],
    ),
    "existing_numbers": (
        "non-personal read",
        lambda w: w.crm.existing_numbers([w.ann]),
        lambda w: [],
    ),
    "external_ids": ("non-personal read", lambda w: w.crm.external_ids(), lambda w: []),
    "count_customers": ("non-personal read", lambda w: w.crm.count_customers(), lambda w: []),
    "subscribe": ("non-personal read", lambda w: w.crm.subscribe(lambda e: None), lambda w: []),
    "audit": ("non-personal read", lambda w: w.crm.audit(w.ann), lambda w: []),
    "acting_as": ("non-personal read", lambda w: _acting(w), lambda w: []),
    # -- Analytics: writes
    "define_segment": (
        "write",
        lambda w: w.analytics.define_segment("big", "monetary >= 100"),
        lambda w: [(A.DEFINE_SEGMENT, S, None)],
    ),
    "delete_segment": (
        "write",
        lambda w: w.analytics.delete_segment("buyers"),
        lambda w: [(A.DELETE_SEGMENT, S, None)],
    ),
    "run_segment": (
        "write",
        lambda w: w.analytics.run_segment("buyers"),
        lambda w: [(A.RUN_SEGMENT, S, None)],
    ),
    "run_segments": (
        "write",
        lambda w: w.analytics.run_segments(),
        lambda w: [(A.RUN_SEGMENT, S, None)],
    ),
    "define_and_run_segment": (
        "write",
        lambda w: w.analytics.define_and_run_segment("any", "frequency >= 0"),
        lambda w: [(A.DEFINE_SEGMENT, S, None), (A.RUN_SEGMENT, S, None)],
    ),
    "reclassify": (
        "write",
        lambda w: w.analytics.reclassify(),
        lambda w: [(A.RECLASSIFY, C, None)],
    ),
    # -- Analytics: personal reads (profiling)
    "snapshot": (
        "personal read",
        lambda w: w.analytics.snapshot(),
        lambda w: [(A.SNAPSHOT, C, None)],
    ),
    "rfm": ("personal read", lambda w: w.analytics.rfm(), lambda w: [(A.SCORE, C, None)]),
    "evaluate": (
        "personal read",
        lambda w: w.analytics.evaluate("frequency >= 1"),
        lambda w: [(A.EVALUATE, C, None)],
    ),
    "refresh": (
        "personal read",
        lambda w: w.analytics.refresh(w.ann),
        lambda w: [(A.REFRESH, C, w.ann)],
    ),
    # -- Analytics: segment definitions and saved runs (rules and CRM numbers)
    "segment": ("non-personal read", lambda w: w.analytics.segment("buyers"), lambda w: []),
    "segments": ("non-personal read", lambda w: w.analytics.segments(), lambda w: []),
    "latest_run": ("non-personal read", lambda w: w.analytics.latest_run("buyers"), lambda w: []),
    # -- Analytics: predictive models (every customer's purchases read: profiling)
    "purchase_summary": (
        "personal read",
        lambda w: w.analytics.purchase_summary(),
        lambda w: [(A.PREDICT, C, None)],
    ),
    "fit_bgnbd": (
        "personal read",
        lambda w: w.analytics.fit_bgnbd(),
        lambda w: [(A.PREDICT, C, None)],
    ),
    "fit_pareto_nbd": (
        "personal read",
        lambda w: w.analytics.fit_pareto_nbd(),
        lambda w: [(A.PREDICT, C, None)],
    ),
    "fit_gamma_gamma": (
        "personal read",
        lambda w: w.analytics.fit_gamma_gamma(),
        lambda w: [(A.PREDICT, C, None)],
    ),
    "bgnbd_holdout": (
        "personal read",
        lambda w: w.analytics.bgnbd_holdout(T0 - dt.timedelta(days=100)),
        lambda w: [(A.PREDICT, C, None), (A.PREDICT, C, None)],  # calibration, then whole
    ),
    # -- Crm: subject access and retention
    "export_subject": (
        "personal read",
        lambda w: w.crm.export_subject(w.ann),
        lambda w: [(A.EXPORT, C, w.ann)],
    ),
    "apply_retention": (
        "write",
        lambda w: w.crm.apply_retention(
            [AnonymiseInactiveCustomers(inactive_for=days(1))], T0 + dt.timedelta(days=400)
        ),
        lambda w: [(A.RETENTION, C, n) for n in w.result.outcomes[0].customers],
    ),
    "customer_lifetime_value": (
        "non-personal read",  # computes on two fits already made (and audited): no read
        lambda w: _lifetime_value(w),
        lambda w: [(A.PREDICT, C, None), (A.PREDICT, C, None)],
    ),
}


_FITS = frozenset(
    {"fit_bgnbd", "fit_pareto_nbd", "fit_gamma_gamma", "bgnbd_holdout", "customer_lifetime_value"}
)
# Non-personal methods whose call needs input only an audited use case can make.
_NEEDS_AUDITED_INPUT = frozenset({"customer_lifetime_value"})


def _public_methods(cls: type) -> set[str]:
    return {
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_")
        and callable(value)
        and not isinstance(inspect.getattr_static(cls, name), property)
    }


def _deprecated(call: Callable[[], Any]) -> Any:
    """Run a deprecated use case (its DeprecationWarning is expected, not an error here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return call()


def test_every_public_method_is_classified() -> None:
    public = _public_methods(Crm) | _public_methods(Analytics)
    unclassified = sorted(public - set(METHODS))
    assert not unclassified, f"add these to METHODS with their audit entries: {unclassified}"
    assert not sorted(set(METHODS) - public), "METHODS names methods that no longer exist"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_use_case_leaves_exactly_its_entries(store: Store, method: str) -> None:
    kind, call, expected = METHODS[method]
    if method in _FITS:
        pytest.importorskip("scipy")  # the [predictive] extra
    world = World(store)
    before = len(world.entries())
    with world.crm.acting_as("user:42"):
        world.result = call(world)
    new = world.entries()[before:]
    assert [(e.action, e.entity, e.customer) for e in new] == expected(world)
    assert all(e.actor == "user:42" for e in new)
    assert all(e.outcome is AuditOutcome.ALLOWED for e in new)
    assert all(e.at == world.clock.now() for e in new)
    if kind == "non-personal read":
        assert method in _NEEDS_AUDITED_INPUT or new == []
    else:
        assert new, f"{method} is a {kind} and must be audited"


def test_bulk_entries_count_rows_and_updates_name_fields(store: Store) -> None:
    world = World(store)
    crm = world.crm
    crm.register_many([crm.new_customer("Eve"), crm.new_customer("Fay")])
    crm.import_transactions(_tx_table(world), batch_size=1)
    _update(world)
    entries = crm.audit(since=world.clock.now())
    assert [(e.action, e.rows) for e in entries if e.rows is not None] == [
        (A.REGISTER_MANY, 2),
        (A.IMPORT_TRANSACTIONS, 1),  # one entry per batch: each batch is its own transaction
        (A.IMPORT_TRANSACTIONS, 1),
    ]
    assert crm.audit(action="update")[-1].fields == ("tags", "title")


def test_a_failing_use_case_leaves_no_entry(store: Store) -> None:
    world = World(store)
    crm = world.crm
    before = world.entries()
    stale = crm.get(world.bob)
    crm.change_stage(world.bob, "prospect")
    after_ok = world.entries()
    stale.title = "Dr"
    with pytest.raises(ConcurrencyError):
        crm.update(stale)
    with pytest.raises(NotFound):
        crm.get(store.scheme.format(999_999))
    with pytest.raises(NotFound):
        crm.record_interaction(make_interaction(store.scheme.format(999_998), T0))
    with pytest.raises(ValidationError):
        crm.register("Zed", emails=["not an address"])
    assert world.entries() == after_ok
    assert len(after_ok) == len(before) + 2


def test_actor_is_validated() -> None:
    for bad in ("Ann Lee", "ann@example.com", "+442079460958", "", "x" * 65, 42):
        with pytest.raises(ValidationError):
            Crm(InMemoryStore(), actor=bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError), Crm(InMemoryStore()).acting_as(bad):  # type: ignore[arg-type]
            pass


def test_acting_as_nests_and_stays_in_its_thread() -> None:
    crm = Crm(InMemoryStore(), actor="user:default")
    seen: dict[str, str] = {}
    ready, release = threading.Event(), threading.Event()

    def other() -> None:
        seen["before"] = crm.actor
        with crm.acting_as("user:thread"):
            ready.set()
            release.wait(5)
            crm.register("Tia")
            seen["inside"] = crm.actor
        seen["after"] = crm.actor

    with crm.acting_as("user:outer"):
        with crm.acting_as("user:inner"):
            thread = threading.Thread(target=other)
            thread.start()
            ready.wait(5)
            assert crm.actor == "user:inner"  # the other thread's block does not leak here
            crm.register("Uma")
            release.set()
            thread.join(5)
        assert crm.actor == "user:outer"
    assert crm.actor == "user:default"
    assert seen == {"before": "user:default", "inside": "user:thread", "after": "user:default"}
    assert sorted(e.actor for e in crm.audit(action="register")) == ["user:inner", "user:thread"]


def test_acting_as_is_per_asyncio_task_and_per_facade() -> None:
    crm, other = Crm(InMemoryStore()), Crm(InMemoryStore(), actor="user:other")

    async def task(actor: str, delay: float) -> str:
        with crm.acting_as(actor):
            await asyncio.sleep(delay)
            return crm.actor

    async def main() -> list[str]:
        return list(await asyncio.gather(task("user:a", 0.02), task("user:b", 0.0)))

    assert asyncio.run(main()) == ["user:a", "user:b"]
    with crm.acting_as("user:x"):
        assert other.actor == "user:other"
    assert crm.actor == "system"


def test_audit_filters_validate_their_arguments(store: Store) -> None:
    crm = World(store).crm
    with pytest.raises(ValidationError):
        crm.audit(action="shout")
    with pytest.raises(ValidationError):
        crm.audit(since=dt.datetime(2026, 1, 1))
    with pytest.raises(ValidationError):
        crm.audit(limit=-1)
    with pytest.raises(ValidationError):
        crm.audit(actor="Ann Lee")
    assert [e.action for e in crm.audit(limit=1)] == [A.REGISTER]


SENTINELS = {
    "given": "Sentinelgiven",
    "family": "Sentinelfamily",
    "email": "sentinel.mail@sentinel-domain.example",
    "phone": "+442079460999",
    "external_id": "SENTINEL-EXT-77",
    "organisation": "Sentinel Org",
    "note": "sentinel note text",
}


def _dump(store: Store) -> str:
    """Everything the audit log holds, as text."""
    from crmcore.adapters.memory import InMemoryStore

    if isinstance(store, InMemoryStore):
        with store.unit_of_work() as uow:
            return "\n".join(repr(e) + str(e.fields) for e in uow.audit.query())
    import sqlalchemy as sa

    tables = store.tables  # type: ignore[attr-defined]
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(sa.select(tables.audit_log)).all()
    return "\n".join(repr(tuple(row)) for row in rows)


def test_audit_rows_hold_no_personal_data_and_survive_erasure(store: Store) -> None:
    crm = Crm(store)
    from crmcore import PersonName

    number = crm.register(
        PersonName(given=SENTINELS["given"], family=SENTINELS["family"]),
        emails=[SENTINELS["email"]],
        phones=[SENTINELS["phone"]],
        organisation=SENTINELS["organisation"],
        source="erp",
        external_id=SENTINELS["external_id"],
    ).number
    customer = crm.get(number)
    customer.organisation = "Sentinel Org Two"
    crm.update(customer)
    crm.find_by_email(SENTINELS["email"])
    crm.find_by_phone(SENTINELS["phone"])
    crm.find_by_external_id("erp", SENTINELS["external_id"])
    crm.record_interaction(make_interaction(number, T0, notes=SENTINELS["note"]))
    crm.customer_360(number)
    crm.erase(number)
    dump = _dump(store)
    for value in SENTINELS.values():
        assert value.lower() not in dump.lower()
    assert "sentinel" not in dump.lower()
    actions = [e.action for e in crm.audit(number)]
    assert actions[0] is A.REGISTER and actions[-1] is A.ERASE
    assert len(actions) == 9


def test_store_dump_helper_sees_the_rows(store: Store) -> None:
    # The dump above must be able to fail: it shows an entry's number and actor.
    crm = Crm(store, actor="user:dumped")
    number = crm.register("Ann").number
    assert number.value in _dump(store) and "user:dumped" in _dump(store)


def test_entries_have_unique_ids(store: Store) -> None:
    world = World(store)
    ids = [e.id for e in world.entries()]
    assert len(set(ids)) == len(ids) and all(isinstance(i, uuid.UUID) for i in ids)
