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
    column,
    func,
    literal,
    select,
    text,
)

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
    row = np.dtype([(name, dtype) for name, dtype in widths])
    groups = max(1, -(-_estimated_rows(conn, rows_of) * row.itemsize // _GROUP_BYTES))
    packed = parts[0]
    for part in parts[1:]:
        packed = packed.op("||")(part)
    inner = query.with_only_columns(
        packed.label("r"),
        (func.abs(func.hashtext(partition)) % groups).label("g"),
    ).subquery("packed_rows")
    outer = select(func.string_agg(inner.c.r, literal(b"", LargeBinary)), func.count()).select_from(
        inner
    )
    if groups > 1:
        outer = outer.group_by(inner.c.g)
    compiled = outer.compile(dialect=conn.dialect)
    raw: Any = conn.connection.dbapi_connection  # psycopg: binary results, no hex text
    with raw.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        results = cursor.fetchall()
    chunks: list[bytes] = []
    count = 0
    for data, rows in results:
        if data is None:
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


def _estimated_rows(conn: Connection, table: Table) -> int:
    """The planner's row estimate of ``table`` (exact count if it was never analysed).

    Only sizes the groups: each targets 128 MB against PostgreSQL's 1 GB per value, so an
    estimate that is several times too low is still safe.
    """
    name = conn.dialect.identifier_preparer.format_table(table)
    estimate = conn.execute(
        select(column("reltuples"))
        .select_from(text("pg_class"))
        .where(column("oid") == func.to_regclass(name))
    ).scalar()
    if estimate is None or float(estimate) < 0:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    return int(float(estimate))


def decode_numbers(padded: np.ndarray[Any, Any]) -> list[str]:
    """CRM numbers from their packed bytes (canonical numbers hold no blanks)."""
    return [value.decode("utf-8").rstrip(" ") for value in padded.tolist()]
