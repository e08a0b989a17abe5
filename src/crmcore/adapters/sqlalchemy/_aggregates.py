"""Per-customer aggregates: the repository and the set-wise fold of new history into them.

The aggregate row of a customer holds the raw columns of :mod:`crmcore.analytics.columns`
(``TRANSACTION_COLUMNS`` and ``INTERACTION_COLUMNS``; SQL keeps "no instant yet" as NULL
rather than a sentinel) plus ``*_at`` date-time mirrors of the instants for the domain's
:class:`~crmcore.domain.CustomerAggregate`. It is written in the same transaction as the
history it summarizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from sqlalchemy import Connection, bindparam, case, func, literal, or_, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import ARRAY

from crmcore._epoch import from_us
from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.adapters.sqlalchemy._lookups import key_of, require_customers, where_in
from crmcore.analytics.columns import (
    COLUMN_DEFAULTS,
    INTERACTION_COLUMNS,
    TRANSACTION_COLUMNS,
)
from crmcore.analytics.totals import INT64_MAX, overflowing_groups, total_overflow
from crmcore.domain import CrmNumber, CustomerAggregate, InteractionKind, TransactionKind
from crmcore.errors import ConcurrencyError

__all__ = [
    "SqlAggregates",
    "fold_interactions",
    "fold_transactions",
    "refuse_fold",
    "zero_aggregate",
]

_INSTANT_MIRRORS: Final = {
    "first_purchase_us": "first_purchase_at",
    "last_purchase_us": "last_purchase_at",
    "last_interaction_us": "last_interaction_at",
}
"""The ``*_at`` date-time column kept beside each ``*_us`` instant."""

_ZERO: Final[dict[str, Any]] = {
    name: None if name in _INSTANT_MIRRORS else COLUMN_DEFAULTS[name]
    for name in TRANSACTION_COLUMNS + INTERACTION_COLUMNS
} | dict.fromkeys(_INSTANT_MIRRORS.values())


def zero_aggregate(number: str) -> dict[str, Any]:
    """The aggregate row of a customer without history."""
    return {"customer": number} | _ZERO


class SqlAggregates:
    """The per-customer aggregates of one unit of work (see
    :class:`~crmcore.ports.AggregateRepository`).

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._ctx = context
        self._t = context.tables

    def get(self, number: CrmNumber) -> CustomerAggregate:
        conn = self._ctx.read()
        a = self._t.aggregates
        with translated("customer"):
            require_customers(self._ctx.dialect, conn, self._t.customers, [key_of(number)])
            row = conn.execute(select(a).where(a.c.customer == number.value)).mappings().first()
        if row is None:
            return CustomerAggregate(customer=number)
        return CustomerAggregate(
            customer=number,
            purchase_count=int(row["purchase_count"]),
            refund_count=int(row["refund_count"]),
            purchase_minor=int(row["purchase_minor"]),
            refund_minor=int(row["refund_minor"]),
            first_purchase_at=row["first_purchase_at"],
            last_purchase_at=row["last_purchase_at"],
            interaction_count=int(row["interaction_count"]),
            complaint_count=int(row["complaint_count"]),
            last_interaction_at=row["last_interaction_at"],
        )


def fold_interactions(
    context: TransactionContext, conn: Connection, rows: Sequence[dict[str, Any]]
) -> None:
    """Fold newly stored interaction rows into their customers' aggregates."""
    complaint = InteractionKind.COMPLAINT.value
    fold_interaction_columns(
        context,
        conn,
        np.array([r["customer"] for r in rows], dtype=object),
        np.array([r["kind"] == complaint for r in rows], dtype=np.bool_),
        np.array([r["occurred_us"] for r in rows], dtype=np.int64),
    )


def fold_transactions(
    context: TransactionContext, conn: Connection, rows: Sequence[dict[str, Any]]
) -> None:
    """Fold newly stored transaction rows into their customers' aggregates."""
    refund = TransactionKind.REFUND.value
    fold_transaction_columns(
        context,
        conn,
        np.array([r["customer"] for r in rows], dtype=object),
        np.array([r["kind"] == refund for r in rows], dtype=np.bool_),
        np.array([r["occurred_us"] for r in rows], dtype=np.int64),
        np.array([r["reporting_minor"] for r in rows], dtype=np.int64),
    )


def _groups(customers: Any) -> tuple[list[str], Any]:
    """Distinct customers of a batch and each row's index into them (numpy)."""
    distinct, inverse = np.unique(customers.astype(str), return_inverse=True)
    return distinct.tolist(), inverse


def fold_transaction_columns(
    context: TransactionContext,
    conn: Connection,
    customers: Any,
    refund: Any,
    us: Any,
    minor: Any,
) -> None:
    """Fold stored transactions, given column-wise (customer number text, refund flag,
    instant in µs, reporting minor units), into their customers' aggregates: one delta per
    customer, grouped with numpy."""
    if len(customers) == 0:
        return
    names, group = _groups(customers)
    size = len(names)
    bought = ~refund
    for column, mask in (("purchase_minor", bought), ("refund_minor", refund)):
        # The per-customer sums below are int64 (np.add.at wraps): refuse first.
        over = overflowing_groups(group[mask], minor[mask], size)
        if over.size:
            adding = sum(int(v) for v in minor[mask][group[mask] == over[0]].tolist())
            raise total_overflow(column, names[int(over[0])], adding)
    count = np.bincount(group[bought], minlength=size)
    total = np.zeros(size, dtype=np.int64)
    np.add.at(total, group[bought], minor[bought])
    first = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(size, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, group[bought], us[bought])
    np.maximum.at(last, group[bought], us[bought])
    _fold(
        context,
        conn,
        [
            {
                "customer": names[i],
                "purchase_count": int(count[i]),
                "purchase_minor": int(total[i]),
                "first_purchase_at": from_us(int(first[i])),
                "last_purchase_at": from_us(int(last[i])),
                "first_purchase_us": int(first[i]),
                "last_purchase_us": int(last[i]),
            }
            for i in np.flatnonzero(count).tolist()
        ],
        add=("purchase_count", "purchase_minor"),
        earliest=("first_purchase_at", "first_purchase_us"),
        latest=("last_purchase_at", "last_purchase_us"),
    )
    refunds = np.bincount(group[refund], minlength=size)
    refunded = np.zeros(size, dtype=np.int64)
    np.add.at(refunded, group[refund], minor[refund])
    _fold(
        context,
        conn,
        [
            {
                "customer": names[i],
                "refund_count": int(refunds[i]),
                "refund_minor": int(refunded[i]),
            }
            for i in np.flatnonzero(refunds).tolist()
        ],
        add=("refund_count", "refund_minor"),
    )


def fold_interaction_columns(
    context: TransactionContext, conn: Connection, customers: Any, complaint: Any, us: Any
) -> None:
    """Fold stored interactions, given column-wise (customer number text, complaint flag,
    instant in µs), into their customers' aggregates: one delta per customer."""
    if len(customers) == 0:
        return
    names, group = _groups(customers)
    size = len(names)
    count = np.bincount(group, minlength=size)
    complaints = np.bincount(group[complaint], minlength=size)
    last = np.full(size, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, group, us)
    _fold(
        context,
        conn,
        [
            {
                "customer": names[i],
                "interaction_count": int(count[i]),
                "complaint_count": int(complaints[i]),
                "last_interaction_at": from_us(int(last[i])),
                "last_interaction_us": int(last[i]),
            }
            for i in range(size)
        ],
        add=("interaction_count", "complaint_count"),
        latest=("last_interaction_at", "last_interaction_us"),
    )


def _later(column: Any, value: Any) -> Any:
    """``max(column, value)`` with NULL as "nothing yet" (one SET expression)."""
    return case((or_(column.is_(None), column < value), value), else_=column)


def _earlier(column: Any, value: Any) -> Any:
    """``min(column, value)`` with NULL as "nothing yet"."""
    return case((or_(column.is_(None), column > value), value), else_=column)


_ERASED_WHILE_RECORDING = (
    "a customer was erased by a concurrent unit of work while recording; retry"
)


def _fold(
    context: TransactionContext,
    conn: Connection,
    deltas: list[dict[str, Any]],
    *,
    add: Sequence[str] = (),
    earliest: Sequence[str] = (),
    latest: Sequence[str] = (),
) -> None:
    """Fold per-customer ``deltas`` (``customer`` plus the named columns, one per customer)
    into the stored aggregate rows: ``add`` columns are summed, ``earliest`` / ``latest``
    keep the min / max with NULL as "nothing yet". Every customer's aggregate row must
    exist (the customers were checked in this transaction; a concurrent erase deletes the
    row): a missing one is a :class:`ConcurrencyError`.

    One statement on PostgreSQL (``UPDATE ... FROM unnest(arrays)``); on MySQL / MariaDB a
    locking read of the rows, then a multi-row ``INSERT ... ON DUPLICATE KEY UPDATE`` of
    the deltas (pymysql batches INSERTs, not UPDATEs); one executemany UPDATE elsewhere.
    """
    if not deltas:
        return
    a = context.tables.aggregates
    columns = [*add, *earliest, *latest]
    name = context.dialect

    def folded(value: Any) -> dict[str, Any]:
        sets: dict[str, Any] = {c: a.c[c] + value(c) for c in add}
        sets.update((c, _earlier(a.c[c], value(c))) for c in earliest)
        sets.update((c, _later(a.c[c], value(c))) for c in latest)
        return sets

    # A running total must stay below INT64_MAX: SQLite would turn the sum into a REAL,
    # PostgreSQL and MariaDB fail with an anonymous range error. Rows whose sum would not fit
    # are not updated (``fits``) and reported by ``refuse_fold``; the deltas are non-negative.
    totals = [c for c in add if c.endswith("_minor")]

    def fits(value: Any) -> list[Any]:
        return [a.c[c] <= literal(INT64_MAX) - value(c) for c in totals]

    if name == "postgresql":
        source = (
            func.unnest(
                literal([d["customer"] for d in deltas], ARRAY(a.c.customer.type)),
                *(literal([d[c] for d in deltas], ARRAY(a.c[c].type)) for c in columns),
            )
            .table_valued("customer", *columns)
            .render_derived()
        )
        stmt: Any = (
            update(a)
            .where(a.c.customer == source.c.customer, *fits(lambda c: source.c[c]))
            .values(folded(lambda c: source.c[c]))
        )
        if conn.execute(stmt).rowcount != len(deltas):
            refuse_fold(context, conn, deltas, totals)
        return
    if name in ("mysql", "mariadb"):
        # Lock the aggregate rows first (a locking read sees the latest committed state and
        # keeps a concurrent erase from deleting them before the upsert): the upsert must
        # only ever update. Its row count cannot tell (MariaDB's found-rows count reports an
        # updated row and an inserted one alike).
        wanted = sorted(d["customer"] for d in deltas)
        stored: dict[str, Any] = {}
        for where in where_in(name, a.c.customer, wanted):
            query = select(a.c.customer, *(a.c[c] for c in totals)).where(where)
            stored.update((r[0], r[1:]) for r in conn.execute(query.with_for_update()))
        if len(stored) != len(wanted):
            raise ConcurrencyError(_ERASED_WHILE_RECORDING)
        for d in deltas:
            for c, now in zip(totals, stored[d["customer"]], strict=True):
                if int(now) + d[c] > INT64_MAX:
                    raise total_overflow(c, d["customer"], d[c])
        upsert = mysql_insert(a)
        stmt = upsert.on_duplicate_key_update(folded(lambda c: upsert.inserted[c]))
        # The inserted values are the deltas over a zero row (every NOT NULL column set);
        # the checked rows exist, so each one is an update.
        rows = [zero_aggregate(d["customer"]) | d for d in deltas]
        bulk = context.inserts.get(
            conn, a, list(rows[0]), ignoring_refs=False, stmt=stmt, tag=f"fold:{','.join(columns)}"
        )
        if bulk is None:
            conn.execute(stmt, rows)
        else:
            bulk.execute(conn, [[r[c] for r in rows] for c in bulk.columns])
        return
    stmt = update(a).where(a.c.customer == bindparam("b_customer"))
    stmt = stmt.where(*fits(lambda c: bindparam(f"b_{c}", type_=a.c[c].type)))
    stmt = stmt.values(folded(lambda c: bindparam(f"b_{c}")))
    params = [{f"b_{k}": v for k, v in d.items()} for d in deltas]
    result = conn.execute(stmt, params)
    if result.rowcount != len(params):
        refuse_fold(context, conn, deltas, totals)


def refuse_fold(
    context: TransactionContext, conn: Connection, deltas: list[dict[str, Any]], totals: list[str]
) -> None:
    """Raise the reason why some of ``deltas`` updated no aggregate row: a running total
    that would overflow (nothing of the unit may be committed then), else a concurrent
    erase that deleted the row."""
    a = context.tables.aggregates
    wanted = sorted(d["customer"] for d in deltas)
    stored: dict[str, Any] = {}
    for where in where_in(context.dialect, a.c.customer, wanted):
        query = select(a.c.customer, *(a.c[c] for c in totals)).where(where)
        stored.update((r[0], r[1:]) for r in conn.execute(query))
    for d in deltas:
        if d["customer"] in stored:
            for c, now in zip(totals, stored[d["customer"]], strict=True):
                if int(now) + d[c] > INT64_MAX:
                    raise total_overflow(c, d["customer"], d[c])
    raise ConcurrencyError(_ERASED_WHILE_RECORDING)
