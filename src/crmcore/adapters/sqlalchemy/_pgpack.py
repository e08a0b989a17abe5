"""PostgreSQL: a whole result packed into ``bytea`` by the server, read as numpy columns.

A snapshot of a million customers fetched with ``cursor.fetchall()`` costs a Python tuple per
row and a Python object per value, and binary ``COPY TO STDOUT`` costs a Python call per row
(one ``CopyData`` message each); either was most of a PostgreSQL snapshot's time. Here the
server turns each row into fixed-width bytes (``int8send`` of every ``bigint`` column, the CRM
number blank-padded to 32 bytes), ``string_agg`` concatenates them, and the client reads the
one value with ``np.frombuffer`` and a structured big-endian dtype: no per-row Python work.

The result is checked (total length = row count x row width; the padded number decodes back
to the number), and rows are put in CRM-number order by the client when the server did not
deliver them so. A result too large for one ``bytea`` (PostgreSQL caps a value at 1 GB) is
fetched in several hash-partitioned groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    LargeBinary,
    Select,
    Table,
    cast,
    func,
    literal,
    select,
    text,
)
from sqlalchemy import exc as sa_exc

__all__ = ["NUMBER_WIDTH", "decode_numbers", "fetch_packed", "packed_int", "packed_number"]

NUMBER_WIDTH: Final = 32
"""Bytes of a packed CRM number (the column is ``String(32)``; blank-padded)."""

_GROUP_BYTES: Final = 128 * 2**20
"""Largest packed value fetched at once (PostgreSQL's limit for one value is 1 GB)."""


def packed_int(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """8 big-endian bytes of a non-NULL integer expression."""
    return func.int8send(cast(column, BigInteger))


def packed_number(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A CRM number as 32 bytes: UTF-8, blank-padded (canonical numbers are ASCII, <= 32)."""
    return func.convert_to(func.rpad(column, NUMBER_WIDTH), literal("UTF8"))


def fetch_packed(
    conn: Connection,
    parts: Sequence[ColumnElement[Any]],
    query: Select[Any],
    widths: Sequence[tuple[str, str]],
    partition: ColumnElement[Any],
    rows_of: Table,
) -> dict[str, np.ndarray[Any, Any]] | None:
    """Rows of ``query`` packed as ``parts`` (each a ``packed_*`` expression) into columns.

    Args:
        conn: a PostgreSQL connection (psycopg 3), inside the caller's read transaction.
        parts: the packed expressions, in the order of ``widths``.
        query: a ``SELECT`` giving the rows (FROM/WHERE/ORDER BY); its columns are replaced.
        widths: per part, a name and dtype (``">i8"`` or ``"S32"``).
        partition: a text expression to hash when the result must be split in groups.
        rows_of: the table whose row count bounds the result's (for the group count).

    Returns:
        name -> column (``int64`` for integers, ``S32`` bytes for numbers), or ``None`` when
        the packed result does not have the expected shape (the caller then fetches rows).
    """
    if conn.get_execution_options().get("schema_translate_map"):
        return None  # the raw driver below would not see the host's schema translation
    row = np.dtype([(name, dtype) for name, dtype in widths])
    groups = max(1, -(-_estimated_rows(conn, rows_of) * row.itemsize // _GROUP_BYTES))
    packed = parts[0]
    for part in parts[1:]:
        packed = packed.op("||")(part)
    # hashtext() is int4: widened before masking, so no value overflows (abs(INT_MIN) would).
    bucket = cast(func.hashtext(partition), BigInteger).op("&")(0x7FFFFFFF) % groups
    inner = query.with_only_columns(packed.label("r"), bucket.label("g")).subquery("packed_rows")
    outer = select(func.string_agg(inner.c.r, literal(b"", LargeBinary)), func.count()).select_from(
        inner
    )
    if groups > 1:
        outer = outer.group_by(inner.c.g)
    results = _fetch_binary(conn, outer)
    chunks: list[bytes] = []
    count = 0
    for data, rows in results:
        if data is None:
            if rows:
                return None
            continue
        chunks.append(bytes(data))
        count += int(rows)
    body = b"".join(chunks)
    if len(body) != count * row.itemsize:
        return None
    records = np.frombuffer(body, dtype=row)
    return {
        name: records[name].astype(np.int64) if dtype.startswith(">i") else records[name].copy()
        for name, dtype in widths
    }


def _fetch_binary(conn: Connection, statement: Select[Any]) -> list[Any]:
    """Rows of ``statement`` in psycopg's binary format (``bytea`` as bytes, not hex text).

    The driver's own errors are wrapped as SQLAlchemy wraps them, so the caller's error
    translation (``crmcore.errors``) applies as to every other query.
    """
    compiled = statement.compile(dialect=conn.dialect)
    sql, params = str(compiled), compiled.params
    raw: Any = conn.connection.dbapi_connection
    dbapi: Any = conn.dialect.loaded_dbapi
    try:
        with raw.cursor(binary=True) as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    except dbapi.Error as exc:
        raise sa_exc.DBAPIError.instance(sql, params, exc, dbapi.Error) from exc


def _estimated_rows(conn: Connection, table: Table) -> int:
    """How many rows ``table`` holds, estimated as the planner does.

    ``reltuples`` (from the last ANALYZE/VACUUM) is scaled by how the table's size changed
    since, so a bulk load after the last ANALYZE still counts; never analysed: ``count(*)``.
    Only sizes the groups (128 MB each against PostgreSQL's 1 GB per value).
    """
    name = conn.dialect.identifier_preparer.format_table(table)
    row = conn.execute(
        text(
            "SELECT reltuples, relpages, pg_relation_size(oid) / "
            "current_setting('block_size')::int FROM pg_class WHERE oid = to_regclass(:name)"
        ),
        {"name": name},
    ).first()
    if row is None or row[0] is None or float(row[0]) < 0 or not row[1]:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    tuples, pages, now = float(row[0]), int(row[1]), int(row[2])
    return int(tuples / pages * max(pages, now)) + 1


def decode_numbers(padded: np.ndarray[Any, Any]) -> list[str]:
    """CRM numbers from their packed bytes (canonical numbers hold no blanks)."""
    return [value.decode("utf-8").rstrip(" ") for value in padded.tolist()]
