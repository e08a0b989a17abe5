"""crmcore: retention (``customers.anonymised_at``: when retention anonymised a customer).

Revision ID: crmcore_0005_retention
Revises: crmcore_0004_encryption
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from crmcore.adapters.sqlalchemy._types import UtcDateTime
from crmcore.adapters.sqlalchemy.migrations import options

revision = "crmcore_0005_retention"
down_revision = "crmcore_0004_encryption"
branch_labels = None
depends_on = None


def upgrade() -> None:
    opts = options(context.config)
    op.add_column(
        f"{opts.table_prefix}customers",
        sa.Column("anonymised_at", UtcDateTime(), nullable=True),
        schema=opts.schema,
    )


def downgrade() -> None:
    opts = options(context.config)
    op.drop_column(f"{opts.table_prefix}customers", "anonymised_at", schema=opts.schema)
