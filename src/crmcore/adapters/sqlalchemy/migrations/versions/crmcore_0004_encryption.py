"""crmcore: encryption at rest (sealed personal fields, the key ids they are sealed under).

Adds the table ``customer_sealed`` and nullable columns only, so it runs on a store of any
size without rewriting a row, and a plaintext store stays a valid plaintext store. The blind
indexes of e-mail addresses and phone numbers live in the existing indexed look-up columns
(``customer_emails.lookup_key``, ``customer_phones.e164``): no new index is needed.

Downgrade drops the columns; it refuses on a store that records encryption (the sealed
values would be lost): decrypt it first by copying it into a plaintext store
(``crmcore.backup.copy``).

Revision ID: crmcore_0004_encryption
Revises: crmcore_0003_audit
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from crmcore.adapters.sqlalchemy._types import LONG_TEXT
from crmcore.adapters.sqlalchemy.migrations import options
from crmcore.errors import ConfigurationError

revision = "crmcore_0004_encryption"
down_revision = "crmcore_0003_audit"
branch_labels = None
depends_on = None

_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    # (table, column, is a key id)
    ("customer_emails", "sealed", False),
    ("customer_phones", "sealed", False),
    ("interactions", "sealed", False),
    ("interactions", "key_id", True),
)


def upgrade() -> None:
    opts = options(context.config)
    p, schema = opts.table_prefix, opts.schema
    q = f"{schema}.{p}" if schema else p
    op.create_table(
        f"{p}customer_sealed",
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("sealed", LONG_TEXT, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("index_key_id", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer"],
            [f"{q}customers.number"],
            name=op.f(f"fk_{p}customer_sealed_customer"),
        ),
        sa.PrimaryKeyConstraint("customer", name=op.f(f"pk_{p}customer_sealed")),
        schema=schema,
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    for table, column, is_key in _COLUMNS:
        kind: sa.types.TypeEngine[str] = sa.String(length=16) if is_key else LONG_TEXT
        op.add_column(
            f"{opts.table_prefix}{table}",
            sa.Column(column, kind, nullable=True),
            schema=opts.schema,
        )


def downgrade() -> None:
    opts = options(context.config)
    settings = sa.table(
        f"{opts.table_prefix}settings",
        sa.column("key", sa.String()),
        sa.column("value", sa.String()),
        schema=opts.schema,
    )
    recorded = (
        op.get_bind()
        .execute(sa.select(settings.c.value).where(settings.c.key == "encryption"))
        .scalar()
    )
    if recorded is not None:
        raise ConfigurationError(
            "this store is encrypted: downgrading would drop its sealed values; copy it into "
            "a plaintext store first"
        )
    for table, column, _ in reversed(_COLUMNS):
        op.drop_column(f"{opts.table_prefix}{table}", column, schema=opts.schema)
    op.drop_table(f"{opts.table_prefix}customer_sealed", schema=opts.schema)
