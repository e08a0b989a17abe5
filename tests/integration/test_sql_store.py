"""SQL specifics of SqlStore on SQLite (memory, file), PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from tests.helpers import SQL_BACKENDS, backend_url

from crmcore import (
    Analytics,
    BulkResult,
    ConcurrencyError,
    ConfigurationError,
    Crm,
    CrmNumber,
    Customer,
    DuplicateError,
    ErasedError,
    FixedClock,
    Interaction,
    Money,
    NotFound,
    Transaction,
    ValidationError,
)
from crmcore.adapters.sqlalchemy import (
    SqlStore,
    UtcDateTime,
    build_tables,
    configure_sqlite_engine,
)
from crmcore.domain import contact
from crmcore.testing import strategies as cst

BACKENDS = list(SQL_BACKENDS)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, request.param, tmp_path)


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    s = SqlStore.from_url(url, create_schema=True, table_prefix="st_")
    try:
        yield s
    finally:
        s.drop_schema()
        s.close()


@pytest.fixture
def crm(store: SqlStore) -> Crm:
    return Crm(store, clock=FixedClock(NOW))


def purchase(number: CrmNumber, amount: str = "10.00", **kw: object) -> Transaction:
    return Transaction(
        customer=number,
        occurred_at=kw.pop("at", NOW),  # type: ignore[arg-type]
        kind=kw.pop("kind", "purchase"),  # type: ignore[arg-type]
        total=Money(amount, "USD"),
        **kw,  # type: ignore[arg-type]
    )


def test_customers_round_trip_exactly(store: SqlStore) -> None:
    @settings(max_examples=10, suppress_health_check=list(HealthCheck), deadline=None)
    @given(customer=cst.customers())
    def check(customer: Customer) -> None:
        # A customer's number is permanent: take a fresh one with attrs.evolve.
        customer = attrs.evolve(customer, number=store.scheme.format(store.allocator.allocate()))
        if customer.external_id is not None:
            customer.external_id = uuid.uuid4().hex
        with store.unit_of_work() as uow:
            uow.customers.add(customer)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.customers.get(customer.number) == customer

    check()


def test_reads_do_not_parse_stored_contact_points_again(
    crm: Crm, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = crm.register("Ann Lee", emails=["Ann.Lee@Example.COM"], phones=["+442079460018"])

    def parse(*args: object) -> str:
        raise AssertionError("a stored contact point was parsed again")

    monkeypatch.setattr(contact, "normalize_email", parse)
    monkeypatch.setattr(contact, "normalize_phone", parse)
    with store.unit_of_work() as uow:
        assert uow.customers.get(ann.number) == ann
        assert list(uow.customers.iter_all()) == [ann]
        assert uow.customers.find_by_phone("+442079460018") == [ann]


def test_history_round_trips_and_timestamps_keep_microseconds(crm: Crm, store: SqlStore) -> None:
    ann = crm.register("Ann Lee")
    at = dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    tx = crm.record_transaction(purchase(ann.number, "3.33", at=at, source="erp", external_ref="1"))
    ix = Interaction(
        customer=ann.number,
        occurred_at=at,
        channel="email",
        direction="inbound",
        kind="complaint",
        notes="ünïcødé 🎉",
        follow_up_due=at + dt.timedelta(microseconds=1),
    )
    crm.record_interaction(ix)
    with store.unit_of_work() as uow:
        stored = uow.transactions.get(tx.record.id)
        assert stored == tx.record
        assert stored.occurred_at == at and stored.occurred_at.tzinfo == dt.UTC
        assert uow.interactions.get(ix.id) == ix
        agg = uow.aggregates.get(ann.number)
    assert agg.last_purchase_at == at and agg.complaint_count == 1


def test_naive_datetimes_never_reach_the_database(store: SqlStore) -> None:
    t = store.tables.segment_runs
    stmt = sa.insert(t).values(segment="x", as_of=dt.datetime(2024, 1, 1))
    assert store.engine is not None
    with store.engine.connect() as conn, pytest.raises(sa.exc.StatementError) as info:
        conn.execute(stmt)
    assert isinstance(info.value.orig, ValidationError)


def test_stale_update_raises_and_never_overwrites(crm: Crm) -> None:
    ann = crm.register("Ann Lee")
    first, second = crm.get(ann.number), crm.get(ann.number)
    first.organisation = "First"
    crm.update(first)
    second.organisation = "Second"
    with pytest.raises(ConcurrencyError):
        crm.update(second)
    assert crm.get(ann.number).organisation == "First"
    assert crm.get(ann.number).version == 1


def test_erase_keeps_a_tombstone_and_the_number_is_never_reused(crm: Crm, store: SqlStore) -> None:
    ann = crm.register("Ann Lee", emails=["ann@example.com"], tags=["vip"])
    crm.record_transaction(purchase(ann.number, source="erp", external_ref="1"))
    crm.erase(ann.number)
    with pytest.raises(ErasedError):
        crm.get(ann.number)
    assert store.engine is not None
    with store.engine.connect() as conn:
        t = store.tables
        row = conn.execute(sa.select(t.customers).where(t.customers.c.number == ann.number.value))
        tomb = row.mappings().one()
        assert tomb["erased"] and tomb["display_name"] is None and tomb["created_at"] is None
        for table in (t.transactions, t.customer_emails, t.customer_tags, t.aggregates):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    with store.unit_of_work() as uow, pytest.raises(DuplicateError):
        uow.customers.add(ann)
    assert crm.register("Bob").number != ann.number
    # The erased customer's reference is free again (its record is gone).
    bob = crm.register("Bob Two")
    assert crm.record_transaction(purchase(bob.number, source="erp", external_ref="1")).created


def test_erased_personal_data_leaves_no_bytes_in_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _insecure_default(dbapi_connection: Any, _record: Any) -> None:
        # As on a SQLite built without SQLITE_SECURE_DELETE (Debian's has it on).
        dbapi_connection.execute("PRAGMA secure_delete=OFF")

    store = SqlStore(configure_sqlite_engine(engine))
    store.create_schema()
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        crm = Crm(store, clock=FixedClock(NOW))
        email = "ann.secret-4711@example.com"
        others = [crm.register(f"Other {i}", emails=[f"o{i}@example.org"]) for i in range(20)]
        ann = crm.register("Annabel Secretname", emails=[email], phones=["+442079460018"])
        crm.record_transaction(purchase(ann.number, source="erp", external_ref="A-1"))
        assert store.engine is not None

        def file_bytes() -> bytes:
            with store.engine.connect() as conn:  # type: ignore[union-attr]
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return path.read_bytes()

        assert email.encode() in file_bytes()
        crm.erase(ann.number)
        data = file_bytes()
        assert email.encode() not in data
        assert b"Secretname" not in data
        assert b"+442079460018" not in data
        assert b"o7@example.org" in data  # the others are untouched
        assert len(others) == 20
    finally:
        engine.dispose()


def test_duplicate_external_ref_stores_one_row(crm: Crm, store: SqlStore) -> None:
    ann = crm.register("Ann Lee")
    tx = purchase(ann.number, source="erp", external_ref="A-1")
    with store.unit_of_work() as uow:
        stamped = crm.with_reporting_total(tx)
        assert uow.transactions.add(stamped) is True
        again = crm.with_reporting_total(purchase(ann.number, source="erp", external_ref="A-1"))
        assert uow.transactions.add(again) is False
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.aggregates.get(ann.number).purchase_count == 1
        assert len(uow.transactions.for_customer(ann.number)) == 1


# Statements sent to record one new transaction (add() is the only duplicate check):
# SQLite: BEGIN IMMEDIATE, a guarded INSERT ... SELECT ... ON CONFLICT DO NOTHING, the
# aggregate UPDATE; PostgreSQL: both in one statement (data-modifying CTEs); MariaDB: one
# SELECT of the customer/reference/id facts, the INSERT, its id look-up (the driver's
# found-rows count cannot tell a skipped duplicate) and the aggregate UPDATE.
# (Before the checks were folded into the INSERT: 6, 5 and 7; before the one-row fold
# and the combined statement: 3, 2 and 5.)
RECORD_ONE_STATEMENTS = {"sqlite": 3, "postgresql": 1, "mysql": 4, "mariadb": 4}
# Refreshing that customer (Analytics.refresh): the saved segments, then the customer's
# flags, aggregate row, tags and the latest instants of both histories in one SELECT.
REFRESH_ONE_STATEMENTS = 2
# What the audit trail adds to each use case above: its entry's INSERT, in the same
# transaction (a refresh writes nothing else, so on SQLite it also starts the write with
# BEGIN IMMEDIATE).
AUDIT_STATEMENTS = 1


def test_recording_one_new_transaction_checks_for_duplicates_once(
    crm: Crm, store: SqlStore
) -> None:
    ann = crm.register("Ann Lee")
    sent: list[str] = []
    assert store.engine is not None

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    first = crm.with_reporting_total(purchase(ann.number, source="erp", external_ref="N-1"))
    again = crm.with_reporting_total(purchase(ann.number, source="erp", external_ref="N-1"))
    bare = crm.with_reporting_total(purchase(ann.number))
    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        with store.unit_of_work() as uow:
            sent.clear()
            assert uow.transactions.add(first) is True
            recorded = list(sent)
            sent.clear()
            assert uow.transactions.add(again) is False
            repeated = list(sent)
            sent.clear()
            assert uow.transactions.add(bare) is True
            unreferenced = list(sent)
            uow.commit()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    limit = RECORD_ONE_STATEMENTS[store.dialect_name]
    assert len(recorded) <= limit, recorded
    # The unit already writes: no second BEGIN.
    assert len(unreferenced) <= limit - (store.dialect_name == "sqlite"), unreferenced
    assert len(repeated) <= 2, repeated  # the INSERT (or SELECT) and one SELECT of the facts
    with store.unit_of_work() as uow:
        assert uow.aggregates.get(ann.number).purchase_count == 2


def test_one_event_sends_the_pinned_statements(crm: Crm, store: SqlStore) -> None:
    ann = crm.register("Ann Lee", tags=["vip", "newsletter"])
    analytics = Analytics(crm)
    analytics.define_segment("vip-buyers", '"vip" in tags and frequency >= 1')
    analytics.define_segment("big", "monetary >= 5000")
    crm.record_transaction(purchase(ann.number, "20.00", at=NOW - dt.timedelta(days=3)))
    analytics.rfm(as_of=NOW)
    sent: list[str] = []
    assert store.engine is not None

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        crm.record_transaction(purchase(ann.number, "12.50", source="erp", external_ref="E-1"))
        recorded = list(sent)
        sent.clear()
        refreshed = analytics.refresh(ann.number, NOW)
        reads = list(sent)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert len(recorded) == RECORD_ONE_STATEMENTS[store.dialect_name] + AUDIT_STATEMENTS, recorded
    assert recorded[-1].startswith(f"INSERT INTO {store.tables.audit_log.name}")
    refresh_audit = AUDIT_STATEMENTS + (store.dialect_name == "sqlite")
    assert len(reads) == REFRESH_ONE_STATEMENTS + refresh_audit, reads
    assert refreshed.segments == {"vip-buyers": True, "big": False}
    assert refreshed.metrics["frequency"] == 2
    assert refreshed.metrics["monetary"] == 3250
    assert refreshed.metrics["recency_days"] == 0
    assert refreshed.metrics["tags"] == frozenset({"vip", "newsletter"})
    # The row read in one statement is the row of the full snapshot.
    snapshot = analytics.snapshot(NOW)
    row = snapshot.row(list(snapshot.numbers()).index(ann.number))
    assert refreshed.metrics == {k: row[k] for k in refreshed.metrics}


def test_bulk_customer_lookups_answer_a_batch_in_a_few_queries(crm: Crm, store: SqlStore) -> None:
    people = crm.register_many(
        [crm.new_customer(f"P{i}", source="erp", external_id=f"K{i}") for i in range(40)]
    ).registered
    wanted = [f"K{i}" for i in range(1200)]  # more keys than one IN list holds (500)
    sent: list[str] = []
    assert store.engine is not None

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        found = crm.numbers_by_external_id("erp", wanted)
        by_key = list(sent)
        sent.clear()
        alive = crm.existing_numbers([p.number for p in people])
        by_number = list(sent)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert found == {p.external_id: p.number for p in people}
    assert alive == {p.number for p in people}
    # The keys travel as one parameter: one statement for the whole batch.
    assert len(by_key) == 1, by_key
    assert len(by_number) == 1, by_number


def test_bulk_lookups_slice_a_large_key_set_and_still_answer_exactly(
    crm: Crm, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmcore.adapters.sqlalchemy import _keysets

    people = crm.register_many(
        [crm.new_customer(f"P{i}", source="erp", external_id=f"K{i}") for i in range(30)]
    ).registered
    # Slices of 7 keys (and, on MariaDB, of about 100 bytes of JSON) stand in for the
    # 65,536 keys and 4 MiB a statement carries in production.
    monkeypatch.setattr(_keysets, "KEY_SET", 7)
    monkeypatch.setattr(_keysets, "_MYSQL_BYTES", 100)
    wanted = [f"K{i}" for i in range(70)]
    sent: list[str] = []
    assert store.engine is not None

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        found = crm.numbers_by_external_id("erp", wanted)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert found == {p.external_id: p.number for p in people}
    assert len(sent) >= 10, sent  # 70 keys in slices of at most 7
    assert crm.existing_numbers([p.number for p in people]) == {p.number for p in people}
    from crmcore.testing.contract._support import make_customer

    fresh = [make_customer(store, source="erp", external_id=f"Q{i}") for i in range(20)]
    again = make_customer(store, source="erp", external_id="K29")
    with pytest.raises(DuplicateError), store.unit_of_work() as uow:
        uow.customers.add_many([*fresh, again])
    assert crm.numbers_by_external_id("erp", ["Q0", "Q19"]) == {}


def test_add_many_folds_aggregates_set_wise(crm: Crm, store: SqlStore) -> None:
    people = [crm.register(f"Customer {i}") for i in range(3)]
    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    txs = []
    for i in range(30):
        who = people[i % 3].number
        kind = "refund" if i % 10 == 9 else "purchase"
        txs.append(
            purchase(
                who,
                f"{i + 1}.00",
                at=base + dt.timedelta(days=i),
                kind=kind,
                source="erp",
                external_ref=f"r{i % 25}",
            )
        )
    result = crm.record_transactions(txs)
    assert (result.created, result.already_recorded) == (25, 5)
    with store.unit_of_work() as uow:
        for person in people:
            mine = [t for t in txs[:25] if t.customer == person.number]
            agg = uow.aggregates.get(person.number)
            buys = [t for t in mine if t.kind.value == "purchase"]
            assert agg.purchase_count == len(buys)
            assert agg.refund_count == len(mine) - len(buys)
            assert agg.purchase_minor == sum(t.total.minor_units for t in buys)
            assert agg.first_purchase_at == min(t.occurred_at for t in buys)
            assert agg.last_purchase_at == max(t.occurred_at for t in buys)
    # A second batch with the same references adds nothing.
    retried = [attrs.evolve(t, id=uuid.uuid4()) for t in txs]
    assert crm.record_transactions(retried).created == 0


def test_retrying_the_same_records_counts_them_as_already_recorded(
    crm: Crm, store: SqlStore
) -> None:
    ann = crm.register("Ann Lee")
    txs = [purchase(ann.number, f"{i}.00", source="erp", external_ref=f"R{i}") for i in (1, 2, 3)]
    ixs = [
        Interaction(
            customer=ann.number,
            occurred_at=NOW,
            channel="email",
            direction="inbound",
            kind="inquiry",
            source="helpdesk",
            external_ref=f"T{i}",
        )
        for i in (1, 2)
    ]
    assert crm.record_transactions(txs) == BulkResult(created=3, already_recorded=0)
    # The very same list again (same ids and references): already recorded, not duplicates.
    assert crm.record_transactions(txs) == BulkResult(created=0, already_recorded=3)
    assert not crm.record_transaction(txs[0]).created
    for expected in (2, 0):
        with store.unit_of_work() as uow:
            assert uow.interactions.add_many(ixs) == expected
            assert uow.interactions.add(ixs[0]) is False
            uow.commit()
    with store.unit_of_work() as uow:
        assert uow.aggregates.get(ann.number).purchase_count == 3
        assert uow.aggregates.get(ann.number).interaction_count == 2
        # A taken id under a new reference is still a duplicate, and writes nothing.
        clash = attrs.evolve(crm.with_reporting_total(txs[0]), external_ref="R9")
        with pytest.raises(DuplicateError):
            uow.transactions.add_many([crm.with_reporting_total(txs[1]), clash])


def test_recording_for_a_missing_customer_raises_not_found(store: SqlStore) -> None:
    ghost = store.scheme.format(999)
    tx = Transaction(
        customer=ghost,
        occurred_at=NOW,
        kind="purchase",
        total=Money("1", "USD"),
        reporting_total=Money("1", "USD"),
    )
    with store.unit_of_work() as uow, pytest.raises(NotFound):
        uow.transactions.add(tx)


def test_rolled_back_unit_leaves_nothing(crm: Crm, store: SqlStore) -> None:
    draft = crm.register("Ann Lee")
    with store.unit_of_work() as uow:
        uow.customers.erase(draft.number)
        # no commit
    assert crm.get(draft.number).name.display == "Ann Lee"


def test_reporting_currency_lives_in_the_database(url: str) -> None:
    first = SqlStore.from_url(url, create_schema=True, reporting_currency="EUR", table_prefix="rc_")
    try:
        assert first.reporting_currency == "EUR"
        if url != "sqlite://":  # a private in-memory database dies with its engine
            second = SqlStore.from_url(url, table_prefix="rc_")
            assert second.reporting_currency == "EUR"
            second.close()
            with pytest.raises(ConfigurationError, match="conflicts"):
                SqlStore.from_url(url, reporting_currency="GBP", table_prefix="rc_")
    finally:
        first.drop_schema()
        first.close()


@pytest.fixture(params=["sqlite-file", "postgresql", "mariadb"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Backends a second engine can reach (a private in-memory database is not shareable)."""
    return backend_url(request, request.param, tmp_path)


def test_host_connection_units_are_savepoints_and_never_commit(shared_url: str) -> None:
    url = shared_url
    owner = SqlStore.from_url(url, create_schema=True, table_prefix="hc_")
    engine = sa.create_engine(url)
    if url.startswith("sqlite"):
        with engine.connect() as conn:
            with pytest.raises(ConfigurationError, match="configure_sqlite_engine"):
                Crm(SqlStore(conn, table_prefix="hc_")).get("C0000000013")
            conn.rollback()
        configure_sqlite_engine(engine)
    try:
        with engine.connect() as conn:
            store = SqlStore(conn, table_prefix="hc_")
            crm = Crm(store, clock=FixedClock(NOW))
            ann = crm.register("Ann Lee")
            assert crm.get(ann.number).name.display == "Ann Lee"
            assert conn.in_transaction()  # the host's transaction is still open
            conn.rollback()  # the host decides: nothing it did not commit survives
        with owner.unit_of_work() as uow:
            assert uow.customers.find(ann.number) is None
    finally:
        engine.dispose()
        owner.drop_schema()
        owner.close()


def test_a_store_on_a_host_connection_leaves_the_hosts_transaction_state_alone(
    shared_url: str,
) -> None:
    url = shared_url
    owner = SqlStore.from_url(url, create_schema=True, table_prefix="hs_")
    engine = sa.create_engine(url)
    if url.startswith("sqlite"):
        configure_sqlite_engine(engine)
    try:
        with engine.connect() as conn:
            store = SqlStore(conn, table_prefix="hs_")
            # Reading the settings left no transaction behind: the host can begin its own.
            assert not conn.in_transaction()
            crm = Crm(store, clock=FixedClock(NOW))
            with conn.begin():
                ann = crm.register("Ann Lee")
            assert not conn.in_transaction()
            host = conn.begin()
            bob = crm.register("Bob Lee")
            # A store made inside the host's transaction neither ends nor commits it.
            assert SqlStore(conn, table_prefix="hs_").reporting_currency == "USD"
            assert conn.in_transaction() and host.is_active
            host.rollback()
        with owner.unit_of_work() as uow:
            assert uow.customers.get(ann.number).name.display == "Ann Lee"
            assert uow.customers.find(bob.number) is None
    finally:
        engine.dispose()
        owner.drop_schema()
        owner.close()


def test_tables_share_the_hosts_metadata_with_prefix(shared_url: str) -> None:
    url = shared_url
    host = sa.MetaData()
    sa.Table("host_orders", host, sa.Column("id", sa.Integer, primary_key=True))
    store = SqlStore.from_url(url, metadata=host, table_prefix="shop_crm_")
    try:
        assert {"host_orders", "shop_crm_customers", "shop_crm_aggregates"} <= set(host.tables)
        store.create_schema()
        assert store.engine is not None
        names = set(sa.inspect(store.engine).get_table_names())
        assert "shop_crm_customers" in names and "host_orders" not in names
    finally:
        store.drop_schema()
        store.close()


def test_every_constraint_is_named_within_63_characters() -> None:
    tables = build_tables(prefix="a_rather_long_prefix")
    for table in tables.all:
        for item in [*table.constraints, *table.indexes]:
            assert item.name, (table.name, item)
            assert len(str(item.name)) <= 63
    with pytest.raises(ConfigurationError):
        build_tables(prefix="Bad-Prefix")


def test_dialect_name_and_repr(store: SqlStore, url: str) -> None:
    expected = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mariadb"}
    assert store.dialect_name == expected[url.split(":")[0].split("+")[0]]
    assert "SqlStore(dialect=" in repr(store)


def test_iter_all_pages_in_number_order(crm: Crm, store: SqlStore) -> None:
    numbers = [crm.register(f"C {i}").number for i in range(7)]
    with store.unit_of_work() as uow:
        assert [c.number for c in uow.customers.iter_all(batch_size=3)] == sorted(numbers)
        assert uow.customers.count() == 7


def test_segments_and_memberships(crm: Crm, store: SqlStore) -> None:
    from crmcore import Segment, SegmentMembership

    ann = crm.register("Ann")
    with store.unit_of_work() as uow:
        uow.segments.save(Segment("vip", "frequency >= 3"))
        uow.segments.save(Segment("vip", "frequency >= 4", "changed"))
        run = SegmentMembership("vip", NOW, frozenset({ann.number}))
        uow.segments.save_membership(run)
        with pytest.raises(DuplicateError):
            uow.segments.save_membership(run)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.segments.get("vip").rule == "frequency >= 4"
        assert uow.segments.latest_membership("vip") == run
        assert uow.segments.latest_membership("vip", before=NOW) is None
        uow.segments.delete("vip")
        assert uow.segments.list() == []


def test_unit_of_work_is_used_once(store: SqlStore) -> None:
    uow = store.unit_of_work()
    with uow:
        pass
    with pytest.raises(ConfigurationError):
        uow.__enter__()
    with pytest.raises(ConfigurationError):
        uow.customers.count()


def test_allocate_many_is_consecutive_and_never_repeats(store: SqlStore) -> None:
    block = store.allocator.allocate_many(5)
    assert list(block) == list(range(block[0], block[0] + 5))
    assert store.allocator.allocate() == block[-1] + 1
    with pytest.raises(ValidationError):
        store.allocator.allocate_many(-1)


def test_pytest_plugin_fixture_gives_a_working_store(crm_sqlite_store: SqlStore) -> None:
    crm = Crm(crm_sqlite_store, clock=FixedClock(NOW))
    assert crm.get(crm.register("Ann").number).name.display == "Ann"


def test_utc_type_returns_aware_utc() -> None:
    kind = UtcDateTime()
    dialect = sa.create_engine("sqlite://").dialect
    plus2 = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    stored = kind.process_bind_param(plus2, dialect)
    assert stored == dt.datetime(2024, 1, 1, 10)
    assert kind.process_result_value(stored, dialect) == plus2


def test_money_is_exact_integer_minor_units(crm: Crm, store: SqlStore) -> None:
    ann = crm.register("Ann")
    big = Decimal("99999999999999.99")
    crm.record_transaction(purchase(ann.number, str(big)))
    with store.unit_of_work() as uow:
        assert uow.aggregates.get(ann.number).purchase_minor == 9_999_999_999_999_999
        assert uow.transactions.for_customer(ann.number)[0].total.amount == big
        with pytest.raises(NotFound):
            uow.transactions.get(uuid.uuid4())


def test_analyze_refreshes_statistics_and_changes_no_rows(store: SqlStore, crm: Crm) -> None:
    ann = crm.register("Ann", tags=["vip"]).number
    crm.record_transaction(purchase(ann, "12.50"))
    before = crm.customer_360(ann)
    store.analyze()
    assert crm.customer_360(ann) == before
    assert store.engine is not None
    with store.engine.connect() as conn:
        if store.dialect_name == "postgresql":
            # reltuples is -1 until a table was first analysed (PostgreSQL 14+).
            analysed = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_class WHERE relkind = 'r' "
                    "AND relname = ANY(:names) AND reltuples >= 0"
                ),
                {"names": [t.name for t in store.tables.all]},
            ).scalar_one()
            assert analysed == len(store.tables.all)
        elif store.dialect_name == "sqlite":
            tables = {row[0] for row in conn.exec_driver_sql("SELECT tbl FROM sqlite_stat1")}
            assert {"st_customers", "st_transactions"} <= tables
