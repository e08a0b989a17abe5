"""Running crmcore's bundled Alembic migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine, MetaData, create_engine
from sqlalchemy import exc as sa_exc

from crmcore.adapters.sqlalchemy._errors import raise_translated
from crmcore.adapters.sqlalchemy._tables import build_tables
from crmcore.domain import currency_exponent
from crmcore.errors import ConfigurationError, ValidationError

__all__ = ["BRANCH_LABEL", "MIGRATIONS_DIR", "alembic_config", "upgrade"]

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
"""Directory of crmcore's migration environment (``versions/`` holds the scripts)."""
BRANCH_LABEL: Final = "crmcore"
"""The Alembic branch label of crmcore's migrations (``alembic upgrade crmcore@head``)."""


def alembic_config(
    connection: Connection,
    *,
    currency: str | None = None,
    table_prefix: str = "crm_",
    schema: str | None = None,
    version_table: str = "crmcore_alembic_version",
) -> object:
    """An ``alembic.config.Config`` for crmcore's own migration environment on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes["crmcore_table_prefix"] = table_prefix
    config.attributes["crmcore_schema"] = schema
    config.attributes["crmcore_version_table"] = version_table
    config.attributes["crmcore_currency"] = currency or "USD"
    return config


def upgrade(
    bind_or_url: Engine | Connection | str,
    *,
    currency: str | None = None,
    table_prefix: str = "crm_",
    schema: str | None = None,
    version_table: str = "crmcore_alembic_version",
) -> None:
    """Migrate crmcore's tables to the newest revision (creating them on a new database).

    Only crmcore's tables and its own version table are touched. On a new database the
    reporting currency (``currency``, default ``USD``) is recorded in the settings table.
    Given an ``Engine`` or URL, the migration runs in a transaction of its own and is
    committed; given a ``Connection``, it runs in that connection's transaction and the caller
    commits.

    Args:
        bind_or_url: where to migrate.
        currency: ISO 4217 reporting currency to record on a new database.
        table_prefix: as for :class:`~crmcore.adapters.sqlalchemy.SqlStore`.
        schema: as for :class:`~crmcore.adapters.sqlalchemy.SqlStore`.
        version_table: Alembic version table of crmcore's branch (kept apart from the host's
            ``alembic_version``).

    Raises:
        ConfigurationError: the database is unreachable, or records another currency.
    """
    from alembic import command

    if currency is not None:
        try:
            currency_exponent(currency, "currency")
        except ValidationError as exc:
            raise ConfigurationError(str(exc)) from None
    build_tables(MetaData(), prefix=table_prefix, schema=schema)  # validates the prefix
    engine: Engine | None = None
    try:
        if isinstance(bind_or_url, str):
            engine = create_engine(bind_or_url)
            bind: Engine | Connection = engine
        else:
            bind = bind_or_url

        def run(conn: Connection) -> None:
            config = alembic_config(
                conn,
                currency=currency,
                table_prefix=table_prefix,
                schema=schema,
                version_table=version_table,
            )
            command.upgrade(config, f"{BRANCH_LABEL}@head")  # type: ignore[arg-type]
            _check_currency(conn, currency, table_prefix, schema)

        if isinstance(bind, Engine):
            with bind.begin() as conn:
                run(conn)
        else:
            run(bind)
    except sa_exc.SQLAlchemyError as exc:
        raise_translated(exc, "migration")
    finally:
        if engine is not None:
            engine.dispose()


def _check_currency(
    conn: Connection, currency: str | None, prefix: str, schema: str | None
) -> None:
    from sqlalchemy import select

    tables = build_tables(MetaData(), prefix=prefix, schema=schema)
    s = tables.settings
    stored = conn.execute(select(s.c.value).where(s.c.key == "reporting_currency")).scalar()
    if currency is not None and stored is not None and stored != currency:
        raise ConfigurationError(
            f"currency {currency!r} conflicts with {stored!r} recorded in the database"
        )
