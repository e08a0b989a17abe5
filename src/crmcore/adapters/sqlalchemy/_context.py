"""The transaction context: what the repositories of one unit of work share.

Like the datastore eventsourcing's recorders are given, a :class:`TransactionContext` is the
only thing a repository holds: the unit's connection (handed out for reading or, starting
the write transaction where that is lazy, for writing), the dialect, the tables, the
store's settings and compiled INSERTs, and the unit's bookkeeping (pending domain events).
The unit of work opens and closes it around its transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection

from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.adapters.sqlalchemy._sealing import RowSealer
from crmcore.adapters.sqlalchemy._settings import StoreSettings
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.adapters.sqlalchemy._upsert import InsertCache
from crmcore.domain import DomainEvent
from crmcore.errors import ConfigurationError

__all__ = ["TransactionContext"]


class TransactionContext:
    """The connection, dialect facts, tables, settings and pending events of one unit.

    Args:
        tables: the store's tables.
        dialect: ``"sqlite"``, ``"postgresql"``, ``"mysql"`` or ``"mariadb"``.
        settings: the store's settings (the reporting currency).
        inserts: the store's compiled INSERTs.
        lazy_begin: the first write must start the transaction (``BEGIN IMMEDIATE``).
        sealer: seals and opens personal fields (an encrypted store), or ``None``.

    Attributes:
        tables, dialect, settings, inserts, sealer: as given.
    """

    def __init__(
        self,
        *,
        tables: CrmTables,
        dialect: str,
        settings: StoreSettings,
        inserts: InsertCache,
        lazy_begin: bool,
        sealer: RowSealer | None = None,
    ) -> None:
        self.tables = tables
        self.dialect = dialect
        self.settings = settings
        self.inserts = inserts
        self.sealer = sealer
        self._lazy_begin = lazy_begin
        self._conn: Connection | None = None
        self._writing = False
        self._events: list[DomainEvent] = []

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else ("writing" if self._writing else "reading")
        return f"TransactionContext(dialect={self.dialect!r}, {state})"

    # -- lifetime (the unit of work) ---------------------------------------------------------

    def open(self, conn: Connection) -> None:
        """Hand the unit's connection (in its transaction) to the repositories."""
        self._conn = conn
        self._writing = False

    def close(self) -> None:
        """Take the connection away: repositories raise until the next :meth:`open`."""
        self._conn = None
        self._writing = False

    def transaction_ended(self) -> None:
        """The unit's transaction committed or rolled back: the next write starts anew."""
        self._writing = False

    # -- connections (the repositories) ------------------------------------------------------

    @property
    def connection(self) -> Connection | None:
        """The unit's connection while it is open."""
        return self._conn

    @property
    def is_writing(self) -> bool:
        """Whether the unit has written in its current transaction (holds the write lock)."""
        return self._writing

    def read(self) -> Connection:
        """The connection to read on.

        Raises:
            ConfigurationError: the unit of work is not entered (or already left).
        """
        if self._conn is None:
            raise ConfigurationError("use the unit of work inside a 'with' block")
        return self._conn

    def write(self) -> Connection:
        """The connection to write on (its first write starts the transaction if lazy).

        Raises:
            ConfigurationError: the unit of work is not entered (or already left).
        """
        conn = self.read()
        if not self._writing:
            if self._lazy_begin:
                with translated():
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
            self._writing = True
        return conn

    # -- pending domain events ---------------------------------------------------------------

    def add_event(self, event: DomainEvent) -> None:
        """Queue a domain event; it is published only if the unit commits."""
        self._events.append(event)

    def collect_events(self) -> list[DomainEvent]:
        """Return and clear the queued events."""
        events, self._events = self._events, []
        return events

    def discard_events(self) -> None:
        """Drop the queued events (the unit rolled back)."""
        self._events.clear()
