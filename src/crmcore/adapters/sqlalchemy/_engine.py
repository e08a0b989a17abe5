"""Engines for crmcore: creating one from a URL, SQLite's listeners, dialect facts.

Only engines crmcore creates (``SqlStore.from_url``) or that the host hands to
:func:`configure_sqlite_engine` get listeners, and only on that engine: nothing global.
"""

from __future__ import annotations

import weakref
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import StaticPool

from crmcore.errors import ConfigurationError

__all__ = [
    "LAZY_BEGIN",
    "configure_sqlite_engine",
    "dialect_name",
    "engine_for_url",
    "is_configured",
    "is_memory_sqlite",
]

LAZY_BEGIN: Final = "crmcore_lazy_begin"
"""Execution option of a connection whose unit of work emits its own ``BEGIN IMMEDIATE``
(the ``begin`` listener then emits nothing)."""

_CONFIGURED: weakref.WeakSet[Engine] = weakref.WeakSet()


def is_memory_sqlite(database: str | None) -> bool:
    """Whether a SQLite URL's database is in memory (one connection shared by all)."""
    return database in (None, "", ":memory:") or "mode=memory" in (database or "")


def is_configured(engine: Engine) -> bool:
    """Whether :func:`configure_sqlite_engine` ran on ``engine``."""
    return engine in _CONFIGURED


def dialect_name(dialect: Dialect) -> str:
    """``"sqlite"``, ``"postgresql"``, ``"mysql"`` or ``"mariadb"``."""
    if dialect.name == "mysql" and getattr(dialect, "is_mariadb", False):
        return "mariadb"
    return str(dialect.name)


def engine_for_url(url: str) -> Engine:
    """A new engine for ``url`` (SQLite: shareable across threads, in-memory on one
    connection, and configured by :func:`configure_sqlite_engine`).

    Raises:
        ConfigurationError: a malformed URL or a missing driver.
    """
    try:
        parsed = make_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            memory = is_memory_sqlite(parsed.database)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if memory:
                kwargs["poolclass"] = StaticPool
        engine = create_engine(parsed, **kwargs)
    except ValueError:
        # make_url's int() of a non-numeric port; its message quotes the port only.
        raise ConfigurationError(
            "cannot create an engine for this URL: its port is not a number"
        ) from None
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(f"cannot create an engine for this URL: {exc}") from exc
    if engine.dialect.name == "sqlite":
        configure_sqlite_engine(engine)
    return engine


def configure_sqlite_engine(engine: Engine) -> Engine:
    """Make a SQLite engine transaction-correct for crmcore (and for the host).

    ``SqlStore.from_url`` does this to the engines it creates. Call it on your own SQLite
    engine before sharing it (or a connection of it) with a :class:`SqlStore`: it attaches
    listeners to this engine only (no global listener) that turn on foreign keys for every
    connection, set a 30 s busy timeout, turn on ``secure_delete`` (deleted content is
    overwritten with zeros, so erased personal data does not stay readable in the file),
    switch files to WAL, and replace the ``sqlite3``
    module's legacy transaction handling with explicit ``BEGIN``, which is what makes
    SAVEPOINTs (``begin_nested()``) work. See "Legacy Transaction Mode" in SQLAlchemy's
    SQLite dialect documentation.

    Args:
        engine: an engine on a ``sqlite`` URL.

    Returns:
        the same engine.

    Raises:
        ConfigurationError: the engine is not SQLite.
    """
    if engine.dialect.name != "sqlite":
        raise ConfigurationError(
            f"configure_sqlite_engine needs a SQLite engine, got {engine.url!r}"
        )
    if engine in _CONFIGURED:
        return engine
    _CONFIGURED.add(engine)
    file = not is_memory_sqlite(engine.url.database)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (its legacy mode does not
        # BEGIN before SAVEPOINT or SELECT); BEGIN is emitted below or by the unit of work.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Erased personal data must not linger in freed pages or cells of the file.
        cursor.execute("PRAGMA secure_delete=ON")
        if file:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if not conn.get_execution_options().get(LAZY_BEGIN, False):
            conn.exec_driver_sql("BEGIN")

    return engine
