"""``SqlUnitOfWork``: one database transaction (or SAVEPOINT) shared by six repositories."""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from crmcore.adapters.sqlalchemy._aggregates import SqlAggregates
from crmcore.adapters.sqlalchemy._allocator import SqlNumberAllocator
from crmcore.adapters.sqlalchemy._audit import SqlAudit
from crmcore.adapters.sqlalchemy._binding import Binding
from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._customers import SqlCustomers
from crmcore.adapters.sqlalchemy._engine import LAZY_BEGIN, is_configured
from crmcore.adapters.sqlalchemy._errors import raise_translated
from crmcore.adapters.sqlalchemy._history import SqlInteractions, SqlTransactions
from crmcore.adapters.sqlalchemy._segments import SqlSegments
from crmcore.adapters.sqlalchemy._transfer import SqlTransfer
from crmcore.domain import DomainEvent
from crmcore.errors import ConfigurationError

__all__ = ["SqlUnitOfWork"]


class SqlUnitOfWork:
    """A unit of work of :class:`SqlStore`: one database transaction (or SAVEPOINT).

    Reads see the unit's own writes; other units see them only after :meth:`commit`.
    Leaving the ``with`` block without committing rolls back.

    Args:
        binding: the store's binding (where connections come from).
        context: the transaction context the repositories share (opened on entry).
        owner: the store, for ``repr``.
        allocator: the store's allocator (for :attr:`transfer`).
    """

    def __init__(
        self,
        binding: Binding,
        context: TransactionContext,
        owner: object,
        allocator: SqlNumberAllocator,
    ) -> None:
        self._binding = binding
        self._context = context
        self._owner = owner
        self._conn: Connection | None = None
        self._tx: Any = None
        self._state = "new"
        self._serial_held = False
        self.customers = SqlCustomers(context)
        self.interactions = SqlInteractions(context)
        self.transactions = SqlTransactions(context)
        self.aggregates = SqlAggregates(context)
        self.segments = SqlSegments(context)
        self.audit = SqlAudit(context)
        self.transfer = SqlTransfer(context, allocator)

    def __repr__(self) -> str:
        return f"SqlUnitOfWork(store={self._owner!r}, state={self._state!r})"

    def __enter__(self) -> Self:
        if self._state != "new":
            raise ConfigurationError("a unit of work is used once; start a new one")
        binding = self._binding
        self._serial_held = binding.acquire()
        try:
            if binding.host_connection is not None:
                self._conn = binding.host_connection
                if binding.sqlite and not is_configured(binding.host_connection.engine):
                    raise ConfigurationError(
                        "a SQLite connection shared with crmcore must come from an engine "
                        "passed through configure_sqlite_engine() (SAVEPOINTs do not work in "
                        "the sqlite3 module's legacy transaction mode)"
                    )
            else:
                assert binding.engine is not None
                self._conn = binding.engine.connect()
                if binding.lazy_begin:
                    self._conn.execution_options(**{LAZY_BEGIN: True})
            self._begin()
        except sa_exc.SQLAlchemyError as exc:
            self._release()
            raise_translated(exc)
        except BaseException:
            self._release()
            raise
        self._state = "active"
        self._context.open(self._conn)
        binding.push(self._context)
        return self

    def _begin(self) -> None:
        assert self._conn is not None
        self._context.transaction_ended()
        if self._binding.host_connection is not None:
            self._tx = self._conn.begin_nested()
        else:
            self._tx = self._conn.begin()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._state == "active":
                self._end(commit=False, restart=False)
        finally:
            self._state = "done"
            self._context.close()
            self._binding.pop(self._context)
            self._release()

    def _release(self) -> None:
        if self._conn is not None and self._binding.host_connection is None:
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                self._conn.close()
        self._conn = None
        if self._serial_held:
            self._serial_held = False
            self._binding.release()

    def _end(self, *, commit: bool, restart: bool) -> None:
        tx = self._tx
        self._tx = None
        try:
            if tx is not None and tx.is_active:
                if commit:
                    tx.commit()
                else:
                    tx.rollback()
        except sa_exc.SQLAlchemyError as exc:
            raise_translated(exc)
        finally:
            self._context.transaction_ended()
            if restart and self._conn is not None:
                self._begin()

    @property
    def context(self) -> TransactionContext:
        """The transaction context its repositories share (for adapter-level maintenance
        such as key rotation)."""
        return self._context

    def commit(self) -> None:
        """Make every write of this unit durable (release the SAVEPOINT on a host connection).

        Raises:
            ConcurrencyError: the database detected a conflict (nothing is written).
        """
        self._context.read()
        self._end(commit=True, restart=True)

    def rollback(self) -> None:
        """Discard every write of this unit."""
        if self._state == "active":
            self._end(commit=False, restart=True)
        self._context.discard_events()

    def add_event(self, event: DomainEvent) -> None:
        """Queue a domain event; it is published only if the unit commits."""
        self._context.add_event(event)

    def collect_events(self) -> list[DomainEvent]:
        """Return and clear the queued events."""
        return self._context.collect_events()
