"""Dump → restore and copy are lossless between every pair of backends (a property test).

A random store is built on one backend through the public strategies and the use cases
(registrations, history with lines, consents, stage changes, erasures, merges, segment
definitions and runs, allocator gaps), dumped, restored into an empty store of another
backend and copied into a fresh in-memory store; everything the ports can read must be
identical, and the restored store must never issue a number it holds or retired.

``CRMCORE_BACKUP_EXAMPLES`` sets the examples per backend pair (default 2: the twelve pairs
stay under a minute).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers import backend_url, delete_rows, unique_prefix

from crmcore import InMemoryStore
from crmcore.clock import FixedClock
from crmcore.domain import (
    Consent,
    ConsentPurpose,
    CrmNumber,
    LifecycleStage,
    Money,
    Segment,
    SegmentMembership,
)
from crmcore.errors import CrmError
from crmcore.ports import Store
from crmcore.services import Crm
from crmcore.testing.strategies import customers, interactions, transactions

pytest.importorskip("pyarrow")
pytest.importorskip("sqlalchemy")

from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.backup import copy, dump, restore

EXAMPLES = int(os.environ.get("CRMCORE_BACKUP_EXAMPLES", "2"))
BACKENDS = ("memory", "sqlite", "postgresql", "mariadb")
PAIRS = [(a, b) for a in BACKENDS for b in BACKENDS if a != b]
NOW = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


class _Stores:
    """Empty stores of one backend: a new one per call (SQL tables made once, emptied)."""

    def __init__(self, name: str, url: str | None) -> None:
        self.name = name
        self.sql: Any = None
        if url is not None:
            self.sql = SqlStore.from_url(url, create_schema=True, table_prefix=unique_prefix())

    def fresh(self) -> Store:
        if self.sql is None:
            return InMemoryStore()
        delete_rows(self.sql)
        return self.sql  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.sql is not None:
            self.sql.drop_schema()
            self.sql.close()


def _stores(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> Iterator[_Stores]:
    url = None
    if name != "memory":
        url = backend_url(request, "sqlite-file" if name == "sqlite" else name, tmp_path / name)
        (tmp_path / name).mkdir(exist_ok=True)
    stores = _Stores(name, url)
    try:
        yield stores
    finally:
        stores.close()


@pytest.fixture
def source_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Stores]:
    yield from _stores(request, request.node.callspec.params["pair"][0], tmp_path)


@pytest.fixture
def target_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Stores]:
    yield from _stores(request, request.node.callspec.params["pair"][1], tmp_path)


@st.composite
def _scenarios(draw: st.DrawFn) -> dict[str, Any]:
    people = draw(st.lists(customers(max_created=NOW), min_size=2, max_size=6))
    count = len(people)
    index = st.integers(0, count - 1)
    return {
        "people": people,
        "transactions": draw(
            st.lists(st.tuples(index, transactions(max_occurred=NOW)), max_size=8)
        ),
        "interactions": draw(
            st.lists(st.tuples(index, interactions(max_occurred=NOW)), max_size=6)
        ),
        "stages": draw(st.lists(st.tuples(index, st.sampled_from(LifecycleStage)), max_size=3)),
        "consents": draw(
            st.lists(st.tuples(index, st.sampled_from(ConsentPurpose), st.booleans()), max_size=3)
        ),
        "erase": draw(st.lists(index, max_size=2)),
        "merge": draw(st.lists(st.tuples(index, index), max_size=2)),
        "runs": draw(st.lists(st.tuples(st.integers(0, 400), st.sets(index)), max_size=3)),
        "gap": draw(st.integers(0, 5)),
    }


def _build(store: Store, scenario: dict[str, Any]) -> None:
    crm = Crm(store, clock=FixedClock(NOW))
    people = [attrs.evolve(p, source=None, external_id=None) for p in scenario["people"]]
    numbers = [c.number for c in crm.register_many(people).registered]
    currency = store.reporting_currency

    def attempt(action: Any) -> None:
        # An op the store refuses is fine: the dump must be faithful to whatever it holds.
        with contextlib.suppress(CrmError):
            action()

    with store.unit_of_work() as uow:
        for i, tx in scenario["transactions"]:
            minor = 0 if tx.total.minor_units == 0 else max(1, tx.total.minor_units % 10**9)
            uow.transactions.add(
                attrs.evolve(
                    tx,
                    customer=numbers[i],
                    reporting_total=Money.from_minor_units(minor, currency),
                )
            )
        for i, ix in scenario["interactions"]:
            uow.interactions.add(attrs.evolve(ix, customer=numbers[i]))
        uow.commit()
    for i, stage in scenario["stages"]:
        attempt(lambda i=i, stage=stage: crm.change_stage(numbers[i], stage, "test"))
    for i, purpose, granted in scenario["consents"]:
        consent = Consent(purpose=purpose, channel=None, granted=granted, at=NOW)
        attempt(lambda i=i, c=consent: crm.record_consent(numbers[i], c))
    with store.unit_of_work() as uow:
        uow.segments.save(Segment(name="buyers", rule="frequency > 0", description="d"))
        uow.segments.save(Segment(name="empty", rule="frequency > 100"))
        for days, members in scenario["runs"]:
            attempt(
                lambda days=days, members=members: uow.segments.save_membership(
                    SegmentMembership(
                        segment="buyers",
                        as_of=NOW - dt.timedelta(days=days),
                        members=frozenset(numbers[m] for m in members),
                    )
                )
            )
        uow.commit()
    for keep, drop in scenario["merge"]:
        attempt(lambda keep=keep, drop=drop: crm.merge(numbers[keep], numbers[drop]))
    for i in scenario["erase"]:
        attempt(lambda i=i: crm.erase(numbers[i]))
    store.allocator.allocate_many(scenario["gap"])


def _everything(store: Store) -> dict[str, Any]:
    """Everything the ports read back."""
    out: dict[str, Any] = {}
    with store.unit_of_work() as uow:
        transfer = uow.transfer  # type: ignore[attr-defined]
        out["customers"] = list(uow.customers.iter_all(batch_size=2))
        out["count"] = uow.customers.count()
        out["tombstones"] = list(transfer.tombstones())
        for c in out["customers"]:
            n = c.number
            out[f"aggregate {n}"] = uow.aggregates.get(n)
            out[f"transactions {n}"] = list(uow.transactions.for_customer(n))
            out[f"interactions {n}"] = list(uow.interactions.for_customer(n))
        out["segments"] = list(uow.segments.list())
        out["runs"] = list(transfer.memberships())
    return out


def _numbers(state: dict[str, Any]) -> list[CrmNumber]:
    return [c.number for c in state["customers"]] + list(state["tombstones"])


def _check_never_reissued(store: Store, state: dict[str, Any], position: int) -> None:
    fresh = store.allocator.allocate()
    assert fresh > position
    assert all(store.scheme.format(fresh) > n for n in _numbers(state))


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_dump_restore_and_copy_keep_everything(
    pair: tuple[str, str],
    source_stores: _Stores,
    target_stores: _Stores,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    @_SETTINGS
    @given(scenario=_scenarios())
    def check(scenario: dict[str, Any]) -> None:
        source = source_stores.fresh()
        _build(source, scenario)
        expected = _everything(source)
        with source.unit_of_work() as uow:
            position = uow.transfer.allocator_position()  # type: ignore[attr-defined]
        directory = tmp_path_factory.mktemp("dump")
        manifest = dump(source, directory)
        assert manifest.allocator_position == position
        assert manifest.rows("tombstones.parquet") == len(expected["tombstones"])
        target = target_stores.fresh()
        restore(target, directory)
        assert _everything(target) == expected
        _check_never_reissued(target, expected, position)
        warm = InMemoryStore()
        assert copy(source, warm) == position
        assert _everything(warm) == expected
        _check_never_reissued(warm, expected, position)

    check()
