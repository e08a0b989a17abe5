"""The per-customer "frame" analytics queries run over: customers joined with their metrics.

As of the present (no transaction/interaction after ``as_of``) the metrics come from the
maintained ``aggregates`` table; for an earlier ``as_of`` from ``GROUP BY customer`` subqueries
over the history restricted to ``occurred_us <= as_of``. Either way a frame exposes the same
raw columns by name, so the snapshot fetch, the rule compiler and the window-function scorer
are written once. Instants are integer microseconds since the epoch (``*_us`` columns), so
day arithmetic and comparisons are exact on every dialect.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    FromClause,
    case,
    cast,
    func,
    literal,
    select,
)

from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.analytics.columns import (
    CHANNEL_COUNT_COLUMNS,
    INTERACTION_COLUMNS,
    TRANSACTION_COLUMNS,
)
from crmcore.domain import InteractionKind, TransactionKind

__all__ = [
    "INTERACTION_RAW",
    "TRANSACTION_RAW",
    "Frame",
    "build_frame",
    "exact_text",
    "latest_events",
    "number_order",
]

TRANSACTION_RAW: Final = frozenset(TRANSACTION_COLUMNS)
"""Raw columns computed from transactions."""
INTERACTION_RAW: Final = frozenset(INTERACTION_COLUMNS)
"""Raw columns computed from interactions."""
_PROFILE: Final = ("created_us", "stage", "gender", "owner", "country", "birth_year")


class Frame:
    """Customers (not erased) with their raw metric columns, as of one instant.

    Attributes:
        source: the FROM clause (customers joined with what the raw columns need).
        number: the CRM number column.
        raw: raw name -> SQL expression. Counts are never NULL; ``*_us`` instants are NULL
            when there is none (no purchase / interaction); profile columns as stored.
        where: the condition every frame query applies (the customer is not erased).
        tables: the store's tables (tags are tested with EXISTS on ``customer_tags``).
        dialect: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``.
        as_of_us: the instant, microseconds since the epoch.
    """

    def __init__(
        self,
        *,
        source: FromClause,
        raw: Mapping[str, ColumnElement[Any]],
        tables: CrmTables,
        dialect: str,
        as_of_us: int,
    ) -> None:
        c = tables.customers
        self.source = source
        self.number: ColumnElement[Any] = c.c.number
        self.raw = dict(raw)
        self.where: ColumnElement[bool] = c.c.erased.is_(False)
        self.tables = tables
        self.dialect = dialect
        self.as_of_us = as_of_us

    def column(self, name: str) -> ColumnElement[Any]:
        """The expression of a raw column."""
        return self.raw[name]


def latest_events(conn: Connection, tables: CrmTables) -> tuple[int | None, int | None]:
    """The latest ``occurred_us`` of any transaction and of any interaction (index lookups)."""
    tx, ix = tables.transactions, tables.interactions
    row = conn.execute(
        select(
            select(func.max(tx.c.occurred_us)).scalar_subquery(),
            select(func.max(ix.c.occurred_us)).scalar_subquery(),
        )
    ).one()
    return (
        None if row[0] is None else int(row[0]),
        None if row[1] is None else int(row[1]),
    )


def _big(expr: Any) -> ColumnElement[Any]:
    return cast(expr, BigInteger)


def build_frame(
    tables: CrmTables,
    dialect: str,
    as_of_us: int,
    needed: Collection[str],
    *,
    current_tx: bool,
    current_ix: bool,
) -> Frame:
    """Build the frame for the raw columns in ``needed``.

    Args:
        tables: the store's tables.
        dialect: the store's dialect name.
        as_of_us: the instant.
        needed: raw names (see the module attributes and ``Frame.raw``).
        current_tx: no transaction is later than ``as_of`` (read the aggregates table).
        current_ix: no interaction is later than ``as_of``.

    Returns:
        The frame.
    """
    c, a = tables.customers, tables.aggregates
    wanted = set(needed)
    raw: dict[str, ColumnElement[Any]] = {"number": c.c.number}
    for name in _PROFILE:
        raw[name] = c.c[name]
    source: FromClause = c
    as_of = literal(as_of_us, BigInteger)
    from_aggregates = {n for n in wanted & TRANSACTION_RAW if current_tx} | {
        n for n in wanted & INTERACTION_RAW if current_ix
    }
    if from_aggregates:
        source = source.join(a, a.c.customer == c.c.number)
        for name in from_aggregates:
            raw[name] = a.c[name]
    if wanted & TRANSACTION_RAW and not current_tx:
        t = tables.transactions
        purchase = t.c.kind == TransactionKind.PURCHASE.value
        refund = t.c.kind == TransactionKind.REFUND.value
        sub = (
            select(
                t.c.customer.label("customer"),
                _big(func.sum(case((purchase, 1), else_=0))).label("purchase_count"),
                _big(func.sum(case((refund, 1), else_=0))).label("refund_count"),
                _big(func.sum(case((purchase, t.c.reporting_minor), else_=0))).label(
                    "purchase_minor"
                ),
                _big(func.sum(case((refund, t.c.reporting_minor), else_=0))).label("refund_minor"),
                func.min(case((purchase, t.c.occurred_us))).label("first_purchase_us"),
                func.max(case((purchase, t.c.occurred_us))).label("last_purchase_us"),
            )
            .where(t.c.occurred_us <= as_of)
            .group_by(t.c.customer)
            .subquery("tx_hist")
        )
        source = source.outerjoin(sub, sub.c.customer == c.c.number)
        for name in TRANSACTION_RAW & wanted:
            column = sub.c[name]
            raw[name] = column if name.endswith("_us") else func.coalesce(column, 0)
    if wanted & INTERACTION_RAW and not current_ix:
        i = tables.interactions
        complaint = i.c.kind == InteractionKind.COMPLAINT.value
        sub = (
            select(
                i.c.customer.label("customer"),
                _big(func.count()).label("interaction_count"),
                _big(func.sum(case((complaint, 1), else_=0))).label("complaint_count"),
                func.max(i.c.occurred_us).label("last_interaction_us"),
            )
            .where(i.c.occurred_us <= as_of)
            .group_by(i.c.customer)
            .subquery("ix_hist")
        )
        source = source.outerjoin(sub, sub.c.customer == c.c.number)
        for name in INTERACTION_RAW & wanted:
            column = sub.c[name]
            raw[name] = column if name.endswith("_us") else func.coalesce(column, 0)
    channel_names = set(CHANNEL_COUNT_COLUMNS.values()) & wanted
    if channel_names:
        i = tables.interactions
        sub = (
            select(
                i.c.customer.label("customer"),
                *(
                    _big(func.sum(case((i.c.channel == ch.value, 1), else_=0))).label(name)
                    for ch, name in CHANNEL_COUNT_COLUMNS.items()
                ),
            )
            .where(i.c.occurred_us <= as_of)
            .group_by(i.c.customer)
            .subquery("ix_channels")
        )
        source = source.outerjoin(sub, sub.c.customer == c.c.number)
        for name in CHANNEL_COUNT_COLUMNS.values():
            raw[name] = func.coalesce(sub.c[name], 0)
    return Frame(source=source, raw=raw, tables=tables, dialect=dialect, as_of_us=as_of_us)


def exact_text(frame: Frame, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``column`` compared exactly (MariaDB/MySQL: a NO PAD binary collation, so trailing
    spaces count, as in Python and the other dialects)."""
    if frame.dialect in ("mysql", "mariadb"):
        return column.collate("utf8mb4_nopad_bin")
    return column


def number_order(frame: Frame) -> ColumnElement[Any]:
    """The CRM number in code point order on every dialect (PostgreSQL: the ``C`` collation,
    whatever the database's default; MariaDB's column is binary; SQLite compares bytes)."""
    if frame.dialect == "postgresql":
        return frame.number.collate("C")
    return frame.number
