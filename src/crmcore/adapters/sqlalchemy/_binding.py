"""How a store reaches its database: an engine of its own or the host's, or a host's connection.

A :class:`Binding` knows the dialect facts the other modules branch on, hands out
connections in the transaction shape each caller needs (an administrative transaction, a
consistent read, the allocator's short transaction) and serializes units on one shared
SQLite ``:memory:`` connection. It also tracks, per thread, the transaction context of the
unit of work in progress, which the SQLite allocator must reuse (a second connection would
wait for the unit's write lock forever).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

from crmcore.adapters.sqlalchemy._engine import (
    LAZY_BEGIN,
    dialect_name,
    is_configured,
    is_memory_sqlite,
)
from crmcore.adapters.sqlalchemy._errors import raise_translated, translate, translated
from crmcore.errors import ConfigurationError

__all__ = ["ActiveUnit", "Binding"]


class ActiveUnit(Protocol):
    """What the binding tracks of a unit of work in progress (its transaction context)."""

    @property
    def connection(self) -> Connection | None:
        """The unit's connection while it is open."""

    @property
    def is_writing(self) -> bool:
        """Whether the unit has written in its current transaction."""


class Binding:
    """The engine or host connection of one store, with its dialect facts.

    Args:
        bind: an ``Engine`` (units run on pooled connections) or a host's ``Connection``
            (units are SAVEPOINTs in the host's transaction).

    Attributes:
        engine: the engine (``None`` when bound to a host's connection).
        host_connection: the host's connection (``None`` when bound to an engine).
        dialect: the SQLAlchemy dialect.
        sqlite: the database is SQLite.
        sqlite_memory: the database is an in-memory SQLite one.
        lazy_begin: units start ``BEGIN IMMEDIATE`` at their first write (a configured
            SQLite engine); until then they read outside any transaction.

    Raises:
        ConfigurationError: ``bind`` is neither an engine nor a connection.
    """

    def __init__(self, bind: Engine | Connection) -> None:
        if isinstance(bind, Engine):
            self.engine: Engine | None = bind
            self.host_connection: Connection | None = None
        elif isinstance(bind, Connection):
            self.engine = None
            self.host_connection = bind
        else:
            raise ConfigurationError(
                f"bind must be a SQLAlchemy Engine or Connection, got {bind!r}"
            )
        self.dialect: Dialect = bind.dialect
        url = (bind if isinstance(bind, Engine) else bind.engine).url
        self.sqlite = self.dialect.name == "sqlite"
        self.sqlite_memory = self.sqlite and is_memory_sqlite(url.database)
        self.lazy_begin = isinstance(bind, Engine) and is_configured(bind)
        self._serial: threading.RLock | None = None
        self._local = threading.local()

    @property
    def name(self) -> str:
        """``"sqlite"``, ``"postgresql"``, ``"mysql"`` or ``"mariadb"`` (MariaDB is told
        apart once a first connection was made)."""
        return dialect_name(self.dialect)

    # -- serializing units on one shared connection ----------------------------------------

    def serialize(self) -> None:
        """Let one unit of work at a time use the database (one shared ``:memory:``
        connection: its transactions must not interleave)."""
        if self._serial is None:
            self._serial = threading.RLock()

    def acquire(self) -> bool:
        """Take the serial lock if units are serialized; return whether it was taken."""
        if self._serial is None:
            return False
        self._serial.acquire()
        return True

    def release(self) -> None:
        """Release the serial lock taken by :meth:`acquire`."""
        if self._serial is not None:
            self._serial.release()

    def serialized(self) -> contextlib.AbstractContextManager[Any]:
        """Hold the serial lock (if any) for the ``with`` block."""
        return self._serial if self._serial is not None else contextlib.nullcontext()

    # -- connections -------------------------------------------------------------------------

    def connect(self) -> Connection:
        """A new connection of the engine (the host connection's engine if bound to one)."""
        if self.engine is not None:
            return self.engine.connect()
        assert self.host_connection is not None
        return self.host_connection.engine.connect()

    @contextlib.contextmanager
    def admin(self) -> Iterator[Connection]:
        """A connection in a transaction: committed if crmcore owns it, else a SAVEPOINT."""
        if self.host_connection is not None:
            with self.host_connection.begin_nested():
                yield self.host_connection
            return
        assert self.engine is not None
        with self.serialized():
            try:
                conn = self.engine.connect()
            except sa_exc.SQLAlchemyError as exc:
                raise_translated(exc)
            with conn, conn.begin():
                yield conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection in one consistent read transaction (the host's, if bound to one):
        ``REPEATABLE READ`` on PostgreSQL and MariaDB, a deferred transaction on SQLite."""
        if self.host_connection is not None:
            yield self.host_connection
            return
        assert self.engine is not None
        with self.serialized():
            try:
                conn = self.engine.connect()
            except sa_exc.SQLAlchemyError as exc:
                raise_translated(exc)
            with conn:
                if self.name != "sqlite":
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with translated("customer"), conn.begin():
                    yield conn

    @contextlib.contextmanager
    def single_read(self, what: str = "customer") -> Iterator[Connection]:
        """A connection for a read of one statement (the host's, if bound to one).

        One statement reads one consistent state by itself, so no transaction is opened
        around it: on PostgreSQL the connection is in autocommit (no ``BEGIN`` and
        ``ROLLBACK`` round trips), on SQLite no ``BEGIN`` is sent. MariaDB/MySQL read in
        a transaction as :meth:`reading` does (switching their autocommit is a round trip
        each way).
        """
        if self.host_connection is not None or self.name not in ("postgresql", "sqlite"):
            with self.reading() as conn, translated(what):
                yield conn
            return
        assert self.engine is not None
        with self.serialized():
            try:
                conn = self.engine.connect()
            except sa_exc.SQLAlchemyError as exc:
                raise translate(exc) from exc
            with conn:
                if self.name == "sqlite":
                    conn.execution_options(**{LAZY_BEGIN: True})
                else:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                with translated(what):
                    yield conn

    # -- the unit of work in progress on this thread -----------------------------------------

    def push(self, context: ActiveUnit) -> None:
        """Record that the unit of work of ``context`` is in progress on this thread."""
        units = getattr(self._local, "units", None)
        if units is None:
            units = self._local.units = []
        units.append(context)

    def pop(self, context: ActiveUnit) -> None:
        """Record that the unit of work of ``context`` has ended."""
        units = getattr(self._local, "units", [])
        if context in units:
            units.remove(context)

    def current(self) -> ActiveUnit | None:
        """The context of this thread's innermost unit of work in progress, if any."""
        units: list[ActiveUnit] = getattr(self._local, "units", [])
        return units[-1] if units else None
