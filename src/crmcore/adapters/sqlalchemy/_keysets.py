"""Which of many text keys a table holds, asked set-wise: each key set is one parameter.

The import asks about a whole batch of keys at once (up to a few hundred thousand CRM
numbers or import keys). Rendered as ``IN (...)`` lists that costs one statement per few
hundred keys and SQLAlchemy's processing of every value. Here each dialect receives a large
slice of the keys as a single bound value the database unpacks itself:

- PostgreSQL: a text array, ``column = ANY(:keys)``;
- SQLite: one JSON array text, ``column IN (SELECT value FROM json_each(:keys))``;
- MariaDB/MySQL: one JSON array text, ``column IN (SELECT k FROM JSON_TABLE(:keys, ...))``.

The database then probes the column's index once per key, as it does for an ``IN`` list.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any, Final

from sqlalchemy import ColumnElement, String, any_, bindparam, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["KEY_SET", "key_sets"]

KEY_SET: Final = 65_536
"""Keys per statement: bounds the size of one parameter (a MariaDB packet holds 16 MiB by
default; 65,536 keys of the longest import key, 200 characters, could exceed it, so MariaDB
slices by bytes as well, see :data:`_MYSQL_BYTES`)."""

_MYSQL_BYTES: Final = 4 * 1024 * 1024
"""Largest JSON text sent to MariaDB in one statement (a quarter of the default packet)."""


def key_sets(dialect: str, column: Any, keys: Collection[str]) -> Iterator[ColumnElement[bool]]:
    """WHERE clauses that together select the rows whose text ``column`` is one of ``keys``.

    Each clause carries up to :data:`KEY_SET` keys as one bound parameter, so a batch of
    keys costs a statement or a few, whatever its size. Duplicate keys are asked once.
    """
    wanted = list(set(keys))
    if not wanted:
        return
    if dialect == "postgresql":
        for start in range(0, len(wanted), KEY_SET):
            part = wanted[start : start + KEY_SET]
            yield column == any_(bindparam(None, part, type_=ARRAY(String())))
        return
    if dialect == "sqlite":
        for start in range(0, len(wanted), KEY_SET):
            part = wanted[start : start + KEY_SET]
            yield column.in_(_json_each(json.dumps(part, ensure_ascii=False)))
        return
    yield from _mysql(column, wanted)


def _json_each(document: str) -> Any:
    keys = func.json_each(bindparam(None, document, type_=String())).table_valued("value")
    return select(keys.c.value)


def _mysql(column: Any, wanted: list[str]) -> Iterator[ColumnElement[bool]]:
    # JSON_TABLE's column is declared with the stored column's length, charset and binary
    # collation (the tables' own, see _tables.py), so keys compare as stored values do. A
    # longer key would be cut to that length (and could then match a stored prefix): it
    # cannot be stored, so it is dropped here instead.
    length = getattr(column.type, "length", None) or 255
    fitting = [k for k in wanted if len(k) <= length]
    unpack = (
        f"JSON_TABLE(:keys, '$[*]' COLUMNS (k VARCHAR({length}) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$')) AS wanted_keys"
    )
    part: list[str] = []
    size = 0
    for key in fitting:
        # In JSON written without ASCII escapes a character takes at most six bytes (a
        # control character's ``\\u00XX``): a bound that is cheap to keep and never short.
        cost = 6 * len(key) + 4
        if part and (len(part) >= KEY_SET or size + cost > _MYSQL_BYTES):
            yield _json_table(column, unpack, part)
            part, size = [], 0
        part.append(key)
        size += cost
    if part:
        yield _json_table(column, unpack, part)


def _json_table(column: Any, unpack: str, part: list[str]) -> ColumnElement[bool]:
    document = json.dumps(part, ensure_ascii=False)
    source = text(unpack).bindparams(bindparam("keys", document, type_=String()))
    return column.in_(select(literal_column("wanted_keys.k")).select_from(source))  # type: ignore[no-any-return]
