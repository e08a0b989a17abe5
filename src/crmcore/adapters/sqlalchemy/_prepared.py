"""Statements of the per-event paths, compiled once and sent straight to the driver.

``Connection.execute(statement)`` walks the statement to compute its cache key on every call
(to find the compiled form in SQLAlchemy's cache) and then processes parameters and result
rows through the execution context. For the handful of fixed statements that recording one
event and refreshing one customer send on every call, that Python work costs more than the
database's: a :class:`Prepared` statement is compiled once per store and run with
``exec_driver_sql``, its parameters processed by the same bind processors SQLAlchemy would
apply (the ``UtcDateTime`` and ``RECORD_ID`` variants, SQLite's ``DATETIME`` text). Its rows
come back as the driver returns them, so such statements select integers and text only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Prepared", "PreparedCache"]


class Prepared:
    """One statement compiled for one dialect, executed with :meth:`execute`.

    Args:
        stmt: a Core statement whose parameters are all named bind parameters (plus
            literals the compiler turns into parameters).
        dialect: the dialect of the connections it will run on.

    Raises:
        ValueError: the statement needs parameters rendered at execution time (an
            expanding ``IN``), which a compiled string cannot hold.
    """

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        # A Core statement (SELECT, INSERT, UPDATE) compiles to an SQLCompiler.
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("post-compile parameters are not supported")
        self.sql: str = compiled.string
        self._compiled = compiled
        self._positional = bool(compiled.positional)
        # Bind parameters by the names they were rendered under (anonymous ones resolved).
        rendered = {name: bind for bind, name in compiled.bind_names.items()}
        if self._positional:
            assert compiled.positiontup is not None
            self._names = list(compiled.positiontup)
        else:
            self._names = list(rendered)
        escaped = compiled.escaped_bind_names
        self._keys = [escaped.get(name, name) for name in self._names]
        processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in rendered.items():
            # The processor SQLAlchemy's execution would apply (see ``_bulk``).
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                processors[name] = proc
        self._processors = processors

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """The driver parameters for ``values`` (by bind name; literals filled in)."""
        params = self._compiled.construct_params(dict(values), escape_names=False)
        assert params is not None  # only None for a compiled DDL statement
        for name, proc in self._processors.items():
            params[name] = proc(params[name])
        if self._positional:
            return tuple(params[name] for name in self._names)
        return {key: params[name] for key, name in zip(self._keys, self._names, strict=True)}

    def execute(
        self, conn: Connection, values: Mapping[str, Any]
    ) -> CursorResult[*tuple[Any, ...]]:
        """Run the statement on ``conn`` with ``values``; rows are the driver's raw values."""
        return conn.exec_driver_sql(
            self.sql, self.parameters(values), execution_options={"preserve_rowcount": True}
        )


class PreparedCache:
    """A store's :class:`Prepared` statements, each built once (thread-safe enough: two
    threads building the same statement at once each get a correct one)."""

    def __init__(self) -> None:
        self._statements: dict[object, Prepared | None] = {}

    def get(
        self, conn: Connection, key: object, build: Callable[[], ClauseElement]
    ) -> Prepared | None:
        """The statement cached under ``key`` (``build()`` compiled on first use), or
        ``None`` where a compiled string cannot be reused: on a connection with a schema
        translate map (SQLAlchemy renders the schema per execution) or a statement with
        post-compile parameters; the caller then runs the Core statement as usual."""
        if conn.get_execution_options().get("schema_translate_map"):
            return None
        cache = self._statements
        if key not in cache:
            try:
                cache[key] = Prepared(build(), conn.dialect)
            except ValueError:
                cache[key] = None
        return cache[key]
