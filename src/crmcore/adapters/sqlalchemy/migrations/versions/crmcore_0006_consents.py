"""crmcore: the consent ledger (a ``consents`` table replaces the customers' JSON column),
and the consent a segment may require (``segments.consent_purpose``/``consent_channel``).

Every decision held in ``customers.consents`` (JSON ``[purpose, channel, granted, at,
source]`` items, in the order they were recorded) becomes one ledger row: a new id, the same
purpose, channel, decision, instant and source, lawful basis "consent", actor
``"migration:crmcore_0006"``, its position in the JSON list as its append order. The column is
then dropped. The downgrade folds the ledger back into the column (purpose, channel, decision,
instant and source: the fields the old column had) and drops the table.

Revision ID: crmcore_0006_consents
Revises: crmcore_0005_retention
Create Date: 2026-12-02
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Final

import sqlalchemy as sa
from alembic import context, op

from crmcore._epoch import to_us
from crmcore.adapters.sqlalchemy._types import LONG_TEXT, RECORD_ID, UtcDateTime
from crmcore.adapters.sqlalchemy.migrations import options

revision = "crmcore_0006_consents"
down_revision = "crmcore_0005_retention"
branch_labels = None
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
_ACTOR: Final = "migration:crmcore_0006"
_PAGE: Final = 1000


def _ledger(p: str, schema: str | None) -> sa.TableClause:
    return sa.table(
        f"{p}consents",
        sa.column("customer", sa.String(32)),
        sa.column("id", RECORD_ID),
        sa.column("seq", sa.Integer),
        sa.column("purpose", sa.String(64)),
        sa.column("channel", sa.String(32)),
        sa.column("decision", sa.String(32)),
        sa.column("lawful_basis", sa.String(32)),
        sa.column("source", sa.String(200)),
        sa.column("actor", sa.String(200)),
        sa.column("at", UtcDateTime()),
        sa.column("at_us", sa.BigInteger),
        schema=schema,
    )


def _customers(p: str, schema: str | None) -> sa.TableClause:
    return sa.table(
        f"{p}customers",
        sa.column("number", sa.String(32)),
        sa.column("consents", LONG_TEXT),
        schema=schema,
    )


def _pages(bind: sa.Connection, query: Any, key: Any) -> Iterator[Sequence[Any]]:
    """Rows of ``query`` (ordered by the text ``key``) in keyset pages."""
    after = ""
    while True:
        rows = bind.execute(query.where(key > after).order_by(key).limit(_PAGE)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def upgrade() -> None:
    opts = options(context.config)
    p, schema = opts.table_prefix, opts.schema
    q = f"{schema}.{p}" if schema else p
    op.create_table(
        f"{p}consents",
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("id", RECORD_ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("lawful_basis", sa.String(length=32), nullable=False),
        sa.Column("text_hash", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("evidence", sa.String(length=500), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer"], [f"{q}customers.number"], name=op.f(f"fk_{p}consents_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{p}consents")),
        sa.UniqueConstraint("customer", "seq", name=op.f(f"uq_{p}consents_customer_seq")),
        schema=schema,
        **_MYSQL,
    )
    op.create_index(
        op.f(f"ix_{p}consents_customer_purpose"),
        f"{p}consents",
        ["customer", "purpose"],
        unique=False,
        schema=schema,
    )
    with op.batch_alter_table(f"{p}segments", schema=schema) as batch:
        batch.add_column(sa.Column("consent_purpose", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("consent_channel", sa.String(length=32), nullable=True))
    bind = op.get_bind()
    customers, ledger = _customers(p, schema), _ledger(p, schema)
    query = sa.select(customers.c.number, customers.c.consents).where(
        customers.c.consents.is_not(None)
    )
    for rows in _pages(bind, query, customers.c.number):
        out = []
        for number, text in rows:
            for seq, (purpose, channel, granted, at, source) in enumerate(json.loads(text)):
                when = dt.datetime.fromisoformat(at)
                out.append(
                    {
                        "customer": number,
                        "id": uuid.uuid4(),
                        "seq": seq,
                        "purpose": purpose,
                        "channel": channel,
                        "decision": "granted" if granted else "withdrawn",
                        "lawful_basis": "consent",
                        "source": source,
                        "actor": _ACTOR,
                        "at": when,
                        "at_us": to_us(when),
                    }
                )
        if out:
            bind.execute(sa.insert(ledger), out)
    _drop_columns(bind, f"{p}customers", schema, ("consents",))


def _drop_columns(
    bind: sa.Connection, table: str, schema: str | None, columns: tuple[str, ...]
) -> None:
    if bind.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        # A plain DROP COLUMN: batch mode would copy the table, and the customers table is
        # the one every child table's foreign key points at.
        preparer = bind.dialect.identifier_preparer
        name = preparer.quote(table)
        if schema:
            name = f"{preparer.quote_schema(schema)}.{name}"
        for column in columns:
            op.execute(f"ALTER TABLE {name} DROP COLUMN {preparer.quote(column)}")
        return
    with op.batch_alter_table(table, schema=schema) as batch:
        for column in columns:
            batch.drop_column(column)


def downgrade() -> None:
    opts = options(context.config)
    p, schema = opts.table_prefix, opts.schema
    with op.batch_alter_table(f"{p}customers", schema=schema) as batch:
        batch.add_column(sa.Column("consents", LONG_TEXT, nullable=True))
    bind = op.get_bind()
    customers, ledger = _customers(p, schema), _ledger(p, schema)
    live = sa.table(
        f"{p}customers", sa.column("number"), sa.column("erased", sa.Boolean), schema=schema
    )
    # Live customers get "[]" (what the old mapping wrote for none); erased ones keep NULL.
    bind.execute(
        sa.update(customers)
        .where(customers.c.number.in_(sa.select(live.c.number).where(live.c.erased.is_(False))))
        .values(consents="[]")
    )
    query = sa.select(
        ledger.c.customer,
        ledger.c.purpose,
        ledger.c.channel,
        ledger.c.decision,
        ledger.c.at,
        ledger.c.source,
    ).order_by(ledger.c.customer, ledger.c.at_us, ledger.c.seq)
    folded: dict[str, list[Any]] = {}
    for customer, purpose, channel, decision, at, source in bind.execute(query):
        folded.setdefault(customer, []).append(
            [purpose, channel, decision == "granted", at.isoformat(), source]
        )
    for number, items in folded.items():
        bind.execute(
            sa.update(customers)
            .where(customers.c.number == number)
            .values(consents=json.dumps(items, separators=(",", ":")))
        )
    op.drop_table(f"{p}consents", schema=schema)
    # A segment requiring consent becomes a plain one: the old schema has no place for it.
    _drop_columns(bind, f"{p}segments", schema, ("consent_purpose", "consent_channel"))
