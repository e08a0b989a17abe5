"""crmcore's pytest plugin: opt-in fixtures for applications that embed crmcore.

Installed with crmcore (entry point ``pytest11``); the fixtures exist but nothing heavy is
imported until a test asks for one.

Fixtures:
    crm_memory_store: a fresh :class:`~crmcore.InMemoryStore` (reporting currency USD).
    crm_clock: a :class:`~crmcore.FixedClock` at 2026-01-01T00:00Z.
    crm: a :class:`~crmcore.Crm` over ``crm_memory_store`` and ``crm_clock``.
    crm_sqlite_store: a ``SqlStore`` on a temporary SQLite file (needs the [sqlalchemy] extra).
    crm_seeded_store: an in-memory store with 200 synthetic customers and their histories
        (seeded: the same every run; see :mod:`crmcore.testing.synthetic`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from crmcore import Crm, FixedClock, InMemoryStore


@pytest.fixture
def crm_memory_store() -> InMemoryStore:
    """A fresh, empty in-memory store."""
    from crmcore import InMemoryStore

    return InMemoryStore(reporting_currency="USD")


@pytest.fixture
def crm_clock() -> FixedClock:
    """A clock standing at 2026-01-01T00:00Z; advance it with ``crm_clock.advance(days=1)``."""
    from crmcore import FixedClock

    return FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


@pytest.fixture
def crm(crm_memory_store: InMemoryStore, crm_clock: FixedClock) -> Crm:
    """A :class:`~crmcore.Crm` facade over a fresh in-memory store and a fixed clock."""
    from crmcore import Crm

    return Crm(crm_memory_store, clock=crm_clock)


@pytest.fixture
def crm_sqlite_store(tmp_path: Path) -> Iterator[Any]:
    """A ``SqlStore`` on a fresh SQLite file with the schema created."""
    from crmcore.adapters.sqlalchemy import SqlStore

    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'crm.sqlite'}", create_schema=True)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def crm_seeded_store() -> InMemoryStore:
    """An in-memory store holding 200 seeded synthetic customers with three years of history.

    Built by :func:`crmcore.testing.synthetic.populate` (seed 7, all events before
    2026-01-01): the same customers, purchases and interactions on every run.
    """
    from crmcore import InMemoryStore
    from crmcore.testing.synthetic import populate

    store = InMemoryStore(reporting_currency="USD")
    populate(store, 200, seed=7)
    return store
