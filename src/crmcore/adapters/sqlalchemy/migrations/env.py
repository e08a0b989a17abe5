"""crmcore's Alembic environment: migrates crmcore's tables only, with its own version table."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from crmcore.adapters.sqlalchemy._tables import build_tables
from crmcore.adapters.sqlalchemy.migrations import options

config = context.config
opts = options(config)
tables = build_tables(prefix=opts.table_prefix, schema=opts.schema)
ours = {t.name for t in tables.all}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Compare and migrate crmcore's tables only; a host's tables are never touched."""
    if type_ == "table":
        return name in ours and getattr(obj, "schema", None) == opts.schema
    table = getattr(obj, "table", None)
    if table is not None:
        return table.name in ours
    return True


def run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=tables.metadata,
        version_table=opts.version_table,
        version_table_schema=opts.schema,
        include_object=include_object,
        include_schemas=opts.schema is not None,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()
