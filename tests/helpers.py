"""Store factories and small helpers shared by crmcore's own tests (not a public API).

Import as ``from tests.helpers import ...``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crmcore.analytics import CustomerMetrics

SQL_BACKENDS = ("sqlite-memory", "sqlite-file", "postgresql", "mariadb")
"""The SQL backends a test can ask :func:`backend_url` for."""


def backend_url(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> str:
    """The URL of an empty database of backend ``name`` (one of :data:`SQL_BACKENDS`).

    PostgreSQL and MariaDB come from the session's ``postgres_url``/``mariadb_url`` fixtures
    (skipped when unreachable, failed under ``CI=true``); SQLite files live in ``tmp_path``.
    """
    if name == "sqlite-memory":
        return "sqlite://"
    if name == "sqlite-file":
        return f"sqlite:///{tmp_path / 'crm.sqlite'}"
    if name == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    if name == "mariadb":
        return str(request.getfixturevalue("mariadb_url"))
    raise ValueError(f"unknown backend {name!r}")


def unique_prefix(stem: str = "c", digits: int = 8) -> str:
    """A table prefix no other test uses, so tests sharing a database never meet."""
    return f"{stem}{uuid.uuid4().hex[:digits]}_"


@contextmanager
def sql_store(url: str, table_prefix: str) -> Iterator[Any]:
    """A ``SqlStore`` with fresh tables at ``url``; its tables are dropped afterwards."""
    from crmcore.adapters.sqlalchemy import SqlStore

    store = SqlStore.from_url(url, create_schema=True, table_prefix=table_prefix)
    try:
        yield store
    finally:
        store.drop_schema()
        store.close()


def delete_rows(store: Any) -> None:
    """Empty a ``SqlStore``: delete the rows of its data tables, children first.

    The settings and the number counter stay (numbers are never reused), so this is an
    empty store as far as the ports can tell, at a fraction of the cost of new tables.
    """
    import sqlalchemy as sa

    tables = store.tables
    keep = {tables.settings.name, tables.number_counter.name}
    with store.engine.begin() as conn:
        for table in reversed(tables.all):
            if table.name not in keep:
                conn.execute(sa.delete(table))


def rows_by_number(metrics: CustomerMetrics) -> dict[str, dict[str, Any]]:
    """A snapshot as ``{crm number: row}``."""
    return {n.value: metrics.row(i) for i, n in enumerate(metrics.numbers())}


def empty_store_pairs(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> Iterator[Any]:
    """For a fixture parametrised by backend: yields a function returning two empty stores
    of that backend per call (one fed row by row, one by a bulk path). SQL tables are
    emptied between hypothesis examples instead of created anew (numbers are never reused,
    so both stores' counters move on together)."""
    if request.param == "memory":
        from crmcore import InMemoryStore

        yield lambda: (
            InMemoryStore(reporting_currency="EUR"),
            InMemoryStore(reporting_currency="EUR"),
        )
        return
    url = backend_url(request, request.param, tmp_path)
    with (
        sql_store(url, unique_prefix(f"{prefix}a")) as one,
        sql_store(url, unique_prefix(f"{prefix}b")) as two,
    ):

        def empty() -> tuple[Any, Any]:
            delete_rows(one)
            delete_rows(two)
            return one, two

        yield empty


def _table_text(store: Any) -> str:
    import sqlalchemy as sa

    parts = []
    with store.engine.connect() as conn:
        for table in store.tables.all:
            for row in conn.execute(sa.select(table)):
                parts.append(" ".join(str(value) for value in row))
    return "\n".join(parts)


def _object_texts(value: Any, seen: set[int] | None = None) -> Iterator[str]:
    """Every text and byte string reachable from ``value`` (the in-memory store's state)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes | bytearray):
        yield bytes(value).decode("utf-8", "replace")
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            for item in value.tolist():
                yield from _object_texts(item, seen)
        else:
            yield value.tobytes().decode("latin-1")
    elif isinstance(value, dict):
        for key, item in list(value.items()):
            yield from _object_texts(key, seen)
            yield from _object_texts(item, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in list(value):
            yield from _object_texts(item, seen)
    elif isinstance(value, dt.date | int | float | type(None)):
        yield str(value)
    elif hasattr(value, "__dict__") or hasattr(type(value), "__slots__"):
        names = set(getattr(value, "__dict__", {}))
        for cls in type(value).__mro__:
            names.update(getattr(cls, "__slots__", ()))
        for name in names:
            if hasattr(value, name):
                yield from _object_texts(getattr(value, name), seen)


def store_text(store: Any) -> str:
    """Everything a store holds, as text: every value of every row of every crmcore table of
    a SQL store, or every string reachable from an in-memory store's state. A test searches
    it for personal data that should be gone."""
    from crmcore import InMemoryStore

    if isinstance(store, InMemoryStore):
        return "\n".join(_object_texts(store))
    return _table_text(store)
