"""crmcore: the audit log (who did what to whose data, when).

Revision ID: crmcore_0003_audit
Revises: crmcore_0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

from crmcore.adapters.sqlalchemy._types import AUDIT_SEQUENCE, LONG_TEXT, RECORD_ID, UtcDateTime
from crmcore.adapters.sqlalchemy.migrations import options

revision = "crmcore_0003_audit"
down_revision = "crmcore_0001"
branch_labels = None
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    opts = options(context.config)
    p, schema = opts.table_prefix, opts.schema
    op.create_table(
        f"{p}audit_log",
        sa.Column("seq", AUDIT_SEQUENCE, nullable=False, autoincrement=True),
        sa.Column("id", RECORD_ID, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(length=32), nullable=True),
        sa.Column("fields", LONG_TEXT, nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f(f"pk_{p}audit_log")),
        sa.UniqueConstraint("id", name=op.f(f"uq_{p}audit_log_id")),
        schema=schema,
        **_MYSQL,
    )
    op.create_index(
        op.f(f"ix_{p}audit_log_customer_at"),
        f"{p}audit_log",
        ["customer", "at"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        op.f(f"ix_{p}audit_log_at"), f"{p}audit_log", ["at"], unique=False, schema=schema
    )


def downgrade() -> None:
    opts = options(context.config)
    op.drop_table(f"{opts.table_prefix}audit_log", schema=opts.schema)
