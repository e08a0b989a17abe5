"""crmcore's Alembic migration environment (``env.py``) and scripts (``versions/``).

The scripts read the table prefix, schema and reporting currency from the Alembic config:
``config.attributes`` (set by :func:`crmcore.adapters.sqlalchemy.upgrade`) or, in a host's
own Alembic environment, the main options ``crmcore_table_prefix``, ``crmcore_schema`` and
``crmcore_currency`` (defaults: ``crm_``, none, ``USD``).
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["MigrationOptions", "options"]


@attrs.frozen
class MigrationOptions:
    """Where crmcore's tables live, as the migration scripts see it."""

    table_prefix: str = "crm_"
    schema: str | None = None
    currency: str = "USD"
    version_table: str = "crmcore_alembic_version"


def options(config: Any) -> MigrationOptions:
    """Read :class:`MigrationOptions` from an ``alembic.config.Config``."""
    attributes = getattr(config, "attributes", {})

    def get(name: str, default: str | None) -> str | None:
        if f"crmcore_{name}" in attributes:
            value = attributes[f"crmcore_{name}"]
            return None if value is None else str(value)
        text = config.get_main_option(f"crmcore_{name}")
        return text if text else default

    return MigrationOptions(
        table_prefix=get("table_prefix", "crm_") or "",
        schema=get("schema", None),
        currency=get("currency", "USD") or "USD",
        version_table=get("version_table", "crmcore_alembic_version") or "crmcore_alembic_version",
    )
