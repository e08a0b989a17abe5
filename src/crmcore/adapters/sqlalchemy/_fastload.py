"""Loading column-wise data into one table at the driver's bulk speed, per dialect.

Every bulk write of the SQL store ends here: an Arrow table whose columns are already the
stored values (text, integers, booleans, naive UTC ``timestamp[us]``, ``date32``) goes to
the database on the unit of work's own connection, inside its transaction:

* PostgreSQL: ``COPY ... FROM STDIN (FORMAT csv)`` through psycopg 3's copy protocol,
  the CSV written by Arrow's C++ writer.
* SQLite: one ``executemany`` of plain tuples on the raw ``sqlite3`` cursor (no parameter
  dicts, no per-value bind processors: the values are converted column-wise first).
* MariaDB/MySQL: ``LOAD DATA LOCAL INFILE`` of the same CSV when both the client
  connection (pymysql's ``local_infile``) and the server (``@@local_infile``) allow it,
  else an ``executemany`` of tuples into a plain ``INSERT ... VALUES``, which pymysql sends
  as multi-row statements.

The caller is the one who knows the data is valid; nothing here checks values. Loading
never commits: a failure leaves the unit's transaction to roll back as a whole.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import Connection, Table

__all__ = ["LOAD_DATA", "can_load_data", "load_columns", "qualified_name"]

LOAD_DATA: Final = "load_data"
"""Connection info key memoising whether ``LOAD DATA LOCAL INFILE`` works on a connection."""

_CLIENT_LOCAL_FILES: Final = 1 << 7
"""The MySQL protocol's CLIENT_LOCAL_FILES capability (``pymysql.constants.CLIENT``)."""

_CHUNK: Final = 32_768
"""Rows converted to CSV text or Python tuples at a time: bounds the memory a batch's text
form takes (a quarter-million Python tuples of a dozen values each is ~130 MB)."""


def qualified_name(conn: Connection, table: Table) -> str:
    """``table``'s quoted name as ``conn`` sees it (its ``schema_translate_map`` applied)."""
    schema = table.schema
    translate = conn.get_execution_options().get("schema_translate_map")
    if translate and schema in translate:
        schema = translate[schema]
    prep = conn.dialect.identifier_preparer
    name = prep.quote(table.name)
    return f"{prep.quote_schema(schema)}.{name}" if schema else name


def _write_csv(data: Any, null: str) -> bytes:
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    pacsv.write_csv(
        data,
        buffer,
        pacsv.WriteOptions(include_header=False, null_string=null, batch_size=_CHUNK),
    )
    return buffer.getvalue()


def can_load_data(conn: Connection) -> bool:
    """Whether ``LOAD DATA LOCAL INFILE`` is allowed on this MariaDB/MySQL connection: the
    client flag set (``?local_infile=1`` in the URL, or the engine's ``connect_args``) and
    the server's ``local_infile`` on. Asked once per pooled connection."""
    info = conn.connection.info
    if LOAD_DATA not in info:
        driver = conn.connection.driver_connection
        # pymysql keeps the capability flags it connected with; other drivers: not used.
        allowed = bool(getattr(driver, "client_flag", 0) & _CLIENT_LOCAL_FILES)
        if allowed:
            allowed = bool(conn.exec_driver_sql("SELECT @@local_infile").scalar())
        info[LOAD_DATA] = allowed
    return bool(info[LOAD_DATA])


def load_columns(
    conn: Connection, dialect: str, target: str, data: Any, *, load_data: bool | None = None
) -> None:
    """Append the rows of the Arrow table ``data`` to the table named ``target`` (quoted,
    see :func:`qualified_name`) whose columns are ``data``'s column names.

    Args:
        conn: the unit of work's connection, in its transaction.
        dialect: ``"postgresql"``, ``"sqlite"``, ``"mysql"`` or ``"mariadb"``.
        target: the quoted table name.
        data: a ``pyarrow.Table`` of stored values (see the module docstring).
        load_data: MariaDB/MySQL only: force (True) or forbid (False) ``LOAD DATA``;
            ``None`` uses it when :func:`can_load_data`.
    """
    if data.num_rows == 0:
        return
    prep = conn.dialect.identifier_preparer
    names = ", ".join(prep.quote(n) for n in data.column_names)
    if dialect == "postgresql":
        _copy_postgres(conn, target, names, data)
    elif dialect == "sqlite":
        marks = ", ".join("?" * data.num_columns)
        sql = f"INSERT INTO {target} ({names}) VALUES ({marks})"  # noqa: S608 - identifiers
        _executemany(conn, sql, data, _sqlite_values)
    else:
        if load_data is None:
            load_data = can_load_data(conn)
        if load_data:
            _load_data(conn, target, names, _mysql_values(data))
        else:
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            marks = ", ".join([mark] * data.num_columns)
            sql = f"INSERT INTO {target} ({names}) VALUES ({marks})"  # noqa: S608 - identifiers
            _executemany(conn, sql, data, lambda part: _mysql_values(part).columns)


def _copy_postgres(conn: Connection, target: str, names: str, data: Any) -> None:
    # CSV: strings are quoted by Arrow ('' is an empty string), an unquoted empty field
    # is NULL, COPY's csv default.
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT csv)") as copy:
            for offset in range(0, data.num_rows, _CHUNK):
                copy.write(_write_csv(data.slice(offset, _CHUNK), ""))
    finally:
        cursor.close()


def _load_data(conn: Connection, target: str, names: str, data: Any) -> None:
    # The unquoted word NULL reads as NULL (a quoted "NULL" stays text); ESCAPED BY ''
    # keeps backslashes literal, and Arrow doubles quotes inside strings, which the server
    # reads back as one.
    handle, path = tempfile.mkstemp(prefix="crmcore-load-", suffix=".csv")
    try:
        with os.fdopen(handle, "wb") as out:
            for offset in range(0, data.num_rows, _CHUNK):
                out.write(_write_csv(data.slice(offset, _CHUNK), "NULL"))
        conn.exec_driver_sql(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {target} CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
            f"LINES TERMINATED BY '\\n' ({names})",
            (path,),
        )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _sqlite_values(data: Any) -> list[Any]:
    """The columns as SQLite stores them through SQLAlchemy: instants and dates as text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: list[Any] = []
    for column in data.columns:
        kind = column.type
        if pa.types.is_timestamp(kind):
            # SQLAlchemy's SQLite DATETIME text, always with six fractional digits (Arrow's
            # %S of a microsecond timestamp carries them).
            column = pc.strftime(column.cast(pa.timestamp("us")), format="%Y-%m-%d %H:%M:%S")
        elif pa.types.is_date(kind):
            column = pc.strftime(column, format="%Y-%m-%d")
        out.append(column)
    return out


def _mysql_values(data: Any) -> Any:
    """Booleans as 0/1 (``TINYINT``/``BOOL`` reject ``true`` in ``LOAD DATA``)."""
    import pyarrow as pa

    columns = [c.cast(pa.int8()) if pa.types.is_boolean(c.type) else c for c in data.columns]
    return pa.table(columns, names=data.column_names)


def _executemany(
    conn: Connection, sql: str, data: Any, values: Callable[[Any], Sequence[Any]]
) -> None:
    """``sql`` on the raw cursor with the rows of ``data``, ``_CHUNK`` rows of tuples at a
    time (``values`` turns a slice into its stored columns)."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for offset in range(0, data.num_rows, _CHUNK):
            columns = values(data.slice(offset, _CHUNK))
            cursor.executemany(sql, list(zip(*(c.to_pylist() for c in columns), strict=True)))
    finally:
        cursor.close()
