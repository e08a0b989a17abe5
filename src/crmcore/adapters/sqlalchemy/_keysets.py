"""Which of many text keys a table holds, asked set-wise: each key set is one parameter.

The import asks about a whole batch of keys at once (up to a few hundred thousand CRM
numbers or import keys). Rendered as ``IN (...)`` lists that costs one statement per few
hundred keys and SQLAlchemy's processing of every value. Here each dialect receives a large
slice of the keys as a single bound value the database unpacks itself:

- PostgreSQL: a text array, ``column = ANY(:keys)``;
- SQLite: one JSON array text, ``column IN (SELECT value FROM json_each(:keys))``;
- MariaDB/MySQL: one JSON array text joined as ``JSON_TABLE(:keys, ...)``, first in the join
  order (``STRAIGHT_JOIN``): MariaDB answers ``IN (SELECT ... FROM JSON_TABLE(...))`` by
  materialising and de-duplicating the keys first, three times slower than its ``IN``
  lists, while the join probes the column's index once per key (measured in
  ``docs/benchmarks.md``, "Batch look-ups").
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any, Final

from sqlalchemy import Select, String, any_, bindparam, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["KEY_SET", "keyed"]

KEY_SET: Final = 65_536
"""Keys per statement: bounds the size of one parameter (MariaDB also slices by bytes, see
:data:`_MYSQL_BYTES`)."""

_MYSQL_BYTES: Final = 4 * 1024 * 1024
"""Largest JSON text sent to MariaDB in one statement (a quarter of its default 16 MiB
packet; 65,536 keys of the longest import key, 200 characters, would not fit)."""


def keyed(
    dialect: str, query: Select[Any], column: Any, keys: Collection[str]
) -> Iterator[Select[Any]]:
    """Statements that together select ``query``'s rows whose text ``column`` is in ``keys``.

    ``query`` selects from ``column``'s table (and filters it as it likes); each statement
    carries up to :data:`KEY_SET` keys as one bound parameter, so a batch of keys costs a
    statement or a few, whatever its size. Duplicate keys are asked once.
    """
    wanted = list(set(keys))
    if not wanted:
        return
    if dialect == "postgresql":
        for start in range(0, len(wanted), KEY_SET):
            part = wanted[start : start + KEY_SET]
            yield query.where(column == any_(bindparam(None, part, type_=ARRAY(String()))))
        return
    if dialect == "sqlite":
        for start in range(0, len(wanted), KEY_SET):
            document = json.dumps(wanted[start : start + KEY_SET], ensure_ascii=False)
            values = func.json_each(bindparam(None, document, type_=String()))
            yield query.where(column.in_(select(values.table_valued("value").c.value)))
        return
    for part in _mysql_slices(column, wanted):
        yield _json_table(query, column, part)


def _mysql_slices(column: Any, wanted: list[str]) -> Iterator[list[str]]:
    # JSON_TABLE's column is declared with the stored column's length, so a longer key would
    # be cut to that length (and could then match a stored prefix): it cannot be stored, so
    # it is dropped here instead.
    length = _length(column)
    part: list[str] = []
    size = 0
    for key in wanted:
        if len(key) > length:
            continue
        # In JSON written without ASCII escapes a character takes at most six bytes (a
        # control character's escape): a bound that is cheap to keep and never short.
        cost = 6 * len(key) + 4
        if part and (len(part) >= KEY_SET or size + cost > _MYSQL_BYTES):
            yield part
            part, size = [], 0
        part.append(key)
        size += cost
    if part:
        yield part


def _length(column: Any) -> int:
    length = getattr(column.type, "length", None)
    return length if isinstance(length, int) else 255


def _json_table(query: Select[Any], column: Any, part: list[str]) -> Select[Any]:
    # The keys compare in the tables' own charset and binary collation (see _tables.py), so
    # they match exactly as stored values do.
    unpack = text(
        f"JSON_TABLE(:keys, '$[*]' COLUMNS (k VARCHAR({_length(column)}) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$')) AS wanted_keys"
    ).bindparams(bindparam("keys", json.dumps(part, ensure_ascii=False), type_=String()))
    return (
        query.prefix_with("STRAIGHT_JOIN")
        .select_from(unpack, column.table)
        .where(column == literal_column("wanted_keys.k"))
    )
