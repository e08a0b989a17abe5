"""Bulk INSERT straight on the driver: compiled once, bind processors applied column-wise.

``Connection.execute(insert, rows)`` compiles (cached) and then, for every row, builds a
parameter dict and runs each column's bind processor one value at a time, which costs more
than the driver's own work for large batches. A :class:`BulkInsert` does the same work once
per column: it compiles the statement once per dialect, takes each column's bind processor
(the same ones SQLAlchemy would use: ``UtcDateTime``, the ``RECORD_ID`` variants, SQLite's
``DATETIME`` text) and sends the processed rows with ``exec_driver_sql`` (one
``cursor.executemany``, exactly what ``execute`` ends with for an INSERT without RETURNING).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Insert

from crmcore.errors import CrmError

__all__ = ["BulkInsert"]


class BulkInsert:
    """One INSERT statement compiled for ``columns`` on ``dialect``, run as an executemany.

    Args:
        stmt: the INSERT (with its dialect's ON CONFLICT / ON DUPLICATE KEY clause).
        dialect: the dialect of the connections it will run on.
        columns: the order of the value columns passed to :meth:`execute`.
    """

    def __init__(self, stmt: Insert, dialect: Dialect, columns: Sequence[str]) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("post-compile parameters are not supported")
        self.sql: str = compiled.string
        self.columns = tuple(columns)
        index = {name: i for i, name in enumerate(self.columns)}
        if compiled.positional:
            assert compiled.positiontup is not None
            names = list(compiled.positiontup)
        else:
            names = list(compiled.binds)
        if sorted(names) != sorted(self.columns):
            raise ValueError(f"the statement binds {names}, not {list(self.columns)}")
        self._positional = bool(compiled.positional)
        self._order = [index[name] for name in names]
        escaped = compiled.escaped_bind_names
        self._keys = tuple(escaped.get(name, name) for name in names)
        processors: list[tuple[int, Callable[[Any], Any]]] = []
        for name in names:
            # What SQLAlchemy's private _cached_bind_processor returns, through public API
            # (this runs once per compiled statement, so its memo would not pay off).
            proc = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                processors.append((index[name], proc))
        self._processors = processors

    def params(self, values: Sequence[Sequence[Any]]) -> list[Any]:
        """The driver parameters of the rows whose column lists (in ``columns`` order) are
        ``values``: tuples for positional paramstyles, dicts for named ones."""
        cols: list[Any] = list(values)
        try:
            for i, proc in self._processors:
                cols[i] = list(map(proc, cols[i]))
        except CrmError:
            raise
        except Exception as error:  # as SQLAlchemy reports a failing bind processor
            raise sa_exc.StatementError(str(error), self.sql, None, error) from error
        ordered = [cols[i] for i in self._order]
        if self._positional:
            return list(zip(*ordered, strict=True))
        keys = self._keys
        return [dict(zip(keys, row, strict=True)) for row in zip(*ordered, strict=True)]

    def execute(self, conn: Connection, values: Sequence[Sequence[Any]]) -> int:
        """Insert the rows (column lists in ``columns`` order); return the driver's rowcount."""
        params = self.params(values)
        if not params:
            return 0
        result = conn.exec_driver_sql(self.sql, params if len(params) > 1 else params[0])
        return int(result.rowcount)
