"""Column types: timezone-aware UTC instants and record ids that sort alike on every dialect."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, Integer, Text, Uuid
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from crmcore.errors import ValidationError

__all__ = ["AUDIT_SEQUENCE", "LONG_TEXT", "RECORD_ID", "UtcDateTime"]

AUDIT_SEQUENCE: Final = BigInteger().with_variant(Integer(), "sqlite")
"""The audit log's insertion order: a 64-bit auto-increment key (SQLite auto-increments only
an ``INTEGER PRIMARY KEY``, which is 64-bit there anyway)."""

RECORD_ID: Final = Uuid().with_variant(Uuid(native_uuid=False), "mysql", "mariadb")
"""The type of transaction and interaction ids.

PostgreSQL's native ``uuid`` and SQLite's ``CHAR(32)`` hex sort like ``uuid.int``, the order
the in-memory store breaks ties of ``occurred_at`` by. MariaDB's native ``UUID`` does not
(it reorders the groups of time-based UUIDs) and rejects values it deems invalid, so
MariaDB/MySQL store ``CHAR(32)`` lower-case hex too (``utf8mb4_bin``: sorts like the integer).
"""

LONG_TEXT: Final = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
"""Unbounded text (notes, JSON documents): MariaDB/MySQL's ``TEXT`` holds only 64 KB, so they
get ``LONGTEXT`` (in the table's ``utf8mb4``/``utf8mb4_bin``, like every other column)."""


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An instant stored as naive UTC and returned as an aware UTC ``datetime``.

    A naive value is rejected before it reaches the database (``ValidationError``), an aware
    one is converted to UTC; what comes back equals what was written, to the microsecond
    (MariaDB/MySQL use ``DATETIME(6)``; PostgreSQL's ``timestamp`` and SQLite's text keep
    microseconds natively).
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise ValidationError("datetime", value, "must be a datetime")
        offset = value.utcoffset()
        if offset is None:
            raise ValidationError("datetime", value, "must be timezone-aware (naive given)")
        return (value - offset).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite without type information (raw text)
            value = dt.datetime.fromisoformat(value)
        assert isinstance(value, dt.datetime)
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC)
        return value.replace(tzinfo=dt.UTC)
