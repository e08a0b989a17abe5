"""The settings rows of a store: the reporting currency recorded in the database."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, Table, insert, inspect, select
from sqlalchemy import exc as sa_exc

from crmcore.adapters.sqlalchemy._binding import Binding
from crmcore.adapters.sqlalchemy._errors import raise_translated
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.domain import currency_exponent
from crmcore.errors import ConfigurationError, ValidationError

__all__ = ["COUNTER_NAME", "CURRENCY_KEY", "StoreSettings", "check_currency", "initialize_rows"]

CURRENCY_KEY: Final = "reporting_currency"
"""Key of the reporting currency in the settings table."""
COUNTER_NAME: Final = "crm_number"
"""Name of the CRM number counter row."""


def initialize_rows(conn: Connection, tables: CrmTables, currency: str) -> None:
    """Insert the settings and counter rows if missing (migrations and create_schema).

    Raises:
        ConfigurationError: the database records a different reporting currency than a
            requested one.
    """
    s = tables.settings
    stored = conn.execute(select(s.c.value).where(s.c.key == CURRENCY_KEY)).scalar()
    if stored is None:
        conn.execute(insert(s).values(key=CURRENCY_KEY, value=currency))
    c = tables.number_counter
    if conn.execute(select(c.c.value).where(c.c.name == COUNTER_NAME)).scalar() is None:
        conn.execute(insert(c).values(name=COUNTER_NAME, value=0))


def check_currency(currency: str | None) -> None:
    """Check a requested reporting currency (``None``: whatever is recorded).

    Raises:
        ConfigurationError: ``currency`` is not an ISO 4217 code.
    """
    if currency is not None:
        try:
            currency_exponent(currency, "reporting_currency")
        except ValidationError as exc:
            raise ConfigurationError(str(exc)) from None


class StoreSettings:
    """The reporting currency: the one asked for, checked against the recorded one.

    Args:
        binding: how to reach the database.
        tables: the store's tables.
        given_currency: the currency the store was constructed with (``None``: whatever is
            recorded).

    Raises:
        ConfigurationError: ``given_currency`` is not an ISO 4217 code.
    """

    def __init__(self, binding: Binding, tables: CrmTables, given_currency: str | None) -> None:
        check_currency(given_currency)
        self._binding = binding
        self._table = tables.settings
        self.given_currency = given_currency
        self._recorded: str | None = None

    @property
    def reporting_currency(self) -> str:
        """The reporting currency recorded in the database (``USD`` if none is recorded)."""
        if self._recorded is None:
            self.refresh()
        if self._recorded is not None:
            return self._recorded
        return self.given_currency or "USD"

    def forget(self) -> None:
        """Forget the recorded currency (the schema was created or dropped)."""
        self._recorded = None

    def refresh(self) -> None:
        """Read the recorded currency (if the settings table exists).

        Raises:
            ConfigurationError: it conflicts with the given one, or the database is
                unreachable.
        """
        binding, table = self._binding, self._table
        try:
            if binding.host_connection is not None:
                stored = _fetch_on_host(binding.host_connection, table)
            else:
                assert binding.engine is not None
                with binding.serialized(), binding.engine.connect() as conn:
                    stored = _fetch_currency(conn, table)
        except sa_exc.SQLAlchemyError as exc:
            raise_translated(exc, "settings")
        if stored is None:
            return
        if self.given_currency is not None and stored != self.given_currency:
            raise ConfigurationError(
                f"reporting_currency {self.given_currency!r} conflicts with "
                f"{stored!r} recorded in the database"
            )
        self._recorded = stored


def _fetch_on_host(conn: Connection, table: Table) -> str | None:
    """Read the currency on the host's connection and leave it as it was found.

    Outside a transaction the read would autobegin one and leave the host unable to
    ``begin()``: it is ended (rolled back: it only read) afterwards. Inside the host's
    transaction the read runs in a SAVEPOINT, so a failure cannot abort that transaction.
    """
    if conn.in_transaction():
        with conn.begin_nested():
            return _fetch_currency(conn, table)
    try:
        return _fetch_currency(conn, table)
    finally:
        if conn.in_transaction():
            conn.rollback()


def _fetch_currency(conn: Connection, table: Table) -> str | None:
    if not inspect(conn).has_table(table.name, schema=table.schema):
        return None
    value = conn.execute(select(table.c.value).where(table.c.key == CURRENCY_KEY)).scalar()
    return None if value is None else str(value)
