"""``SqlNumberAllocator``: CRM number sequences from a counter row."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy import Connection, case, insert, select, update
from sqlalchemy import exc as sa_exc

from crmcore.adapters.sqlalchemy._binding import Binding
from crmcore.adapters.sqlalchemy._engine import LAZY_BEGIN
from crmcore.adapters.sqlalchemy._errors import raise_translated
from crmcore.adapters.sqlalchemy._settings import COUNTER_NAME
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.errors import ValidationError

__all__ = ["SqlNumberAllocator"]


class SqlNumberAllocator:
    """CRM number sequences from a counter row, advanced in its own short transaction.

    PostgreSQL and MariaDB: ``UPDATE ... SET value = value + n`` on a connection of its own,
    committed at once, so the row lock is held for one round trip and a unit of work that
    rolls back leaves a gap instead of returning numbers. SQLite: the same, under SQLite's
    write lock; when the calling thread's unit of work already holds that lock (it has
    written), or the store is bound to a host's connection, the counter is advanced inside
    that transaction instead (a second connection would wait for the lock forever), and the
    allocator remembers the highest sequence it handed out, so this store object never hands
    one out twice even if that transaction rolls back.

    Args:
        binding: the store's binding.
        tables: the store's tables.
    """

    def __init__(self, binding: Binding, tables: CrmTables) -> None:
        self._binding = binding
        self._counter = tables.number_counter
        self._lock = threading.Lock()
        self._high = 0

    @property
    def handed_out(self) -> int:
        """The highest sequence this allocator object has handed out (0 if none)."""
        with self._lock:
            return self._high

    def allocate(self) -> int:
        """Return the next unused sequence (1-based).

        Raises:
            ConfigurationError: the database is unreachable or has no crmcore schema.
            ConcurrencyError: the database gave up waiting for the counter's lock.
        """
        return self.allocate_many(1)[0]

    def allocate_many(self, count: int) -> Sequence[int]:
        """Return ``count`` unused, consecutive sequences.

        Raises:
            ValidationError: ``count`` is not a non-negative integer.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError("count", count, "must be a non-negative integer")
        if count == 0:
            return []
        try:
            last = self._advance(count)
        except sa_exc.SQLAlchemyError as exc:
            raise_translated(exc, "number counter")
        with self._lock:
            self._high = max(self._high, last)
        return list(range(last - count + 1, last + 1))

    def _bump(self, conn: Connection, count: int) -> int:
        c = self._counter
        with self._lock:
            floor = self._high
        new = case((c.c.value > floor, c.c.value), else_=floor) + count
        result = conn.execute(update(c).where(c.c.name == COUNTER_NAME).values(value=new))
        if result.rowcount == 0:
            conn.execute(insert(c).values(name=COUNTER_NAME, value=floor + count))
        value = conn.execute(select(c.c.value).where(c.c.name == COUNTER_NAME)).scalar_one()
        return int(value)

    def _advance(self, count: int) -> int:
        binding = self._binding
        if binding.sqlite:
            unit = binding.current()
            if binding.host_connection is not None:
                return self._bump(binding.host_connection, count)
            unit_conn = None if unit is None else unit.connection
            if unit is not None and unit_conn is not None:
                if unit.is_writing or not binding.lazy_begin:
                    return self._bump(unit_conn, count)
                # The unit has not taken the write lock: a short transaction of our own on
                # its connection (it is in autocommit until its first write).
                unit_conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    last = self._bump(unit_conn, count)
                except BaseException:
                    unit_conn.exec_driver_sql("ROLLBACK")
                    raise
                unit_conn.exec_driver_sql("COMMIT")
                return last
        with binding.serialized(), binding.connect() as conn:
            if binding.lazy_begin:
                conn.execution_options(**{LAZY_BEGIN: True})
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                last = self._bump(conn, count)
                conn.commit()
                return last
            with conn.begin():
                return self._bump(conn, count)
