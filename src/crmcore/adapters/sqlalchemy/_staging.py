"""Storing a validated history batch set-wise: load it into a staging table, then let the
database check, insert and fold it.

One batch of :meth:`~crmcore.ports.TransactionRepository.add_batch` runs, in the unit of
work's transaction:

1. the batch's first row of each ``(source, external_ref)`` is kept (Arrow group-by; the
   same "first wins" as recording row by row);
2. its columns, converted column-wise to stored values, are bulk-loaded into a temporary
   staging table without indexes (:mod:`._fastload`: ``COPY`` on PostgreSQL, raw
   ``executemany`` of tuples on SQLite, ``LOAD DATA`` or multi-row ``INSERT`` on
   MariaDB/MySQL);
3. one query finds the first missing or erased customer (``NotFound``/``ErasedError``, as
   the row path raises them);
4. staged rows whose reference is already stored are deleted (an anti-join on the table's
   unique index), then ``INSERT ... SELECT`` moves the rest into the table with the
   dialect's skip-on-conflict clause, so a concurrent unit that stored one of the
   references first makes that row a duplicate, not an error; when the database reports
   fewer rows than were staged (or cannot tell: MariaDB), the staged rows that did not land
   are deleted;
5. ``UPDATE aggregates ... FROM (SELECT ... GROUP BY customer)`` folds what remains into
   the aggregates in one statement; a customer whose aggregate row vanished (erased
   concurrently) is a :class:`~crmcore.errors.ConcurrencyError`.

A batch without references skips 1, the anti-join and the conflict clause: with fresh
random ids nothing can clash (an id clash would fail the unit on the primary key).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Table,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crmcore.adapters.sqlalchemy._aggregates import _earlier, _later
from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.adapters.sqlalchemy._fastload import load_columns, qualified_name
from crmcore.analytics.columns import TRANSACTION_KIND_CODES
from crmcore.analytics.totals import INT64_MAX, overflowing_groups, total_overflow
from crmcore.domain import CrmNumber, InteractionKind, TransactionKind
from crmcore.errors import ConcurrencyError, ErasedError, NotFound
from crmcore.ports.batches import TransactionBatch

__all__ = ["StageFold", "refuse_batch_overflow", "store_staged"]

StageFold = Callable[[TransactionContext, Connection, Table], int]
"""Folds a staging table into the aggregates; returns the number of customers it updated."""

SQLITE_CACHE_KIB: Final = 65_536
"""The SQLite page cache (KiB) a batch is stored with (see :func:`_sqlite_cache`)."""

_ERASED_WHILE_RECORDING = (
    "a customer was erased by a concurrent unit of work while recording; retry"
)


def stage_table(dialect: str, table: Table, columns: list[str]) -> Table:
    """The temporary staging table of ``table``: its ``columns`` with their types, no
    constraints or indexes, in the connection's temporary schema."""
    schema = {"postgresql": "pg_temp", "sqlite": "temp"}.get(dialect)
    return Table(
        f"crmcore_stage_{table.name}",
        MetaData(),
        *(Column(name, table.c[name].type) for name in columns),
        schema=schema,
        prefixes=[] if schema else ["TEMPORARY"],
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )


def _drop(conn: Connection, dialect: str, stage: Table) -> None:
    name = qualified_name(conn, stage)
    # Plain DROP TABLE commits implicitly on MariaDB/MySQL; DROP TEMPORARY TABLE does not.
    keyword = "TEMPORARY TABLE" if dialect in ("mysql", "mariadb") else "TABLE"
    conn.exec_driver_sql(f"DROP {keyword} IF EXISTS {name}")


def first_of_each_ref(data: Any) -> Any:
    """``data`` without the rows whose ``(source, external_ref)`` an earlier row has."""
    import pyarrow as pa
    import pyarrow.compute as pc

    refs = data.select(["source", "external_ref"]).append_column(
        "row", pa.array(np.arange(data.num_rows, dtype=np.int64))
    )
    refs = refs.filter(pc.is_valid(refs["external_ref"]))
    firsts = refs.group_by(["source", "external_ref"], use_threads=False).aggregate(
        [("row", "min")]
    )
    if firsts.num_rows == refs.num_rows:
        return data
    keep = np.ones(data.num_rows, dtype=np.bool_)
    keep[refs["row"].to_numpy()] = False
    keep[firsts["row_min"].to_numpy()] = True
    return data.filter(pa.array(keep))


def store_staged(
    context: TransactionContext,
    kind: str,
    table: Table,
    data: Any,
    fold: StageFold,
    *,
    has_refs: bool,
) -> int:
    """Store the rows of the Arrow table ``data`` (stored values, named as ``table``'s
    columns) into ``table`` and fold them into the aggregates; return how many were new.

    ``has_refs``: some row has an ``external_ref`` (else the reference steps are skipped).
    """
    conn = context.write()
    if data.num_rows == 0:
        return 0
    dialect = context.dialect
    with translated(kind):
        if has_refs:
            data = first_of_each_ref(data)
        stage = stage_table(dialect, table, data.column_names)
        _drop(conn, dialect, stage)
        stage.create(conn)
        with _sqlite_cache(conn, dialect):
            stored = _move(context, conn, table, stage, data, fold, has_refs=has_refs)
        # Only after success: a failed statement aborts PostgreSQL's transaction (the
        # rollback drops the table there and on SQLite; MariaDB's next batch drops it).
        _drop(conn, dialect, stage)
    return stored


def _move(
    context: TransactionContext,
    conn: Connection,
    table: Table,
    stage: Table,
    data: Any,
    fold: StageFold,
    *,
    has_refs: bool,
) -> int:
    """Steps 2-5 of the module docstring; returns the number of rows stored."""
    dialect = context.dialect
    columns: list[str] = data.column_names
    load_columns(conn, dialect, qualified_name(conn, stage), data)
    _require_customers(conn, context.tables.customers, stage)
    if has_refs:
        conn.execute(
            delete(stage).where(
                exists().where(
                    table.c.source == stage.c.source,
                    table.c.external_ref == stage.c.external_ref,
                )
            )
        )
    staged = _count(conn, stage)
    if staged == 0:
        return 0
    source = select(*(stage.c[name] for name in columns))
    if has_refs:
        stmt = _insert_skipping_refs(dialect, table, columns, source)
    else:
        stmt = insert(table).from_select(columns, source)
    inserted = conn.execute(stmt).rowcount
    if has_refs and (inserted != staged or dialect in ("mysql", "mariadb")):
        # A concurrent unit stored some of the references first: keep what landed.
        conn.execute(delete(stage).where(~exists().where(table.c.id == stage.c.id)))
        staged = _count(conn, stage)
    if staged:
        customers = conn.execute(select(func.count(stage.c.customer.distinct()))).scalar_one()
        if fold(context, conn, stage) != customers:
            raise ConcurrencyError(_ERASED_WHILE_RECORDING)
    return staged


@contextlib.contextmanager
def _sqlite_cache(conn: Connection, dialect: str) -> Iterator[None]:
    """SQLite: a page cache of at least :data:`SQLITE_CACHE_KIB` while a batch is stored.

    The default 2 MiB cache holds a tiny part of the history indexes once a table has a
    million rows; every row of a batch then reads index pages back from the OS per index,
    which measured about half of the INSERT's time at S. The cache grows only as pages
    are read and the connection's own setting is restored afterwards.
    """
    if dialect != "sqlite":
        yield
        return
    previous = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    page = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
    kib = -previous if previous < 0 else previous * page // 1024
    if kib >= SQLITE_CACHE_KIB:
        yield
        return
    conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {previous}")


def _count(conn: Connection, stage: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(stage)).scalar_one())


def _insert_skipping_refs(dialect: str, table: Table, columns: list[str], source: Any) -> Any:
    """``INSERT ... SELECT`` that skips a row whose reference is stored (see ``_upsert``)."""
    ref = ["source", "external_ref"]
    if dialect == "postgresql":
        return (
            pg_insert(table).from_select(columns, source).on_conflict_do_nothing(index_elements=ref)
        )
    if dialect == "sqlite":
        # SQLite needs a WHERE on INSERT ... SELECT ... ON CONFLICT (parsing ambiguity).
        return (
            sqlite_insert(table)
            .from_select(columns, source.where(True))
            .on_conflict_do_nothing(index_elements=ref)
        )
    stmt = mysql_insert(table).from_select(columns, source)
    return stmt.on_duplicate_key_update(id=table.c.id)


def _require_customers(conn: Connection, customers: Table, stage: Table) -> None:
    """The first (in number order) staged customer that is missing or erased raises."""
    wanted = select(stage.c.customer).distinct().subquery()
    row = conn.execute(
        select(wanted.c.customer, customers.c.erased)
        .select_from(wanted.outerjoin(customers, customers.c.number == wanted.c.customer))
        .where(or_(customers.c.number.is_(None), customers.c.erased))
        .order_by(wanted.c.customer)
        .limit(1)
    ).first()
    if row is None:
        return
    if row[1] is None:
        raise NotFound("customer", CrmNumber(row[0]))
    raise ErasedError("customer", CrmNumber(row[0]))


def fold_staged_transactions(context: TransactionContext, conn: Connection, stage: Table) -> int:
    """Fold staged transactions into the aggregates (one UPDATE from a GROUP BY)."""
    s = stage.c
    bought = s.kind == TransactionKind.PURCHASE.value
    delta = (
        select(
            s.customer.label("customer"),
            func.sum(case((bought, 1), else_=0)).label("purchase_count"),
            func.sum(case((bought, s.reporting_minor), else_=0)).label("purchase_minor"),
            func.sum(case((bought, 0), else_=1)).label("refund_count"),
            func.sum(case((bought, 0), else_=s.reporting_minor)).label("refund_minor"),
            func.min(case((bought, s.occurred_us))).label("first_purchase_us"),
            func.max(case((bought, s.occurred_us))).label("last_purchase_us"),
            func.min(case((bought, s.occurred_at))).label("first_purchase_at"),
            func.max(case((bought, s.occurred_at))).label("last_purchase_at"),
        )
        .group_by(s.customer)
        .subquery("delta")
    )
    a = context.tables.aggregates
    d = delta.c
    # A running total must stay below INT64_MAX (the batch's own sums were checked in
    # numpy before staging, ``refuse_batch_overflow``): a customer whose stored total plus
    # the batch's would not fit is not updated, and is named below.
    fits = [a.c[c] <= literal(INT64_MAX) - d[c] for c in _TOTALS]
    stmt = (
        update(a)
        .where(a.c.customer == d.customer, *fits)
        .values(
            {
                a.c.purchase_count: a.c.purchase_count + d.purchase_count,
                a.c.purchase_minor: a.c.purchase_minor + d.purchase_minor,
                a.c.refund_count: a.c.refund_count + d.refund_count,
                a.c.refund_minor: a.c.refund_minor + d.refund_minor,
                a.c.first_purchase_us: _earlier(a.c.first_purchase_us, d.first_purchase_us),
                a.c.first_purchase_at: _earlier(a.c.first_purchase_at, d.first_purchase_at),
                a.c.last_purchase_us: _later(a.c.last_purchase_us, d.last_purchase_us),
                a.c.last_purchase_at: _later(a.c.last_purchase_at, d.last_purchase_at),
            }
        )
    )
    updated = int(conn.execute(stmt).rowcount)
    over = conn.execute(
        select(d.customer, *(a.c[c] for c in _TOTALS), *(d[c] for c in _TOTALS))
        .join(a, a.c.customer == d.customer)
        .where(or_(*(not_(f) for f in fits)))
        .limit(1)
    ).first()
    if over is not None:
        for i, column in enumerate(_TOTALS):
            if int(over[1 + i]) + int(over[1 + len(_TOTALS) + i]) > INT64_MAX:
                raise total_overflow(column, over[0], int(over[1 + len(_TOTALS) + i]))
    return updated


_TOTALS: Final = ("purchase_minor", "refund_minor")


def refuse_batch_overflow(batch: TransactionBatch) -> None:
    """Raise if one customer's purchases or refunds within ``batch`` alone sum past
    ``INT64_MAX`` (checked in numpy before anything is staged: SQLite's SUM would fail
    with an anonymous error)."""
    if len(batch) == 0:
        return
    names, group = np.unique(batch.customer.astype(str), return_inverse=True)
    refund = batch.kind == TRANSACTION_KIND_CODES[TransactionKind.REFUND]
    for column, mask in (("purchase_minor", ~refund), ("refund_minor", refund)):
        over = overflowing_groups(group[mask], batch.reporting_minor[mask], len(names))
        if over.size:
            adding = sum(int(v) for v in batch.reporting_minor[mask][group[mask] == over[0]])
            raise total_overflow(column, str(names[int(over[0])]), adding)


def fold_staged_interactions(context: TransactionContext, conn: Connection, stage: Table) -> int:
    """Fold staged interactions into the aggregates (one UPDATE from a GROUP BY)."""
    s = stage.c
    complaint = s.kind == InteractionKind.COMPLAINT.value
    delta = (
        select(
            s.customer.label("customer"),
            func.count().label("interaction_count"),
            func.sum(case((complaint, 1), else_=0)).label("complaint_count"),
            func.max(s.occurred_us).label("last_interaction_us"),
            func.max(s.occurred_at).label("last_interaction_at"),
        )
        .group_by(s.customer)
        .subquery("delta")
    )
    a = context.tables.aggregates
    d = delta.c
    stmt = (
        update(a)
        .where(a.c.customer == d.customer)
        .values(
            {
                a.c.interaction_count: a.c.interaction_count + d.interaction_count,
                a.c.complaint_count: a.c.complaint_count + d.complaint_count,
                a.c.last_interaction_us: _later(a.c.last_interaction_us, d.last_interaction_us),
                a.c.last_interaction_at: _later(a.c.last_interaction_at, d.last_interaction_at),
            }
        )
    )
    return int(conn.execute(stmt).rowcount)
