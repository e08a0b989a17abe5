"""Finding many customers at once for imports: by ``(source, external_id)`` or by number.

The ports look customers up one at a time, loading each whole customer. An import needs only
"which number has this external id" for thousands of keys per batch, so on a SQL store with an
engine of its own the CLI (a composition root, allowed to know the adapter) asks the customers
table directly, a few hundred keys per query. Any other store goes through the ports.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, Final, Protocol

from crmcore.domain import CrmNumber
from crmcore.errors import NotFound
from crmcore.ports import Store

__all__ = ["Lookup", "lookup_for"]

_CHUNK: Final = 500


class Lookup(Protocol):
    """Bulk customer lookups."""

    def by_external_id(self, source: str, ids: Collection[str]) -> dict[str, CrmNumber]:
        """``external_id -> number`` for those of ``ids`` registered under ``source``."""
        ...

    def existing(self, numbers: Collection[CrmNumber]) -> set[CrmNumber]:
        """Those of ``numbers`` that belong to existing (not erased) customers."""
        ...

    def all_external_ids(self) -> dict[CrmNumber, str]:
        """``number -> external_id`` of every customer that has one."""
        ...


class _PortLookup:
    def __init__(self, store: Store) -> None:
        self.store = store

    def by_external_id(self, source: str, ids: Collection[str]) -> dict[str, CrmNumber]:
        out: dict[str, CrmNumber] = {}
        with self.store.unit_of_work() as uow:
            for external_id in ids:
                found = uow.customers.find_by_external_id(source, external_id)
                if found is not None:
                    out[external_id] = found.number
        return out

    def existing(self, numbers: Collection[CrmNumber]) -> set[CrmNumber]:
        out: set[CrmNumber] = set()
        with self.store.unit_of_work() as uow:
            for number in numbers:
                try:
                    if uow.customers.find(number) is not None:
                        out.add(number)
                except NotFound:
                    continue
        return out

    def all_external_ids(self) -> dict[CrmNumber, str]:
        out: dict[CrmNumber, str] = {}
        with self.store.unit_of_work() as uow:
            for customer in uow.customers.iter_all(batch_size=5000):
                if customer.external_id is not None:
                    out[customer.number] = customer.external_id
        return out


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class _SqlLookup:
    def __init__(self, engine: Any, customers: Any) -> None:
        self.engine = engine
        self.customers = customers

    def by_external_id(self, source: str, ids: Collection[str]) -> dict[str, CrmNumber]:
        from sqlalchemy import and_, select

        c = self.customers.c
        out: dict[str, CrmNumber] = {}
        with self.engine.connect() as conn:
            for part in _chunks(sorted(ids)):
                query = select(c.external_id, c.number).where(
                    and_(c.source == source, c.external_id.in_(part), c.erased.is_(False))
                )
                for external_id, number in conn.execute(query):
                    out[external_id] = CrmNumber(number)
        return out

    def existing(self, numbers: Collection[CrmNumber]) -> set[CrmNumber]:
        from sqlalchemy import and_, select

        c = self.customers.c
        out: set[CrmNumber] = set()
        with self.engine.connect() as conn:
            for part in _chunks(sorted(n.value for n in numbers)):
                query = select(c.number).where(and_(c.number.in_(part), c.erased.is_(False)))
                out.update(CrmNumber(number) for (number,) in conn.execute(query))
        return out

    def all_external_ids(self) -> dict[CrmNumber, str]:
        from sqlalchemy import and_, select

        c = self.customers.c
        query = select(c.number, c.external_id).where(
            and_(c.external_id.is_not(None), c.erased.is_(False))
        )
        with self.engine.connect() as conn:
            return {CrmNumber(number): external for number, external in conn.execute(query)}


def lookup_for(store: Store) -> Lookup:
    """The fastest lookup ``store`` allows."""
    try:
        from crmcore.adapters.sqlalchemy import SqlStore
    except ImportError:
        return _PortLookup(store)
    if isinstance(store, SqlStore) and store.engine is not None:
        return _SqlLookup(store.engine, store.tables.customers)
    return _PortLookup(store)
