"""Translation of driver exceptions into :mod:`crmcore.errors`.

Database drivers report problems through SQLAlchemy's DBAPI exception wrappers, whose
meaning depends on the dialect's error codes. This module reads those codes once, here, so no
driver exception ever leaves the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from crmcore.errors import (
    ConcurrencyError,
    ConfigurationError,
    CrmError,
    DuplicateError,
    NotFound,
)

__all__ = ["translate", "translated"]

# PostgreSQL SQLSTATEs.
_PG_UNIQUE = "23505"
_PG_FOREIGN_KEY = "23503"
_PG_CONCURRENCY = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock n/a
_PG_MISSING = {"42P01", "42703", "3F000", "3D000"}  # undefined table/column/schema/database
# MySQL/MariaDB error numbers.
_MY_DUPLICATE = {1062, 1586}
_MY_FOREIGN_KEY = {1451, 1452, 1216, 1217}
_MY_CONCURRENCY = {1205, 1213}  # lock wait timeout, deadlock
_MY_MISSING = {1146, 1054, 1049}  # no such table / column / database


def _pg_state(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else None


def _my_code(error: BaseException) -> int | None:
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def translate(error: sa_exc.DBAPIError | sa_exc.SQLAlchemyError, what: str = "row") -> CrmError:
    """Return the crmcore error that ``error`` means (to be raised ``from`` it).

    * unique-key violations -> :class:`DuplicateError`
    * foreign-key violations (a missing customer) -> :class:`NotFound`
    * deadlocks, serialization failures, lock timeouts, SQLite "database is locked"
      -> :class:`ConcurrencyError`
    * unreachable servers, missing tables/schemas, anything else at the connection level
      -> :class:`ConfigurationError`

    Args:
        error: the SQLAlchemy exception.
        what: the kind of record involved, for the message (``"transaction"``).
    """
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error)
    lowered = text.lower()
    state = _pg_state(original) if original is not None else None
    code = _my_code(original) if original is not None else None
    if isinstance(error, sa_exc.IntegrityError):
        if (
            state == _PG_FOREIGN_KEY
            or code in _MY_FOREIGN_KEY
            or "foreign key constraint failed" in lowered
        ):
            return NotFound("customer", f"referenced by this {what}")
        if state == _PG_UNIQUE or code in _MY_DUPLICATE or "unique constraint failed" in lowered:
            return DuplicateError(what, _first_line(text))
        return DuplicateError(what, _first_line(text))
    if (
        state in _PG_CONCURRENCY
        or code in _MY_CONCURRENCY
        or "database is locked" in lowered
        or "database table is locked" in lowered
    ):
        return ConcurrencyError(
            f"the database reported a conflict with a concurrent unit of work "
            f"({_first_line(text)}); retry"
        )
    if state in _PG_MISSING or code in _MY_MISSING or "no such table" in lowered:
        return ConfigurationError(
            f"crmcore's schema is missing or outdated ({_first_line(text)}); run "
            "crmcore.adapters.sqlalchemy.upgrade() or store.create_schema()"
        )
    if isinstance(error, sa_exc.InterfaceError | sa_exc.OperationalError) or (
        isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated
    ):
        return ConfigurationError(f"the database is not reachable: {_first_line(text)}")
    return ConfigurationError(f"database error: {_first_line(text)}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "(no message)"


@contextmanager
def translated(what: str = "row") -> Iterator[None]:
    """Translate any SQLAlchemy exception raised in the block (see :func:`translate`)."""
    try:
        yield
    except sa_exc.SQLAlchemyError as error:
        raise translate(error, what) from error
