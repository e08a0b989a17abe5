"""Looking up many keys at once: bounded ``IN`` lists, or one array on PostgreSQL.

Also the two lookups every writer needs: which customers exist (and are erased), and which
``(source, external_ref)`` pairs a history table already holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from sqlalchemy import Connection, Table, and_, any_, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY

from crmcore.adapters.sqlalchemy._keysets import keyed
from crmcore.domain import CrmNumber
from crmcore.errors import ErasedError, NotFound, ValidationError

__all__ = ["CHUNK", "alive", "chunks", "key_of", "refs_in", "require_customers", "where_in"]

CHUNK: Final = 500
"""Keys per ``IN (...)`` list."""
# SQLite 3.32+ takes up to 32766 bound variables per statement (999 before); a (source,
# external_ref) pair takes two.
_SQLITE_CHUNK: Final = 8000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 400


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def where_in(dialect: str, column: Any, keys: Sequence[Any]) -> Iterator[Any]:
    """WHERE clauses that together select the rows whose ``column`` is in ``keys``.

    PostgreSQL: one ``column = ANY(:array)`` (a single parameter, whatever the count);
    elsewhere ``column IN (...)`` lists of a bounded size.
    """
    if not keys:
        return
    if dialect == "postgresql":
        yield column == any_(literal(list(keys), ARRAY(column.type)))
        return
    size = _SQLITE_CHUNK if dialect == "sqlite" else CHUNK
    for chunk in chunks(keys, size):
        yield column.in_(chunk)


def refs_in(
    dialect: str, conn: Connection, table: Table, pairs: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The ``(source, external_ref)`` pairs of ``pairs`` stored in ``table``."""
    found: set[tuple[str, str]] = set()
    if not pairs:
        return found
    src, ref = table.c.source, table.c.external_ref
    if dialect == "postgresql":
        wanted = (
            func.unnest(
                literal([p[0] for p in pairs], ARRAY(src.type)),
                literal([p[1] for p in pairs], ARRAY(ref.type)),
            )
            .table_valued("source", "external_ref")
            .render_derived()
        )
        stmt = (
            select(src, ref)
            .select_from(table)
            .join(wanted, and_(src == wanted.c.source, ref == wanted.c.external_ref))
        )
        found.update((s, r) for s, r in conn.execute(stmt))
        return found
    size = _SQLITE_CHUNK // 2 if dialect == "sqlite" else CHUNK
    for chunk in chunks(pairs, size):
        found.update(
            (s, r) for s, r in conn.execute(select(src, ref).where(tuple_(src, ref).in_(chunk)))
        )
    return found


def alive(
    dialect: str, conn: Connection, customers: Table, numbers: Iterable[str], *, share: bool = False
) -> dict[str, bool]:
    """Map each existing number of ``numbers`` to ``erased``.

    ``share``: read with a shared row lock (PostgreSQL ``FOR KEY SHARE``, the lock its
    foreign-key checks take anyway, so a profile update does not block it; MariaDB ``LOCK IN
    SHARE MODE``; nothing on SQLite, whose writers are serialised anyway), so the answer holds
    until the unit ends: a concurrent erase or merge, which locks the row ``FOR UPDATE``,
    waits for this unit, and this read waits for it.
    """
    c = customers
    out: dict[str, bool] = {}
    keys = sorted(set(numbers))
    if not share:
        query = select(c.c.number, c.c.erased)
        for part in keyed(dialect, query, c.c.number, keys):
            out.update((number, bool(erased)) for number, erased in conn.execute(part).all())
        return out
    # A locking read keeps its plain IN lists (or array), whose row locks each database
    # documents.
    for where in where_in(dialect, c.c.number, keys):
        query = select(c.c.number, c.c.erased).where(where)
        query = query.order_by(c.c.number).with_for_update(read=True, key_share=True)
        for number, erased in conn.execute(query):
            out[number] = bool(erased)
    return out


def require_customers(
    dialect: str, conn: Connection, customers: Table, numbers: Iterable[str]
) -> None:
    """Check that every customer of ``numbers`` exists and is not erased, and keep it so
    until the unit ends (a shared row lock, see :func:`alive`): for writers only.

    Raises:
        NotFound: one does not exist (the first in number order).
        ErasedError: one was erased.
    """
    wanted = sorted(set(numbers))
    found = alive(dialect, conn, customers, wanted, share=True)
    for number in wanted:
        if number not in found:
            raise NotFound("customer", CrmNumber(number))
        if found[number]:
            raise ErasedError("customer", CrmNumber(number))


def key_of(number: CrmNumber) -> str:
    """The stored key of ``number``.

    Raises:
        ValidationError: ``number`` is not a :class:`CrmNumber`.
    """
    if not isinstance(number, CrmNumber):
        raise ValidationError("number", number, "must be a CrmNumber (parse text first)")
    return number.value
