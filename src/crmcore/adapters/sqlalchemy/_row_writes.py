"""Recording one history row: its aggregate fold as one statement, with the deltas in SQL.

The batch path groups stored rows by customer with numpy and sends one delta per customer
(``_aggregates``). One row needs none of that: its fold is a fixed ``UPDATE`` of the
customer's aggregate row whose ``SET`` clauses add the row's amounts and move the instants
(the same expressions as the batch fold: ``_later``/``_earlier`` with NULL as "nothing yet").
On PostgreSQL the guarded INSERT of the row and that UPDATE are one statement (data-modifying
CTEs), so recording one new transaction is one round trip besides the commit.

Each statement is compiled once per store (:class:`~._prepared.PreparedCache`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Select, Table, Update, bindparam, func, literal, select, update

from crmcore._epoch import from_us
from crmcore.adapters.sqlalchemy._aggregates import (
    _ERASED_WHILE_RECORDING as ERASED_WHILE_RECORDING,
)
from crmcore.adapters.sqlalchemy._aggregates import _earlier, _later
from crmcore.adapters.sqlalchemy._upsert import guarded_insert
from crmcore.analytics.totals import INT64_MAX
from crmcore.domain import InteractionKind, TransactionKind

__all__ = [
    "ERASED_WHILE_RECORDING",
    "ROW_FOLDS",
    "combined_insert",
    "interaction_deltas",
    "row_fold",
    "row_totals",
    "transaction_deltas",
]

ROW_FOLDS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]] = {
    # fold: (summed columns, earliest-instant columns, latest-instant columns)
    "purchase": (
        ("purchase_count", "purchase_minor"),
        ("first_purchase_at", "first_purchase_us"),
        ("last_purchase_at", "last_purchase_us"),
    ),
    "refund": (("refund_count", "refund_minor"), (), ()),
    "interaction": (
        ("interaction_count", "complaint_count"),
        (),
        ("last_interaction_at", "last_interaction_us"),
    ),
}
"""How one row of each kind changes its customer's aggregate row (as the batch fold does)."""

_REFUND: Final = TransactionKind.REFUND.value
_COMPLAINT: Final = InteractionKind.COMPLAINT.value


def transaction_deltas(row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The fold of one stored transaction row and its values (``d_``-prefixed bind names)."""
    minor = row["reporting_minor"]
    if row["kind"] == _REFUND:
        return "refund", {"d_refund_count": 1, "d_refund_minor": minor}
    us = row["occurred_us"]
    at = from_us(us)
    return "purchase", {
        "d_purchase_count": 1,
        "d_purchase_minor": minor,
        "d_first_purchase_at": at,
        "d_first_purchase_us": us,
        "d_last_purchase_at": at,
        "d_last_purchase_us": us,
    }


def interaction_deltas(row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The fold of one stored interaction row and its values."""
    us = row["occurred_us"]
    return "interaction", {
        "d_interaction_count": 1,
        "d_complaint_count": int(row["kind"] == _COMPLAINT),
        "d_last_interaction_at": from_us(us),
        "d_last_interaction_us": us,
    }


def _sets(aggregates: Table, fold: str) -> dict[str, Any]:
    add, earliest, latest = ROW_FOLDS[fold]
    a = aggregates

    def value(name: str) -> Any:
        return bindparam(f"d_{name}", type_=a.c[name].type)

    sets: dict[str, Any] = {c: a.c[c] + value(c) for c in add}
    sets.update((c, _earlier(a.c[c], value(c))) for c in earliest)
    sets.update((c, _later(a.c[c], value(c))) for c in latest)
    return sets


def row_totals(fold: str) -> list[str]:
    """The running money totals a fold adds to (they must stay below ``INT64_MAX``)."""
    return [c for c in ROW_FOLDS[fold][0] if c.endswith("_minor")]


def _fits(aggregates: Table, fold: str) -> list[Any]:
    # As in the batch fold: a total that would pass INT64_MAX leaves the row un-updated
    # (SQLite would turn the sum into a REAL, PostgreSQL fail with an anonymous range
    # error); the caller then names the total (``_aggregates.refuse_fold``).
    a = aggregates
    return [
        a.c[c] <= literal(INT64_MAX) - bindparam(f"d_{c}", type_=a.c[c].type)
        for c in row_totals(fold)
    ]


def row_fold(aggregates: Table, fold: str) -> Update:
    """``UPDATE aggregates SET <fold> WHERE customer = :d_customer AND <totals fit>``: its
    row count (the matched rows on every dialect crmcore supports) is 0 when the aggregate
    row is gone (a concurrent erase) or a running total would overflow."""
    a = aggregates
    return (
        update(a)
        .where(
            a.c.customer == bindparam("d_customer", type_=a.c.customer.type),
            *_fits(a, fold),
        )
        .values(_sets(a, fold))
    )


def combined_insert(
    dialect: str,
    table: Table,
    customers: Table,
    aggregates: Table,
    columns: Sequence[str],
    fold: str,
) -> Select[Any]:
    """PostgreSQL: the guarded INSERT of one row (:func:`~._upsert.guarded_insert`) and its
    aggregate fold in one statement, answering ``(inserted, folded)`` row counts.

    ``WITH ins AS (INSERT ... RETURNING customer), upd AS (UPDATE aggregates SET ... FROM
    ins WHERE customer = ins.customer RETURNING customer) SELECT (SELECT count(*) FROM ins),
    (SELECT count(*) FROM upd)``.
    """
    if dialect != "postgresql":
        raise ValueError(f"no combined INSERT and fold on {dialect}")
    a = aggregates
    ins = guarded_insert(dialect, table, customers, columns).returning(table.c.customer).cte("ins")
    upd = (
        update(a)
        .where(a.c.customer == ins.c.customer, *_fits(a, fold))
        .values(_sets(a, fold))
        .returning(a.c.customer)
        .cte("upd")
    )
    return select(
        select(func.count()).select_from(ins).scalar_subquery(),
        select(func.count()).select_from(upd).scalar_subquery(),
    )


Deltas = Callable[[Mapping[str, Any]], tuple[str, dict[str, Any]]]
"""A history kind's :func:`transaction_deltas` or :func:`interaction_deltas`."""
