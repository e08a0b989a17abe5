"""crmcore: initial schema (customers, history, aggregates, segments, settings, counter).

Revision ID: crmcore_0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

from crmcore.adapters.sqlalchemy._types import LONG_TEXT, RECORD_ID, UtcDateTime
from crmcore.adapters.sqlalchemy.migrations import options

revision = "crmcore_0001"
down_revision = None
branch_labels = ("crmcore",)
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

_TABLES = (
    "settings",
    "number_counter",
    "customers",
    "customer_emails",
    "customer_phones",
    "customer_tags",
    "aggregates",
    "transactions",
    "interactions",
    "segments",
    "segment_runs",
    "segment_members",
)


def upgrade() -> None:
    opts = options(context.config)
    p, schema = opts.table_prefix, opts.schema
    q = f"{schema}.{p}" if schema else p
    op.create_table(
        f"{p}customers",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("erased", sa.Boolean(), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=True),
        sa.Column("display_name", sa.String(length=400), nullable=True),
        sa.Column("gender", sa.String(length=32), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("title", sa.String(length=100), nullable=True),
        sa.Column("job_title", sa.String(length=200), nullable=True),
        sa.Column("organisation", sa.String(length=200), nullable=True),
        sa.Column("preferred_channel", sa.String(length=32), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("addresses", LONG_TEXT, nullable=True),
        sa.Column("attributes", LONG_TEXT, nullable=True),
        sa.Column("consents", LONG_TEXT, nullable=True),
        sa.Column("stage_history", LONG_TEXT, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("number", name=op.f(f"pk_{p}customers")),
        sa.UniqueConstraint(
            "source", "external_id", name=op.f(f"uq_{p}customers_source_external_id")
        ),
        schema=schema,
        **_MYSQL,
    )
    op.create_table(
        f"{p}number_counter",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f(f"pk_{p}number_counter")),
        schema=schema,
        **_MYSQL,
    )
    op.create_table(
        f"{p}segments",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f(f"pk_{p}segments")),
        schema=schema,
        **_MYSQL,
    )
    op.create_table(
        f"{p}settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f(f"pk_{p}settings")),
        schema=schema,
        **_MYSQL,
    )
    op.create_table(
        f"{p}aggregates",
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("purchase_count", sa.BigInteger(), nullable=False),
        sa.Column("refund_count", sa.BigInteger(), nullable=False),
        sa.Column("purchase_minor", sa.BigInteger(), nullable=False),
        sa.Column("refund_minor", sa.BigInteger(), nullable=False),
        sa.Column("first_purchase_at", UtcDateTime(), nullable=True),
        sa.Column("last_purchase_at", UtcDateTime(), nullable=True),
        sa.Column("interaction_count", sa.BigInteger(), nullable=False),
        sa.Column("complaint_count", sa.BigInteger(), nullable=False),
        sa.Column("last_interaction_at", UtcDateTime(), nullable=True),
        sa.Column("first_purchase_us", sa.BigInteger(), nullable=True),
        sa.Column("last_purchase_us", sa.BigInteger(), nullable=True),
        sa.Column("last_interaction_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer"], [f"{q}customers.number"], name=op.f(f"fk_{p}aggregates_customer")
        ),
        sa.PrimaryKeyConstraint("customer", name=op.f(f"pk_{p}aggregates")),
        schema=schema,
        **_MYSQL,
    )
    op.create_table(
        f"{p}customer_emails",
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("lookup_key", sa.String(length=320), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer"], [f"{q}customers.number"], name=op.f(f"fk_{p}customer_emails_customer")
        ),
        sa.PrimaryKeyConstraint("customer", "position", name=op.f(f"pk_{p}customer_emails")),
        schema=schema,
        **_MYSQL,
    )
    op.create_index(
        op.f(f"ix_{p}customer_emails_lookup_key"),
        f"{p}customer_emails",
        ["lookup_key"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}customer_phones",
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer"], [f"{q}customers.number"], name=op.f(f"fk_{p}customer_phones_customer")
        ),
        sa.PrimaryKeyConstraint("customer", "position", name=op.f(f"pk_{p}customer_phones")),
        schema=schema,
        **_MYSQL,
    )
    op.create_index(
        op.f(f"ix_{p}customer_phones_e164"),
        f"{p}customer_phones",
        ["e164"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}customer_tags",
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer"], [f"{q}customers.number"], name=op.f(f"fk_{p}customer_tags_customer")
        ),
        sa.PrimaryKeyConstraint("customer", "tag", name=op.f(f"pk_{p}customer_tags")),
        schema=schema,
        **_MYSQL,
    )
    op.create_index(
        op.f(f"ix_{p}customer_tags_tag"), f"{p}customer_tags", ["tag"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}interactions",
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("id", RECORD_ID, nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("notes", LONG_TEXT, nullable=True),
        sa.Column("outcome", sa.String(length=500), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("follow_up_due", UtcDateTime(), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("external_ref", sa.String(length=200), nullable=True),
        sa.Column("occurred_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer"], [f"{q}customers.number"], name=op.f(f"fk_{p}interactions_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{p}interactions")),
        sa.UniqueConstraint(
            "source", "external_ref", name=op.f(f"uq_{p}interactions_source_external_ref")
        ),
        schema=schema,
        **_MYSQL,
    )
    op.create_index(
        op.f(f"ix_{p}interactions_customer_occurred_at"),
        f"{p}interactions",
        ["customer", "occurred_at"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        op.f(f"ix_{p}interactions_occurred_us"),
        f"{p}interactions",
        ["occurred_us"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}segment_runs",
        sa.Column("segment", sa.String(length=100), nullable=False),
        sa.Column("as_of", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment"], [f"{q}segments.name"], name=op.f(f"fk_{p}segment_runs_segment")
        ),
        sa.PrimaryKeyConstraint("segment", "as_of", name=op.f(f"pk_{p}segment_runs")),
        schema=schema,
        **_MYSQL,
    )
    op.create_table(
        f"{p}transactions",
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("id", RECORD_ID, nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reporting_minor", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("external_ref", sa.String(length=200), nullable=True),
        sa.Column("lines", LONG_TEXT, nullable=False),
        sa.Column("occurred_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer"], [f"{q}customers.number"], name=op.f(f"fk_{p}transactions_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{p}transactions")),
        sa.UniqueConstraint(
            "source", "external_ref", name=op.f(f"uq_{p}transactions_source_external_ref")
        ),
        schema=schema,
        **_MYSQL,
    )
    op.create_index(
        op.f(f"ix_{p}transactions_customer_occurred_at"),
        f"{p}transactions",
        ["customer", "occurred_at"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        op.f(f"ix_{p}transactions_occurred_us"),
        f"{p}transactions",
        ["occurred_us"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}segment_members",
        sa.Column("segment", sa.String(length=100), nullable=False),
        sa.Column("as_of", UtcDateTime(), nullable=False),
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment", "as_of"],
            [f"{q}segment_runs.segment", f"{q}segment_runs.as_of"],
            name=op.f(f"fk_{p}segment_members_segment_as_of"),
        ),
        sa.PrimaryKeyConstraint(
            "segment", "as_of", "customer", name=op.f(f"pk_{p}segment_members")
        ),
        schema=schema,
        **_MYSQL,
    )
    op.create_index(
        op.f(f"ix_{p}segment_members_customer"),
        f"{p}segment_members",
        ["customer"],
        unique=False,
        schema=schema,
    )
    settings = sa.table(f"{p}settings", sa.column("key"), sa.column("value"), schema=schema)
    counter = sa.table(f"{p}number_counter", sa.column("name"), sa.column("value"), schema=schema)
    op.bulk_insert(settings, [{"key": "reporting_currency", "value": opts.currency}])
    op.bulk_insert(counter, [{"name": "crm_number", "value": 0}])


def downgrade() -> None:
    opts = options(context.config)
    for name in reversed(_TABLES):
        op.drop_table(f"{opts.table_prefix}{name}", schema=opts.schema)
