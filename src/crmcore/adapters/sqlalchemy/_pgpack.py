"""PostgreSQL: a whole result packed into ``bytea`` by the server, read as numpy columns.

A snapshot of a million customers fetched with ``cursor.fetchall()`` costs a Python tuple per
row and a Python object per value, and binary ``COPY TO STDOUT`` costs a Python call per row
(one ``CopyData`` message each); either was most of a PostgreSQL snapshot's time. Here the
server turns each row into fixed-width bytes (the CRM number's bytes, then ``int8send`` of
every ``bigint`` column), ``string_agg`` concatenates them, and the client reads the one
value with ``np.frombuffer`` and a structured big-endian dtype: no per-row Python work.

The result is checked (total length = row count x row width, every row of one width), and
rows are put in CRM-number order by the client when the server did not deliver them so. A
result too large for one ``bytea`` (PostgreSQL caps a value at 1 GB) is fetched in several
hash-partitioned groups.
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
"""Bytes a CRM number is blank-padded to when a result holds numbers of several lengths
(the column is ``String(32)``)."""

_GROUP_BYTES: Final = 128 * 2**20
"""Largest packed value fetched at once (PostgreSQL's limit for one value is 1 GB)."""


def packed_int(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """8 big-endian bytes of a non-NULL integer expression."""
    return func.int8send(cast(column, BigInteger))


def packed_number(column: ColumnElement[Any], pad: int | None = None) -> ColumnElement[Any]:
    """A CRM number's UTF-8 bytes (canonical numbers are ASCII), blank-padded to ``pad``."""
    text_value = column if pad is None else func.rpad(column, pad)
    return func.convert_to(text_value, literal("UTF8"))


def fetch_packed(
    conn: Connection,
    number: ColumnElement[Any],
    ints: Sequence[ColumnElement[Any]],
    query: Select[Any],
    partition: ColumnElement[Any],
    rows_of: Table,
    pad: bool = False,
) -> dict[str, np.ndarray[Any, Any]] | None:
    """Rows of ``query`` as columns: each row packed as a CRM number and integers.

    The numbers of one store share one length (one :class:`CrmNumberScheme`), so they travel
    unpadded and the row width is measured by the server (``min``/``max`` of the packed
    length, which must agree); should they differ, the fetch is repeated with every number
    blank-padded to 32 bytes (the column's width), which keeps byte order = ``COLLATE "C"``.

    Args:
        conn: a PostgreSQL connection (psycopg 3), inside the caller's read transaction.
        number: the CRM number (text) expression, packed first.
        ints: non-NULL integer expressions, packed after it as ``c0``, ``c1``, ...
        query: a ``SELECT`` giving the rows (FROM/WHERE/ORDER BY); its columns are replaced.
        partition: a text expression to hash when the result must be split in groups.
        rows_of: the table whose row count bounds the result's (for the group count).
        pad: pad the numbers from the start (the caller saw numbers of several lengths).

    Returns:
        ``"number"`` -> ``S<width>`` bytes (``S32`` when padded), ``"c<i>"`` -> ``int64``;
        or ``None`` when the packed result does not have the expected shape (the caller then
        fetches rows).
    """
    if conn.get_execution_options().get("schema_translate_map"):
        return None  # the raw driver below would not see the host's schema translation
    widest = NUMBER_WIDTH + 8 * len(ints)
    groups = max(1, -(-_estimated_rows(conn, rows_of) * widest // _GROUP_BYTES))
    fetched = _fetch_rows(
        conn, number, ints, query, partition, groups, NUMBER_WIDTH if pad else None
    )
    if fetched == "uneven" and not pad:
        fetched = _fetch_rows(conn, number, ints, query, partition, groups, NUMBER_WIDTH)
    if not isinstance(fetched, tuple):
        return None
    body, width = fetched
    tail = [(f"c{i}", ">i8") for i in range(len(ints))]
    row = np.dtype([("number", f"S{width - 8 * len(ints)}"), *tail])
    records = np.frombuffer(body, dtype=row)
    out = {"number": records["number"].copy()}
    out.update({name: records[name].astype(np.int64) for name, _ in tail})
    return out


def _fetch_rows(
    conn: Connection,
    number: ColumnElement[Any],
    ints: Sequence[ColumnElement[Any]],
    query: Select[Any],
    partition: ColumnElement[Any],
    groups: int,
    pad: int | None,
) -> tuple[bytes, int] | str | None:
    """The packed rows and their width; ``"uneven"`` if rows differ in width (numbers of
    several lengths, unpadded); ``None`` if the result is malformed."""
    packed = packed_number(number, pad)
    for part in ints:
        packed = packed.op("||")(packed_int(part))
    # hashtext() is int4: widened before masking, so no value overflows (abs(INT_MIN) would).
    bucket = cast(func.hashtext(partition), BigInteger).op("&")(0x7FFFFFFF) % groups
    inner = query.with_only_columns(packed.label("r"), bucket.label("g")).subquery("packed_rows")
    size = func.octet_length(inner.c.r)
    outer = select(
        func.string_agg(inner.c.r, literal(b"", LargeBinary)),
        func.count(),
        func.min(size),
        func.max(size),
    ).select_from(inner)
    if groups > 1:
        outer = outer.group_by(inner.c.g)
    chunks: list[bytes] = []
    count = 0
    widths: set[int] = set()
    for data, rows, narrow, wide in _fetch_binary(conn, outer):
        if data is None:
            if rows:
                return None
            continue
        if narrow != wide:
            return "uneven"
        chunks.append(data if isinstance(data, bytes) else bytes(data))
        count += int(rows)
        widths.add(int(narrow))
    if len(widths) > 1:
        return "uneven"
    width = widths.pop() if widths else 8 * len(ints) + 1
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one group: no copy
    if width <= 8 * len(ints) or len(body) != count * width:
        return None
    return body, width


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
