"""Translation of driver exceptions into :mod:`crmcore.errors`.

Database drivers report problems through SQLAlchemy's DBAPI exception wrappers, whose
meaning depends on the dialect's error codes. This module reads those codes once, here, so no
driver exception ever leaves the adapter.

Driver messages about rows quote the rows' values (MariaDB: ``Duplicate entry
'ann@example.com' for key ...``; PostgreSQL's ``DETAIL: Key (...)=(...)``), which can be
personal data, so crmcore's messages for integrity, data and conflict errors are built from
identifiers only: the constraint, table or column, and the error code. The driver's text is
kept only where it names no row data (an unreachable server, a missing table).

The driver's exception is not chained either: its text and SQLAlchemy's wrapper (which
quotes the statement's parameters) would put the refused row, personal data included, into
every ``logger.exception()`` and traceback. The crmcore error's ``__cause__`` is a
:class:`DriverError` instead, holding only the driver's exception class, error code and
constraint name, and its ``__context__`` is cleared (:func:`raise_translated`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, NoReturn

from sqlalchemy import exc as sa_exc

from crmcore.errors import (
    ConcurrencyError,
    ConfigurationError,
    CrmError,
    DuplicateError,
    NotFound,
    ValidationError,
)

__all__ = ["WITHHELD", "DriverError", "raise_translated", "translate", "translated"]

# PostgreSQL SQLSTATEs.
_PG_UNIQUE = "23505"
_PG_FOREIGN_KEY = "23503"
_PG_NOT_NULL = "23502"
_PG_CHECK = "23514"
_PG_CONCURRENCY = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock n/a
_PG_MISSING = {"42P01", "42703", "3F000", "3D000"}  # undefined table/column/schema/database
# MySQL/MariaDB error numbers.
_MY_DUPLICATE = {1062, 1586}
_MY_FOREIGN_KEY = {1451, 1452, 1216, 1217}
_MY_NOT_NULL = {1048, 1364}  # column cannot be null / has no default
_MY_CHECK = {3819, 4025}  # MySQL / MariaDB check constraint violated
_MY_CONCURRENCY = {1205, 1213}  # lock wait timeout, deadlock
_MY_MISSING = {1146, 1054, 1049}  # no such table / column / database

# SQLite's refusals of a statement beyond its compile-time limits.
_SQLITE_LIMITS = (
    "expression tree is too large",
    "too many sql variables",
    "too many terms in compound select",
    "parser stack overflow",
    "too many columns",
)
# Identifiers quoted in MySQL/MariaDB and SQLite messages (never the values around them).
_MY_KEY = re.compile(r"for key '([^']+)'")
_MY_CONSTRAINT = re.compile(r"CONSTRAINT [`']([^`']+)[`']", re.IGNORECASE)
_MY_COLUMN = re.compile(r"[Cc]olumn (?:`[^`]*`\.)*[`']([^`']+)[`']")
_MY_CHECK_NAME = re.compile(r"[Cc]heck constraint '([^']+)'")
# The table a statement writes (statements carry placeholders, never the values).
_WRITTEN = re.compile(
    r"^\s*(?:INSERT\s+(?:IGNORE\s+)?INTO|UPDATE|DELETE\s+FROM)\s+[`\"]?([\w.$]+)", re.IGNORECASE
)
_SQLITE_NAMES = re.compile(r"constraint failed: ([\w.$]+(?:, [\w.$]+)*)\s*$")


class _Withheld:
    """Stands for a value the database refused: crmcore does not know it, and the driver's
    copy of it may be personal data."""

    def __repr__(self) -> str:
        return "<value withheld>"

    def __reduce__(self) -> str:
        return "WITHHELD"


WITHHELD: Final = _Withheld()
"""The ``value`` of a :class:`ValidationError` translated from a database error."""


class DriverError(Exception):
    """What crmcore keeps of a database driver's exception, as the ``__cause__`` of the
    crmcore error it became: the exception's class, its error code (SQLSTATE, MySQL error
    number) and the constraint named, never its message or the statement's parameters.

    Attributes:
        kind: the driver exception's qualified class name (``psycopg.errors.UniqueViolation``).
        code: ``"SQLSTATE 23505"``, ``"MySQL error 1062"`` or ``None``.
        constraint: the constraint the database named, or ``None``.
    """

    def __init__(self, kind: str, code: str | None, constraint: str | None) -> None:
        self.kind = kind
        self.code = code
        self.constraint = constraint
        parts = [kind] + [p for p in (code, constraint and f"constraint {constraint}") if p]
        super().__init__(", ".join(parts))


def _summary(error: sa_exc.SQLAlchemyError) -> DriverError:
    original = getattr(error, "orig", None)
    cause: BaseException = original if isinstance(original, BaseException) else error
    state = _pg_state(cause)
    code = _my_code(cause)
    constraint = _pg_diag(cause, "constraint_name") or _search(_MY_KEY, str(cause))
    told = f"SQLSTATE {state}" if state else (f"MySQL error {code}" if code is not None else None)
    kind = f"{type(cause).__module__}.{type(cause).__qualname__}"
    return DriverError(kind, told, constraint)


def raise_translated(error: sa_exc.SQLAlchemyError, what: str = "row") -> NoReturn:
    """Raise :func:`translate`'s error for ``error`` with a :class:`DriverError` as its
    ``__cause__`` and no ``__context__``: call it in the ``except`` block that caught
    ``error``; the driver's exception (its message, the statement's parameters) is dropped.
    """
    failure = translate(error, what)
    try:
        raise failure from (None if failure is getattr(error, "orig", None) else _summary(error))
    except CrmError:
        # Raising inside the handler of ``error`` chained it as the context; a bare
        # ``raise`` re-raises without chaining again.
        failure.__context__ = None
        raise


def _pg_state(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else None


def _pg_diag(error: BaseException, name: str) -> str | None:
    value = getattr(getattr(error, "diag", None), name, None)
    return value if isinstance(value, str) and value else None


def _my_code(error: BaseException) -> int | None:
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _search(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None


def _code(state: str | None, code: int | None, error: BaseException | None) -> str:
    if state is not None:
        return f"SQLSTATE {state}"
    if code is not None:
        return f"MySQL error {code}"
    return type(error).__name__ if error is not None else "no error code"


def translate(error: sa_exc.DBAPIError | sa_exc.SQLAlchemyError, what: str = "row") -> CrmError:
    """Return the crmcore error that ``error`` means (raise it with :func:`raise_translated`).

    * unique-key violations -> :class:`DuplicateError` naming the constraint (or columns)
    * foreign-key violations (a missing customer) -> :class:`NotFound` naming the constraint
    * NOT NULL violations -> :class:`ValidationError` whose ``field`` is the column
    * CHECK and other integrity violations, and data errors (a value too long, out of range
      or not valid for the column) -> :class:`ValidationError` naming the constraint/column
    * deadlocks, serialization failures, lock timeouts, SQLite "database is locked"
      -> :class:`ConcurrencyError`
    * unreachable servers, missing tables/schemas, anything else at the connection level
      -> :class:`ConfigurationError`
    * a crmcore error raised while binding a parameter (a naive datetime) -> that error

    Messages never quote the values the driver reports (see the module docstring); the
    ``value`` of a translated :class:`ValidationError` is :data:`WITHHELD`.

    Args:
        error: the SQLAlchemy exception.
        what: the kind of record involved, for the message (``"transaction"``).
    """
    original = getattr(error, "orig", None)
    if isinstance(original, CrmError):
        return original
    text = str(original if original is not None else error)
    lowered = text.lower()
    state = _pg_state(original) if original is not None else None
    code = _my_code(original) if original is not None else None
    sqlite_names = _search(_SQLITE_NAMES, text.strip())
    if isinstance(error, sa_exc.IntegrityError) or (state or "").startswith("23"):
        statement = getattr(error, "statement", None) or ""
        return _integrity(original, what, text, lowered, state, code, sqlite_names, statement)
    if isinstance(error, sa_exc.DataError) or (state or "").startswith("22"):
        column = (_pg_diag(original, "column_name") if original is not None else None) or (
            _search(_MY_COLUMN, text)
        )
        return ValidationError(
            column or what,
            WITHHELD,
            f"was refused by the database for this {what} (too long, out of range or not "
            f"valid for the column; {_code(state, code, original)})",
        )
    if (
        state in _PG_CONCURRENCY
        or code in _MY_CONCURRENCY
        or "database is locked" in lowered
        or "database table is locked" in lowered
    ):
        return ConcurrencyError(
            f"the database reported a conflict with a concurrent unit of work "
            f"({_code(state, code, original)}); retry"
        )
    if any(limit in lowered for limit in _SQLITE_LIMITS):
        # A statement beyond one of SQLite's compile-time limits (a huge rule): the input is
        # too large, the database is fine. These messages quote no values.
        return ValidationError(
            what, WITHHELD, f"is too large for the database to run ({_first_line(text)})"
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
    return ConfigurationError(
        f"database error on a {what} ({_code(state, code, original)}); the driver's error "
        "class and code are in __cause__"
    )


def _integrity(
    original: BaseException | None,
    what: str,
    text: str,
    lowered: str,
    state: str | None,
    code: int | None,
    sqlite_names: str | None,
    statement: str,
) -> CrmError:
    constraint = _pg_diag(original, "constraint_name") if original is not None else None
    table = (_pg_diag(original, "table_name") if original is not None else None) or _search(
        _WRITTEN, statement
    )
    if state == _PG_FOREIGN_KEY or code in _MY_FOREIGN_KEY or "foreign key constraint" in lowered:
        name = constraint or _search(_MY_CONSTRAINT, text)
        kind = "customer" if name is None or name.endswith("_customer") else "referenced row"
        where = f" (constraint {name})" if name else ""
        return NotFound(kind, f"referenced by this {what}{where}")
    if state == _PG_UNIQUE or code in _MY_DUPLICATE or "unique constraint failed" in lowered:
        if constraint or code in _MY_DUPLICATE:
            key = f"constraint {constraint or _search(_MY_KEY, text) or '(unnamed)'}"
            if table:
                key += f" of table {table}"
        else:
            key = f"columns {sqlite_names or '(unnamed)'}"
        return DuplicateError(what, f"a stored row has the same key ({key})")
    if state == _PG_NOT_NULL or code in _MY_NOT_NULL or "not null constraint failed" in lowered:
        column = (
            (_pg_diag(original, "column_name") if original is not None else None)
            or _search(_MY_COLUMN, text)
            or (sqlite_names or "").rpartition(".")[2]
            or what
        )
        where = f" of table {table}" if table else ""
        if sqlite_names and "." in sqlite_names:
            where = f" of table {sqlite_names.rpartition('.')[0]}"
        return ValidationError(column, None, f"is required (NOT NULL column{where})")
    if state == _PG_CHECK or code in _MY_CHECK or "check constraint failed" in lowered:
        name = constraint or _search(_MY_CONSTRAINT, text) or _search(_MY_CHECK_NAME, text)
        name = name or sqlite_names or "(unnamed)"
        return ValidationError(what, WITHHELD, f"breaks the database's check constraint {name}")
    return ValidationError(
        what,
        WITHHELD,
        f"breaks an integrity rule of the database ({_code(state, code, original)})",
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "(no message)"


@contextmanager
def translated(what: str = "row") -> Iterator[None]:
    """Translate any SQLAlchemy exception raised in the block (see :func:`translate`)."""
    try:
        yield
    except sa_exc.SQLAlchemyError as error:
        raise_translated(error, what)
