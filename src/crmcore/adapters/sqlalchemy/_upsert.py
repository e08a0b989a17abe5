"""The dialects' INSERT variants and the store's cache of compiled bulk INSERTs.

"Skip a row whose ``(source, external_ref)`` is stored" is ``ON CONFLICT DO NOTHING`` on
PostgreSQL and SQLite and a no-op ``ON DUPLICATE KEY UPDATE`` on MariaDB/MySQL (not
``INSERT IGNORE``: that also turns data errors into warnings and stores a mangled row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

from crmcore.adapters.sqlalchemy._bulk import BulkInsert
from crmcore.adapters.sqlalchemy._prepared import PreparedCache

__all__ = ["InsertCache", "guarded_insert", "insert_ignoring_refs"]

_REF: tuple[str, ...] = ("source", "external_ref")


def insert_ignoring_refs(dialect: str, table: Table) -> Insert:
    """``table``'s INSERT that skips rows whose ``(source, external_ref)`` is stored."""
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing(index_elements=list(_REF))
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(_REF))
    # Not INSERT IGNORE: that also turns data errors (a rejected value, a missing
    # customer) into warnings and stores a mangled row. A no-op update on a duplicate
    # key skips the row and nothing else.
    stmt = mysql_insert(table)
    return stmt.on_duplicate_key_update(id=stmt.table.c.id)


class InsertCache:
    """A store's INSERTs compiled once per table, conflict clause and columns (``_bulk``).

    Args:
        dialect: the store's dialect name.
    """

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[str, bool, tuple[str, ...]], BulkInsert | None] = {}
        self._guarded: dict[tuple[str, tuple[str, ...]], Insert] = {}
        self.prepared = PreparedCache()
        """The per-event statements compiled once (``_prepared``)."""

    def guarded(self, table: Table, customers: Table, columns: Sequence[str]) -> Insert:
        """:func:`guarded_insert` of ``table`` for ``columns``, built once."""
        key = (table.name, tuple(columns))
        stmt = self._guarded.get(key)
        if stmt is None:
            stmt = self._guarded[key] = guarded_insert(self.dialect, table, customers, columns)
        return stmt

    def get(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        *,
        ignoring_refs: bool,
        stmt: Insert | None = None,
        tag: str = "",
    ) -> BulkInsert | None:
        """``table``'s INSERT (``stmt``, cached under ``tag``; else
        :func:`insert_ignoring_refs` or plain) compiled for ``columns`` (None: use
        ``execute``)."""
        if conn.get_execution_options().get("schema_translate_map"):
            return None  # rendered per execution by SQLAlchemy; not cached here
        key = (f"{table.name}:{tag}" if tag else table.name, ignoring_refs, tuple(columns))
        cache = self._compiled
        if key not in cache:
            if stmt is None:
                stmt = insert_ignoring_refs(self.dialect, table) if ignoring_refs else insert(table)
            try:
                cache[key] = BulkInsert(stmt, conn.dialect, key[2])
            except ValueError:  # binds other than the given columns (a default): not cached
                cache[key] = None
        return cache[key]

    def insert_rows(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """A plain INSERT of ``rows`` (all with the same keys), as ``conn.execute`` does it."""
        if not rows:
            return
        bulk = self.get(conn, table, list(rows[0]), ignoring_refs=False)
        if bulk is None:
            conn.execute(insert(table), rows)
        else:
            bulk.execute(conn, [[r[c] for r in rows] for c in bulk.columns])

    def insert_ignoring_refs(
        self, conn: Connection, table: Table, rows: list[dict[str, Any]]
    ) -> int:
        """Insert ``rows`` (all with the same keys) skipping stored references
        (:func:`insert_ignoring_refs`) in one executemany; return the driver's row count."""
        bulk = self.get(conn, table, list(rows[0]), ignoring_refs=True)
        if bulk is None:
            stmt = insert_ignoring_refs(self.dialect, table)
            return int(conn.execute(stmt, rows[0] if len(rows) == 1 else rows).rowcount)
        return bulk.execute(conn, [[r[c] for r in rows] for c in bulk.columns])


def guarded_insert(dialect: str, table: Table, customers: Table, columns: Sequence[str]) -> Insert:
    """One history row's INSERT that also checks its customer and skips any unique clash.

    ``INSERT INTO table (columns) SELECT :v_... FROM customers WHERE number = :v_customer
    AND NOT erased [FOR KEY SHARE] ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite only): it inserts
    nothing, instead of failing, when the customer is missing or erased or when the row's
    ``(source, external_ref)`` or id is taken, so a row count of 1 means "new and stored".
    The parameters are the row's values under ``v_``-prefixed names.
    """
    values: list[Any] = []
    for name in columns:
        if name == "customer":
            values.append(customers.c.number)
        else:
            values.append(bindparam(f"v_{name}", type_=table.c[name].type))
    source = (
        select(*values)
        .select_from(customers)
        .where(
            customers.c.number == bindparam("v_customer", type_=customers.c.number.type),
            customers.c.erased.is_(False),
        )
    )
    if dialect == "postgresql":
        # A key-share lock on the customer's row (the one its foreign-key check takes; a
        # profile update does not conflict with it): a merge or erase holding it for update makes
        # the INSERT wait, and PostgreSQL then re-checks ``NOT erased`` on the row that unit
        # committed, so no row is stored for a customer erased (or merged away) meanwhile.
        source = source.with_for_update(read=True, key_share=True)
    # SQLAlchemy reads an INSERT's row count only when asked to.
    if dialect == "postgresql":
        stmt: Insert = pg_insert(table).from_select(list(columns), source).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite_insert(table).from_select(list(columns), source).on_conflict_do_nothing()
    else:
        raise ValueError(f"no guarded single-row INSERT on {dialect}")
    return stmt.execution_options(preserve_rowcount=True)
