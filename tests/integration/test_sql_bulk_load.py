"""The SQL store's set-wise batch path: staging, bulk load per dialect, exactness.

What ``test_import`` does not reach: every driver path of ``_fastload`` (PostgreSQL COPY,
SQLite's raw executemany, MariaDB with and without ``LOAD DATA LOCAL INFILE``) storing
awkward text exactly, a host's connection rolling a COPY back with its transaction, a
concurrent writer storing a reference between the check and the INSERT, and the ids.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.helpers import backend_url, unique_prefix

from crmcore import Crm, FixedClock, Money, Transaction
from crmcore.domain import CrmNumber
from crmcore.errors import CrmError
from crmcore.ports.batches import new_ids

pa = pytest.importorskip("pyarrow")
sa = pytest.importorskip("sqlalchemy")

from crmcore.adapters.sqlalchemy import SqlStore, _fastload, _history, _staging  # noqa: E402

T0 = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)

AWKWARD = [
    'quote " inside',
    "comma, and\nnew line",
    "back\\slash \\N and \\t",
    "NULL",
    "",
    "tab\there, ünïcödé ✓",
    None,
    "\\",
    '"',
]
"""Text a CSV path could get wrong (empty vs NULL, the NULL word, escapes, quoting)."""


@pytest.fixture(params=["sqlite-file", "postgresql", "mariadb", "mariadb-load-data"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """An empty store per SQL path; ``mariadb-load-data`` allows LOAD DATA LOCAL INFILE."""
    name = request.param
    url = backend_url(request, name.removesuffix("-load-data"), tmp_path)
    if name == "mariadb-load-data":
        url = sa.engine.make_url(url).update_query_dict({"local_infile": "1"})
    s = SqlStore.from_url(
        url, create_schema=True, table_prefix=unique_prefix("bl"), reporting_currency="EUR"
    )
    try:
        yield s
    finally:
        s.drop_schema()
        s.close()


def _people(crm: Crm, count: int) -> list[str]:
    return [
        crm.register(f"P{i}", source="crm", external_id=f"E{i}").number.value for i in range(count)
    ]


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_awkward_text_is_stored_exactly_on_every_path(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialect = store.engine.dialect.name if store.engine is not None else ""
    copies = _spy(monkeypatch, _fastload, "_copy_postgres")
    loads = _spy(monkeypatch, _fastload, "_load_data")
    crm = Crm(store, clock=FixedClock(T0))
    (number,) = _people(crm, 1)
    n = len(AWKWARD)
    table = pa.table(
        {
            "crm_number": [number] * n,
            "occurred_at": pa.array([T0 + dt.timedelta(microseconds=i) for i in range(n)]),
            "channel": ["email"] * n,
            "direction": ["inbound"] * n,
            "kind": ["complaint", "inquiry", "care"] * 3,
            "subject": AWKWARD,
            "notes": list(reversed(AWKWARD)),
            "agent": ["a,b"] * n,
            "follow_up_due": pa.array(
                [None if i % 2 else T0 + dt.timedelta(days=i) for i in range(n)],
                pa.timestamp("us", "UTC"),
            ),
            "source": ["desk"] * n,
            "external_ref": [f"r{i}" for i in range(n)],
        }
    )
    result = crm.import_interactions(table)
    assert (result.created, result.rejected) == (n, ())
    by_ref = {i.external_ref: i for i in crm.customer_360(number, recent=100).recent_interactions}
    # What the import's validation makes of each value (stripped, blank as None), compared
    # with the stored value; the row path stores exactly the validated value.
    strip = [None if v is None or not v.strip() else v.strip() for v in AWKWARD]
    for i in range(n):
        got = by_ref[f"r{i}"]
        assert (got.subject, got.notes, got.agent) == (strip[i], strip[n - 1 - i], "a,b")
        assert got.occurred_at == T0 + dt.timedelta(microseconds=i)
        assert got.follow_up_due == (None if i % 2 else T0 + dt.timedelta(days=i))
    aggregate = crm.customer_360(number).aggregate
    assert (aggregate.interaction_count, aggregate.complaint_count) == (n, 3)
    assert aggregate.last_interaction_at == T0 + dt.timedelta(microseconds=n - 1)
    assert len(copies) == (1 if dialect == "postgresql" else 0)
    url = store.engine.url if store.engine is not None else None
    assert len(loads) == (1 if url is not None and url.query.get("local_infile") else 0)


def test_a_copy_into_a_host_connection_rolls_back_with_each_batch_and_the_host(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = unique_prefix("bh")
    owner = SqlStore.from_url(
        postgres_url, create_schema=True, table_prefix=prefix, reporting_currency="EUR"
    )
    engine = sa.create_engine(postgres_url)
    copies = _spy(monkeypatch, _fastload, "_copy_postgres")
    folds = 0
    real_fold = _history.fold_staged_transactions

    def failing_second_fold(*args: Any) -> int:
        nonlocal folds
        folds += 1
        updated = real_fold(*args)
        if folds == 2:
            raise RuntimeError("disk full")  # after the COPY, the INSERT and the fold
        return updated

    try:
        with engine.connect() as conn, conn.begin() as host:
            store = SqlStore(conn, table_prefix=prefix)
            crm = Crm(store, clock=FixedClock(T0))
            numbers = _people(crm, 3)
            monkeypatch.setattr(_history, "fold_staged_transactions", failing_second_fold)
            data = pa.table(
                {
                    "crm_number": [numbers[i % 3] for i in range(10)],
                    "occurred_at": pa.array([T0] * 10),
                    "kind": ["purchase"] * 10,
                    "amount": ["1.00"] * 10,
                    "currency": ["EUR"] * 10,
                }
            )
            with pytest.raises(RuntimeError, match="disk full"):
                crm.import_transactions(data, batch_size=4)
            assert len(copies) == 2
            # The first batch (its own savepoint) stays, the failed one left nothing.
            counts = [crm.customer_360(CrmNumber(n)).aggregate.purchase_count for n in numbers]
            assert sum(counts) == 4
            stored = conn.execute(sa.select(sa.func.count()).select_from(store.tables.transactions))
            assert stored.scalar_one() == 4
            host.rollback()
        with owner.unit_of_work() as uow:
            assert uow.customers.count() == 0
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(owner.tables.transactions))
            assert stored.scalar_one() == 0
    finally:
        engine.dispose()
        owner.drop_schema()
        owner.close()


@pytest.fixture(params=["sqlite-file", "postgresql", "mariadb"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, request.param, tmp_path)


def test_a_reference_stored_concurrently_before_the_insert_is_a_duplicate(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference another unit stored after the anti-join (simulated in the same
    transaction, which the INSERT sees alike) is skipped, its row is not folded twice."""
    store = SqlStore.from_url(
        sql_url, create_schema=True, table_prefix=unique_prefix("bc"), reporting_currency="EUR"
    )
    try:
        crm = Crm(store, clock=FixedClock(T0))
        (number,) = _people(crm, 1)
        contexts: list[Any] = []
        real_move, real_count = _staging._move, _staging._count

        def move(context: Any, *args: Any, **kwargs: Any) -> int:
            contexts.append(context)
            return int(real_move(context, *args, **kwargs))

        def count(conn: Any, stage: Any) -> int:
            if contexts:  # the first count: right after the anti-join
                other = Transaction(
                    CrmNumber(number),
                    T0,
                    "purchase",
                    Money(Decimal("7.00"), "EUR"),
                    source="erp",
                    external_ref="2",
                    reporting_total=Money(Decimal("7.00"), "EUR"),
                )
                _history.SqlTransactions(contexts.pop()).add(other)
            return int(real_count(conn, stage))

        monkeypatch.setattr(_staging, "_move", move)
        monkeypatch.setattr(_staging, "_count", count)
        result = crm.import_transactions(
            pa.table(
                {
                    "crm_number": [number] * 4,
                    "occurred_at": pa.array([T0] * 4),
                    "kind": ["purchase"] * 4,
                    "amount": ["1.00", "2.00", "3.00", "4.00"],
                    "currency": ["EUR"] * 4,
                    "source": ["erp"] * 4,
                    "external_ref": ["1", "2", "3", "1"],
                }
            )
        )
        assert (result.created, result.duplicates) == (2, 2)
        view = crm.customer_360(CrmNumber(number), recent=10)
        assert sorted(t.total.amount for t in view.recent_transactions) == [1, 3, 7]
        assert (view.aggregate.purchase_count, view.aggregate.purchase_minor) == (3, 1100)
    finally:
        store.drop_schema()
        store.close()


def test_an_erased_or_missing_customer_fails_the_batch_before_anything_is_stored(
    sql_url: str,
) -> None:
    store = SqlStore.from_url(
        sql_url, create_schema=True, table_prefix=unique_prefix("be"), reporting_currency="EUR"
    )
    try:
        crm = Crm(store, clock=FixedClock(T0))
        numbers = _people(crm, 2)
        crm.erase(CrmNumber(numbers[1]))
        data = pa.table(
            {
                "crm_number": numbers,
                "occurred_at": pa.array([T0] * 2),
                "kind": ["purchase"] * 2,
                "amount": ["1.00"] * 2,
                "currency": ["EUR"] * 2,
            }
        )
        batch = _batch_of(crm, data)
        with pytest.raises(CrmError, match=numbers[1]), store.unit_of_work() as uow:
            uow.transactions.add_batch(batch)
        assert crm.customer_360(CrmNumber(numbers[0])).aggregate.purchase_count == 0
    finally:
        store.drop_schema()
        store.close()


def _batch_of(crm: Crm, data: Any) -> Any:
    """The validated batch the import would hand the store (every customer taken as alive,
    as if erased between the import's look-up and its write)."""
    from crmcore import bulk

    lookup = bulk.CustomerLookup(
        crm.store.scheme, lambda numbers: set(numbers), lambda s, i: {}, None
    )
    (record_batch,) = data.to_batches()
    verdicts = bulk.Verdicts(0, record_batch.num_rows)
    return bulk.transaction_batch(
        record_batch,
        verdicts,
        lookup,
        reporting_currency="EUR",
        converter=None,
        default_source=None,
    )


def test_import_ids_are_time_ordered_unique_version_7() -> None:
    high, low = new_ids(10_000)
    ids = [uuid.UUID(int=(int(h) << 64) | int(lo)) for h, lo in zip(high, low, strict=True)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    millis = (high >> np.uint64(16)).astype(np.int64)
    now = dt.datetime.now(dt.UTC).timestamp() * 1000
    assert abs(int(millis.max()) - now) < 60_000
    later_high, _ = new_ids(1)
    assert int(later_high[0]) >> 16 >= int(millis.max())
