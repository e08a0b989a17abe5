"""``SqlStore``: crmcore's ports on SQLAlchemy 2.x Core (SQLite, PostgreSQL, MariaDB/MySQL).

Connection ownership:

* ``SqlStore.from_url(url)`` creates and owns an ``Engine`` (``close()`` disposes it) and may
  attach listeners to that engine only (SQLite: foreign keys on, WAL for files, crmcore's own
  ``BEGIN`` so SAVEPOINTs and locking behave).
* ``SqlStore(engine)`` uses the host's engine: every unit of work checks out a connection,
  runs one transaction and returns the connection. No listener is attached.
* ``SqlStore(connection)`` uses the host's connection: every unit of work is a SAVEPOINT
  (``begin_nested()``) inside the host's transaction. ``commit()`` releases the savepoint and
  ``rollback()`` rolls back to it; the host commits or rolls back its own transaction.
  crmcore never commits a connection it did not open, and constructing the store leaves the
  connection's transaction state as it found it (the settings are read in a SAVEPOINT, or
  outside any transaction in a read-only transaction that is ended again).

SQLite (engines the store created): a unit of work reads outside any transaction until its
first write, which starts ``BEGIN IMMEDIATE``; writers queue on SQLite's single write lock
(busy timeout 30 s) instead of failing when a read lock cannot be upgraded.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import sqlite3
import threading
import uuid
import weakref
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    any_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from crmcore.adapters.sqlalchemy._bulk import BulkInsert
from crmcore.adapters.sqlalchemy._errors import translate, translated
from crmcore.adapters.sqlalchemy._mapping import (
    customer_from_row,
    customer_rows,
    interaction_from_row,
    interaction_row,
    transaction_from_row,
    transaction_row,
)
from crmcore.adapters.sqlalchemy._metrics import SqlMetrics
from crmcore.adapters.sqlalchemy._tables import CrmTables, build_tables
from crmcore.domain import (
    DEFAULT_SCHEME,
    CrmNumber,
    CrmNumberScheme,
    Customer,
    CustomerAggregate,
    DomainEvent,
    Interaction,
    InteractionKind,
    Segment,
    SegmentMembership,
    Transaction,
    TransactionKind,
    currency_exponent,
)
from crmcore.domain._checks import aware_utc
from crmcore.domain.contact import email_lookup_key
from crmcore.errors import (
    ConcurrencyError,
    ConfigurationError,
    DuplicateError,
    ErasedError,
    NotFound,
    ValidationError,
)

__all__ = [
    "SqlNumberAllocator",
    "SqlStore",
    "SqlUnitOfWork",
    "configure_sqlite_engine",
    "initialize_rows",
]

_CURRENCY_KEY = "reporting_currency"
_COUNTER = "crm_number"
_LAZY = "crmcore_lazy_begin"
_CHUNK = 500  # keys per IN (...) list
# SQLite 3.32+ takes up to 32766 bound variables per statement (999 before); a (source,
# external_ref) pair takes two.
_SQLITE_CHUNK = 8000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 400


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is_memory_sqlite(database: str | None) -> bool:
    return database in (None, "", ":memory:") or "mode=memory" in (database or "")


_CONFIGURED: weakref.WeakSet[Engine] = weakref.WeakSet()


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
    file = not _is_memory_sqlite(engine.url.database)

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
        if not conn.get_execution_options().get(_LAZY, False):
            conn.exec_driver_sql("BEGIN")

    return engine


class SqlStore:
    """A crmcore store in a SQL database, through SQLAlchemy 2.x Core.

    Args:
        bind: an ``Engine`` (each unit of work runs on its own pooled connection) or a host's
            ``Connection`` (each unit of work is a SAVEPOINT in the host's transaction).
        scheme: how CRM numbers look.
        reporting_currency: ISO 4217 code; ``None`` reads the one recorded in the database
            (``USD`` if none is recorded yet). A value that conflicts with the recorded one
            raises.
        table_prefix: prepended to every table name.
        schema: database schema of the tables (``None``: the default one).
        metadata: the host's ``MetaData`` to define the tables on (default: a new one).

    Raises:
        ConfigurationError: a conflicting reporting currency, a bad prefix, or an unusable
            bind.
    """

    def __init__(
        self,
        bind: Engine | Connection,
        *,
        scheme: CrmNumberScheme = DEFAULT_SCHEME,
        reporting_currency: str | None = None,
        table_prefix: str = "crm_",
        schema: str | None = None,
        metadata: MetaData | None = None,
    ) -> None:
        if not isinstance(scheme, CrmNumberScheme):
            raise ConfigurationError(f"scheme must be a CrmNumberScheme, got {scheme!r}")
        if isinstance(bind, Engine):
            self._engine: Engine | None = bind
            self._connection: Connection | None = None
        elif isinstance(bind, Connection):
            self._engine = None
            self._connection = bind
        else:
            raise ConfigurationError(
                f"bind must be a SQLAlchemy Engine or Connection, got {bind!r}"
            )
        if reporting_currency is not None:
            try:
                currency_exponent(reporting_currency, "reporting_currency")
            except ValidationError as exc:
                raise ConfigurationError(str(exc)) from None
        self._scheme = scheme
        self._given_currency = reporting_currency
        self._currency: str | None = None
        self._tables = build_tables(metadata, prefix=table_prefix, schema=schema)
        self._owns_engine = False
        self._dialect = bind.dialect
        url = (bind if isinstance(bind, Engine) else bind.engine).url
        self._sqlite = self._dialect.name == "sqlite"
        self._sqlite_memory = self._sqlite and _is_memory_sqlite(url.database)
        # Units on a configured SQLite engine start BEGIN IMMEDIATE at their first write.
        self._lazy_begin = isinstance(bind, Engine) and bind in _CONFIGURED
        # Units on one shared SQLite connection (":memory:") must not interleave.
        self._serial: threading.RLock | None = None
        self._local = threading.local()
        # Compiled bulk INSERTs (see _bulk.py) by table name, conflict clause and columns.
        self._bulk_inserts: dict[tuple[str, bool, tuple[str, ...]], BulkInsert | None] = {}
        self._allocator = SqlNumberAllocator(self)
        self._read_settings()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        create_schema: bool = False,
        scheme: CrmNumberScheme = DEFAULT_SCHEME,
        reporting_currency: str | None = None,
        table_prefix: str = "crm_",
        schema: str | None = None,
        metadata: MetaData | None = None,
    ) -> SqlStore:
        """Create a store with an engine of its own (disposed by :meth:`close`).

        Args:
            url: a SQLAlchemy URL (``sqlite:///crm.db``, ``sqlite://`` for memory,
                ``postgresql+psycopg://...``, ``mysql+pymysql://...``).
            create_schema: create crmcore's tables if missing (see :meth:`create_schema`).
            scheme, reporting_currency, table_prefix, schema, metadata: as for the
                constructor.

        Raises:
            ConfigurationError: a malformed URL, a missing driver, an unreachable database.
        """
        try:
            parsed = make_url(url)
            kwargs: dict[str, Any] = {}
            if parsed.get_backend_name() == "sqlite":
                memory = _is_memory_sqlite(parsed.database)
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
                if memory:
                    kwargs["poolclass"] = StaticPool
            engine = create_engine(parsed, **kwargs)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
            raise ConfigurationError(f"cannot create an engine for this URL: {exc}") from exc
        if engine.dialect.name == "sqlite":
            configure_sqlite_engine(engine)
        try:
            store = cls(
                engine,
                scheme=scheme,
                reporting_currency=reporting_currency,
                table_prefix=table_prefix,
                schema=schema,
                metadata=metadata,
            )
        except BaseException:
            engine.dispose()
            raise
        store._owns_engine = True
        if store._sqlite_memory:
            store._serial = threading.RLock()
        if create_schema:
            try:
                store.create_schema()
            except BaseException:
                store.close()
                raise
        return store

    # -- properties ---------------------------------------------------------------------

    @property
    def scheme(self) -> CrmNumberScheme:
        """How this store's CRM numbers look."""
        return self._scheme

    @property
    def reporting_currency(self) -> str:
        """The reporting currency recorded in the database (``USD`` if none is recorded)."""
        if self._currency is None:
            self._read_settings()
        if self._currency is not None:
            return self._currency
        return self._given_currency or "USD"

    @property
    def allocator(self) -> SqlNumberAllocator:
        """The CRM number allocator (a counter row, advanced in short transactions)."""
        return self._allocator

    @property
    def tables(self) -> CrmTables:
        """crmcore's ``Table`` objects."""
        return self._tables

    @property
    def engine(self) -> Engine | None:
        """The engine (``None`` when the store is bound to a host's connection)."""
        return self._engine

    @property
    def dialect_name(self) -> str:
        """``"sqlite"``, ``"postgresql"``, ``"mysql"`` or ``"mariadb"``."""
        if self._dialect.name == "mysql" and getattr(self._dialect, "is_mariadb", False):
            return "mariadb"
        return str(self._dialect.name)

    def metrics_source(self) -> SqlMetrics:
        """The :class:`~crmcore.analytics.MetricsSource` of this store, computed in SQL.

        Snapshots are fetched column-wise from the maintained aggregates (or a ``GROUP BY``
        over the history for a past ``as_of``); it also selects segment members with WHERE
        clauses and scores RFM with window functions (see ``docs/analytics.md``).
        """
        return SqlMetrics(self)

    def unit_of_work(self) -> SqlUnitOfWork:
        """Start a new unit of work (enter it with ``with``)."""
        return SqlUnitOfWork(self)

    def __repr__(self) -> str:
        return (
            f"SqlStore(dialect={self.dialect_name!r}, prefix={self._tables.prefix!r}, "
            f"schema={self._tables.schema!r}, scheme={self._scheme.prefix}/{self._scheme.width})"
        )

    # -- schema -------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create crmcore's tables (only those; existing ones are kept) and settings rows.

        Records the reporting currency (the given one, or ``USD``) if none is recorded.

        Raises:
            ConfigurationError: the database is unreachable, or records another currency.
        """
        with self._admin() as conn, translated("schema"):
            self._tables.metadata.create_all(conn, tables=list(self._tables.all))
            initialize_rows(conn, self._tables, self._given_currency or "USD")
        self._currency = None
        self._read_settings()

    def drop_schema(self) -> None:
        """Drop crmcore's tables (only those) with all their rows."""
        with self._admin() as conn, translated("schema"):
            self._tables.metadata.drop_all(conn, tables=list(self._tables.all))
        self._currency = None

    def analyze(self) -> None:
        """Refresh the database's planner statistics of crmcore's tables.

        Run it after a bulk import (or let the server's autovacuum / a DBA job do it): without
        statistics a freshly loaded PostgreSQL plans the analytics joins for a few hundred rows
        and picks nested loops over a million. ``ANALYZE`` on PostgreSQL and SQLite,
        ``ANALYZE TABLE`` on MariaDB/MySQL; only crmcore's tables, no rows are changed.
        """
        preparer = self._dialect.identifier_preparer
        with self._admin() as conn, translated("schema"):
            for table in self._tables.all:
                name = preparer.format_table(table)
                if self._dialect.name in ("mysql", "mariadb"):
                    conn.exec_driver_sql(f"ANALYZE TABLE {name}").fetchall()
                else:
                    conn.exec_driver_sql(f"ANALYZE {name}")

    def close(self) -> None:
        """Dispose the engine if this store created it (a host's engine is left alone)."""
        if self._owns_engine and self._engine is not None:
            self._engine.dispose()

    # -- internals ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _admin(self) -> Iterator[Connection]:
        """A connection in a transaction: committed if crmcore owns it, else a SAVEPOINT."""
        if self._connection is not None:
            with self._connection.begin_nested():
                yield self._connection
            return
        assert self._engine is not None
        with self._serialized():
            try:
                conn = self._engine.connect()
            except sa_exc.SQLAlchemyError as exc:
                raise translate(exc) from exc
            with conn, conn.begin():
                yield conn

    def _serialized(self) -> contextlib.AbstractContextManager[Any]:
        return self._serial if self._serial is not None else contextlib.nullcontext()

    def _read_settings(self) -> None:
        t = self._tables.settings
        try:
            if self._connection is not None:
                stored = self._fetch_on_host(self._connection, t)
            else:
                assert self._engine is not None
                with self._serialized(), self._engine.connect() as conn:
                    stored = self._fetch_currency(conn, t)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, "settings") from exc
        if stored is None:
            return
        if self._given_currency is not None and stored != self._given_currency:
            raise ConfigurationError(
                f"reporting_currency {self._given_currency!r} conflicts with "
                f"{stored!r} recorded in the database"
            )
        self._currency = stored

    def _fetch_on_host(self, conn: Connection, t: Table) -> str | None:
        """Read the currency on the host's connection and leave it as it was found.

        Outside a transaction the read would autobegin one and leave the host unable to
        ``begin()``: it is ended (rolled back: it only read) afterwards. Inside the host's
        transaction the read runs in a SAVEPOINT, so a failure cannot abort that transaction.
        """
        if conn.in_transaction():
            with conn.begin_nested():
                return self._fetch_currency(conn, t)
        try:
            return self._fetch_currency(conn, t)
        finally:
            if conn.in_transaction():
                conn.rollback()

    def _fetch_currency(self, conn: Connection, t: Table) -> str | None:
        if not inspect(conn).has_table(t.name, schema=t.schema):
            return None
        value = conn.execute(select(t.c.value).where(t.c.key == _CURRENCY_KEY)).scalar()
        return None if value is None else str(value)

    def _active_unit(self) -> SqlUnitOfWork | None:
        units: list[SqlUnitOfWork] = getattr(self._local, "units", [])
        return units[-1] if units else None


def initialize_rows(conn: Connection, tables: CrmTables, currency: str) -> None:
    """Insert the settings and counter rows if missing (migrations and create_schema).

    Raises:
        ConfigurationError: the database records a different reporting currency than a
            requested one.
    """
    s = tables.settings
    stored = conn.execute(select(s.c.value).where(s.c.key == _CURRENCY_KEY)).scalar()
    if stored is None:
        conn.execute(insert(s).values(key=_CURRENCY_KEY, value=currency))
    c = tables.number_counter
    if conn.execute(select(c.c.value).where(c.c.name == _COUNTER)).scalar() is None:
        conn.execute(insert(c).values(name=_COUNTER, value=0))


class SqlNumberAllocator:
    """CRM number sequences from a counter row, advanced in its own short transaction.

    PostgreSQL and MariaDB: ``UPDATE ... SET value = value + n`` on a connection of its own,
    committed at once, so the row lock is held for one round trip and a unit of work that
    rolls back leaves a gap instead of returning numbers. SQLite: the same, under SQLite's
    write lock; when the calling thread's unit of work already holds that lock (it has
    written), or the store is bound to a host's connection, the counter is advanced inside
    that transaction instead (a second connection would wait for the lock forever), and the
    allocator remembers the highest sequence it handed out, so this store object never hands
    one out twice even if that transaction rolls back.
    """

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._high = 0

    def allocate(self) -> int:
        """Return the next unused sequence (1-based).

        Raises:
            ConfigurationError: the database is unreachable or has no crmcore schema.
            ConcurrencyError: the database gave up waiting for the counter's lock.
        """
        return self.allocate_many(1)[0]

    def allocate_many(self, count: int) -> Sequence[int]:
        """Return ``count`` unused, consecutive sequences.

        Raises:
            ValidationError: ``count`` is not a non-negative integer.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError("count", count, "must be a non-negative integer")
        if count == 0:
            return []
        try:
            last = self._advance(count)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, "number counter") from exc
        with self._lock:
            self._high = max(self._high, last)
        return list(range(last - count + 1, last + 1))

    def _bump(self, conn: Connection, count: int) -> int:
        c = self._store.tables.number_counter
        with self._lock:
            floor = self._high
        new = case((c.c.value > floor, c.c.value), else_=floor) + count
        result = conn.execute(update(c).where(c.c.name == _COUNTER).values(value=new))
        if result.rowcount == 0:
            conn.execute(insert(c).values(name=_COUNTER, value=floor + count))
        value = conn.execute(select(c.c.value).where(c.c.name == _COUNTER)).scalar_one()
        return int(value)

    def _advance(self, count: int) -> int:
        store = self._store
        if store._sqlite:
            unit = store._active_unit()
            if store._connection is not None:
                return self._bump(store._connection, count)
            if unit is not None and unit._conn is not None:
                if unit._writing or not store._lazy_begin:
                    return self._bump(unit._conn, count)
                # The unit has not taken the write lock: a short transaction of our own on
                # its connection (it is in autocommit until its first write).
                unit._conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    last = self._bump(unit._conn, count)
                except BaseException:
                    unit._conn.exec_driver_sql("ROLLBACK")
                    raise
                unit._conn.exec_driver_sql("COMMIT")
                return last
        engine = store._engine if store._engine is not None else None
        if engine is None:
            assert store._connection is not None
            engine = store._connection.engine
        with store._serialized(), engine.connect() as conn:
            if store._lazy_begin:
                conn.execution_options(**{_LAZY: True})
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                last = self._bump(conn, count)
                conn.commit()
                return last
            with conn.begin():
                return self._bump(conn, count)


class SqlUnitOfWork:
    """A unit of work of :class:`SqlStore`: one database transaction (or SAVEPOINT).

    Reads see the unit's own writes; other units see them only after :meth:`commit`.
    Leaving the ``with`` block without committing rolls back.
    """

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._t = store.tables
        self._conn: Connection | None = None
        self._tx: Any = None
        self._state = "new"
        self._writing = False
        self._events: list[DomainEvent] = []
        self._serial_held = False
        self.customers = _Customers(self)
        self.interactions = _Interactions(self)
        self.transactions = _Transactions(self)
        self.aggregates = _Aggregates(self)
        self.segments = _Segments(self)

    def __repr__(self) -> str:
        return f"SqlUnitOfWork(store={self._store!r}, state={self._state!r})"

    def __enter__(self) -> Self:
        if self._state != "new":
            raise ConfigurationError("a unit of work is used once; start a new one")
        store = self._store
        if store._serial is not None:
            store._serial.acquire()
            self._serial_held = True
        try:
            if store._connection is not None:
                self._conn = store._connection
                if store._sqlite and store._connection.engine not in _CONFIGURED:
                    raise ConfigurationError(
                        "a SQLite connection shared with crmcore must come from an engine "
                        "passed through configure_sqlite_engine() (SAVEPOINTs do not work in "
                        "the sqlite3 module's legacy transaction mode)"
                    )
            else:
                assert store._engine is not None
                self._conn = store._engine.connect()
                if store._lazy_begin:
                    self._conn.execution_options(**{_LAZY: True})
            self._begin()
        except sa_exc.SQLAlchemyError as exc:
            self._release()
            raise translate(exc) from exc
        except BaseException:
            self._release()
            raise
        self._state = "active"
        units = getattr(store._local, "units", None)
        if units is None:
            units = store._local.units = []
        units.append(self)
        return self

    def _begin(self) -> None:
        assert self._conn is not None
        self._writing = False
        if self._store._connection is not None:
            self._tx = self._conn.begin_nested()
        else:
            self._tx = self._conn.begin()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._state == "active":
                self._end(commit=False, restart=False)
        finally:
            self._state = "done"
            units = getattr(self._store._local, "units", [])
            if self in units:
                units.remove(self)
            self._release()

    def _release(self) -> None:
        if self._conn is not None and self._store._connection is None:
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                self._conn.close()
        self._conn = None
        if self._serial_held and self._store._serial is not None:
            self._serial_held = False
            self._store._serial.release()

    def _end(self, *, commit: bool, restart: bool) -> None:
        tx = self._tx
        self._tx = None
        try:
            if tx is not None and tx.is_active:
                if commit:
                    tx.commit()
                else:
                    tx.rollback()
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc
        finally:
            self._writing = False
            if restart and self._conn is not None:
                self._begin()

    def _check_active(self) -> Connection:
        if self._state != "active" or self._conn is None:
            raise ConfigurationError("use the unit of work inside a 'with' block")
        return self._conn

    def _read(self) -> Connection:
        return self._check_active()

    def _write(self) -> Connection:
        conn = self._check_active()
        if not self._writing:
            if self._store._lazy_begin:
                with translated():
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
            self._writing = True
        return conn

    def commit(self) -> None:
        """Make every write of this unit durable (release the SAVEPOINT on a host connection).

        Raises:
            ConcurrencyError: the database detected a conflict (nothing is written).
        """
        self._check_active()
        self._end(commit=True, restart=True)

    def rollback(self) -> None:
        """Discard every write of this unit."""
        if self._state == "active":
            self._end(commit=False, restart=True)
        self._events.clear()

    def add_event(self, event: DomainEvent) -> None:
        """Queue a domain event; it is published only if the unit commits."""
        self._events.append(event)

    def collect_events(self) -> list[DomainEvent]:
        """Return and clear the queued events."""
        events, self._events = self._events, []
        return events

    # -- helpers for repositories --------------------------------------------------------

    def _alive(self, conn: Connection, numbers: Iterable[str]) -> dict[str, bool]:
        """Map each existing number to ``erased``."""
        c = self._t.customers
        out: dict[str, bool] = {}
        keys = sorted(set(numbers))
        for where in self._where_in(c.c.number, keys):
            for number, erased in conn.execute(select(c.c.number, c.c.erased).where(where)):
                out[number] = bool(erased)
        return out

    def _where_in(self, column: Any, keys: Sequence[Any]) -> Iterator[Any]:
        """WHERE clauses that together select the rows whose ``column`` is in ``keys``.

        PostgreSQL: one ``column = ANY(:array)`` (a single parameter, whatever the count);
        elsewhere ``column IN (...)`` lists of a bounded size.
        """
        if not keys:
            return
        if self._store._dialect.name == "postgresql":
            yield column == any_(literal(list(keys), ARRAY(column.type)))
            return
        size = _SQLITE_CHUNK if self._store._sqlite else _CHUNK
        for chunk in _chunks(keys, size):
            yield column.in_(chunk)

    def _refs_in(
        self, conn: Connection, table: Table, pairs: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """The ``(source, external_ref)`` pairs of ``pairs`` stored in ``table``."""
        found: set[tuple[str, str]] = set()
        if not pairs:
            return found
        src, ref = table.c.source, table.c.external_ref
        if self._store._dialect.name == "postgresql":
            wanted = (
                func.unnest(
                    literal([p[0] for p in pairs], ARRAY(src.type)),
                    literal([p[1] for p in pairs], ARRAY(ref.type)),
                )
                .table_valued("source", "external_ref")
                .render_derived()
            )
            stmt = (
                select(src, ref)
                .select_from(table)
                .join(wanted, and_(src == wanted.c.source, ref == wanted.c.external_ref))
            )
            found.update((s, r) for s, r in conn.execute(stmt))
            return found
        size = _SQLITE_CHUNK // 2 if self._store._sqlite else _CHUNK
        for chunk in _chunks(pairs, size):
            found.update(
                (s, r) for s, r in conn.execute(select(src, ref).where(tuple_(src, ref).in_(chunk)))
            )
        return found

    def _require_customers(self, conn: Connection, numbers: Iterable[str]) -> None:
        wanted = sorted(set(numbers))
        found = self._alive(conn, wanted)
        for number in wanted:
            if number not in found:
                raise NotFound("customer", CrmNumber(number))
            if found[number]:
                raise ErasedError("customer", CrmNumber(number))

    def _insert_ignoring_refs(self, table: Table) -> Insert:
        name = self._store._dialect.name
        if name == "postgresql":
            return pg_insert(table).on_conflict_do_nothing(
                index_elements=["source", "external_ref"]
            )
        if name == "sqlite":
            return sqlite_insert(table).on_conflict_do_nothing(
                index_elements=["source", "external_ref"]
            )
        # Not INSERT IGNORE: that also turns data errors (a rejected value, a missing
        # customer) into warnings and stores a mangled row. A no-op update on a duplicate
        # key skips the row and nothing else.
        stmt = mysql_insert(table)
        return stmt.on_duplicate_key_update(id=stmt.table.c.id)

    def _bulk_insert(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        *,
        ignoring_refs: bool,
        stmt: Insert | None = None,
        tag: str = "",
    ) -> BulkInsert | None:
        """``table``'s INSERT (``stmt``, cached under ``tag``; else
        :meth:`_insert_ignoring_refs` or plain) compiled for ``columns`` (None: use
        ``execute``)."""
        if conn.get_execution_options().get("schema_translate_map"):
            return None  # rendered per execution by SQLAlchemy; not cached here
        key = (f"{table.name}:{tag}" if tag else table.name, ignoring_refs, tuple(columns))
        cache = self._store._bulk_inserts
        if key not in cache:
            if stmt is None:
                stmt = self._insert_ignoring_refs(table) if ignoring_refs else insert(table)
            try:
                cache[key] = BulkInsert(stmt, conn.dialect, key[2])
            except ValueError:  # binds other than the given columns (a default): not cached
                cache[key] = None
        return cache[key]

    def _insert_rows(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """A plain INSERT of ``rows`` (all with the same keys), as ``conn.execute`` does it."""
        if not rows:
            return
        bulk = self._bulk_insert(conn, table, list(rows[0]), ignoring_refs=False)
        if bulk is None:
            conn.execute(insert(table), rows)
        else:
            bulk.execute(conn, [[r[c] for r in rows] for c in bulk.columns])


class _Customers:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow
        self._t = uow._t

    # -- writes -------------------------------------------------------------------------

    def add(self, customer: Customer) -> None:
        self.add_many([customer])

    def add_many(self, customers: Sequence[Customer]) -> None:
        conn = self._uow._write()
        batch = list(customers)
        for item in batch:
            if not isinstance(item, Customer):
                raise ValidationError("customer", item, "must be a Customer")
            # Cross-field rules (a customer changed field by field may break them).
            item.validate()
        if not batch:
            return
        t = self._t
        seen_numbers: set[str] = set()
        seen_ext: set[tuple[str, str]] = set()
        for item in batch:
            if item.number.value in seen_numbers:
                raise DuplicateError("crm number", item.number)
            seen_numbers.add(item.number.value)
            if item.external_id is not None:
                assert item.source is not None
                key = (item.source, item.external_id)
                if key in seen_ext:
                    raise DuplicateError("external id", f"{key[0]}/{key[1]}")
                seen_ext.add(key)
        with translated("customer"):
            taken = self._uow._alive(conn, seen_numbers)
            for item in batch:
                if item.number.value in taken:
                    raise DuplicateError("crm number", item.number)
            ext = sorted(seen_ext)
            c = t.customers
            for chunk in _chunks(ext):
                hit = conn.execute(
                    select(c.c.source, c.c.external_id)
                    .where(tuple_(c.c.source, c.c.external_id).in_(chunk))
                    .limit(1)
                ).first()
                if hit is not None:
                    raise DuplicateError("external id", f"{hit[0]}/{hit[1]}")
            rows, emails, phones, tags = [], [], [], []
            for item in batch:
                row, e, p, tg = customer_rows(item)
                rows.append(row)
                emails.extend(e)
                phones.extend(p)
                tags.extend(tg)
            self._uow._insert_rows(conn, c, rows)
            self._insert_children(conn, emails, phones, tags)
            self._uow._insert_rows(conn, t.aggregates, [_zero_aggregate(r["number"]) for r in rows])

    def _insert_children(
        self,
        conn: Connection,
        emails: list[dict[str, Any]],
        phones: list[dict[str, Any]],
        tags: list[dict[str, Any]],
    ) -> None:
        t = self._t
        self._uow._insert_rows(conn, t.customer_emails, emails)
        self._uow._insert_rows(conn, t.customer_phones, phones)
        self._uow._insert_rows(conn, t.customer_tags, tags)

    def update(self, customer: Customer) -> None:
        conn = self._uow._write()
        if not isinstance(customer, Customer):
            raise ValidationError("customer", customer, "must be a Customer")
        customer.validate()
        t = self._t
        c = t.customers
        number = customer.number
        with translated("customer"):
            current = conn.execute(
                select(c.c.version, c.c.erased).where(c.c.number == number.value)
            ).first()
            if current is None:
                raise NotFound("customer", number)
            if current.erased:
                raise ErasedError("customer", number)
            if current.version != customer.version:
                raise _stale(number, current.version, customer.version)
            if customer.external_id is not None:
                holder = conn.execute(
                    select(c.c.number).where(
                        c.c.source == customer.source,
                        c.c.external_id == customer.external_id,
                        c.c.number != number.value,
                    )
                ).first()
                if holder is not None:
                    raise DuplicateError("external id", f"{customer.source}/{customer.external_id}")
            row, emails, phones, tags = customer_rows(customer)
            row["version"] = customer.version + 1
            del row["number"]
            result = conn.execute(
                update(c)
                .where(
                    c.c.number == number.value,
                    c.c.version == customer.version,
                    c.c.erased.is_(False),
                )
                .values(**row)
            )
            if result.rowcount != 1:
                raise _stale(number, None, customer.version)
            for child in (t.customer_emails, t.customer_phones, t.customer_tags):
                conn.execute(delete(child).where(child.c.customer == number.value))
            self._insert_children(conn, emails, phones, tags)
        customer.version += 1

    def erase(self, number: CrmNumber) -> None:
        conn = self._uow._write()
        t = self._t
        with translated("customer"):
            self._uow._require_customers(conn, [number.value])
            key = number.value
            for child in (
                t.segment_members,
                t.customer_emails,
                t.customer_phones,
                t.customer_tags,
                t.transactions,
                t.interactions,
                t.aggregates,
            ):
                conn.execute(delete(child).where(child.c.customer == key))
            blank = {
                col.name: None
                for col in t.customers.c
                if col.name not in {"number", "erased", "version"}
            }
            conn.execute(
                update(t.customers)
                .where(t.customers.c.number == key)
                .values(erased=True, version=t.customers.c.version + 1, **blank)
            )

    # -- reads --------------------------------------------------------------------------

    def _load(self, conn: Connection, where: Any, *, limit: int | None = None) -> list[Customer]:
        t = self._t
        c = t.customers
        query = select(c).where(where, c.c.erased.is_(False)).order_by(c.c.number)
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query).mappings().all()
        if not rows:
            return []
        numbers = [r["number"] for r in rows]
        emails: dict[str, list[Any]] = defaultdict(list)
        phones: dict[str, list[Any]] = defaultdict(list)
        tags: dict[str, list[str]] = defaultdict(list)
        for chunk in _chunks(numbers):
            e, p, g = t.customer_emails, t.customer_phones, t.customer_tags
            for r in conn.execute(
                select(e).where(e.c.customer.in_(chunk)).order_by(e.c.customer, e.c.position)
            ).mappings():
                emails[r["customer"]].append(r)
            for r in conn.execute(
                select(p).where(p.c.customer.in_(chunk)).order_by(p.c.customer, p.c.position)
            ).mappings():
                phones[r["customer"]].append(r)
            for customer, tag in conn.execute(
                select(g.c.customer, g.c.tag).where(g.c.customer.in_(chunk))
            ):
                tags[customer].append(tag)
        return [
            customer_from_row(r, emails[r["number"]], phones[r["number"]], tags[r["number"]])
            for r in rows
        ]

    def get(self, number: CrmNumber) -> Customer:
        conn = self._uow._read()
        with translated("customer"):
            found = self._load(conn, self._t.customers.c.number == _key(number))
            if not found:
                state = self._uow._alive(conn, [_key(number)])
                if state:
                    raise ErasedError("customer", number)
                raise NotFound("customer", number)
        return found[0]

    def find(self, number: CrmNumber) -> Customer | None:
        conn = self._uow._read()
        with translated("customer"):
            found = self._load(conn, self._t.customers.c.number == _key(number))
        return found[0] if found else None

    def find_by_email(self, email: str) -> Sequence[Customer]:
        conn = self._uow._read()
        try:
            key = email_lookup_key(email)
        except ValidationError:
            return []
        e = self._t.customer_emails
        with translated("customer"):
            return self._load(
                conn,
                self._t.customers.c.number.in_(select(e.c.customer).where(e.c.lookup_key == key)),
            )

    def find_by_phone(self, e164: str) -> Sequence[Customer]:
        conn = self._uow._read()
        p = self._t.customer_phones
        with translated("customer"):
            return self._load(
                conn, self._t.customers.c.number.in_(select(p.c.customer).where(p.c.e164 == e164))
            )

    def find_by_external_id(self, source: str, external_id: str) -> Customer | None:
        conn = self._uow._read()
        c = self._t.customers
        with translated("customer"):
            found = self._load(conn, and_(c.c.source == source, c.c.external_id == external_id))
        return found[0] if found else None

    def numbers_by_external_id(
        self, source: str, external_ids: Collection[str]
    ) -> dict[str, CrmNumber]:
        conn = self._uow._read()
        c = self._t.customers.c
        out: dict[str, CrmNumber] = {}
        with translated("customer"):
            for part in _chunks(sorted(external_ids)):
                query = select(c.external_id, c.number).where(
                    and_(c.source == source, c.external_id.in_(part), c.erased.is_(False))
                )
                for external_id, number in conn.execute(query):
                    out[external_id] = CrmNumber(number)
        return out

    def existing(self, numbers: Collection[CrmNumber]) -> set[CrmNumber]:
        conn = self._uow._read()
        c = self._t.customers.c
        out: set[CrmNumber] = set()
        with translated("customer"):
            for part in _chunks(sorted(n.value for n in numbers)):
                query = select(c.number).where(and_(c.number.in_(part), c.erased.is_(False)))
                out.update(CrmNumber(number) for (number,) in conn.execute(query))
        return out

    def external_ids(self) -> dict[CrmNumber, str]:
        conn = self._uow._read()
        c = self._t.customers.c
        query = select(c.number, c.external_id).where(
            and_(c.external_id.is_not(None), c.erased.is_(False))
        )
        with translated("customer"):
            return {CrmNumber(number): external for number, external in conn.execute(query)}

    def count(self) -> int:
        conn = self._uow._read()
        c = self._t.customers
        with translated("customer"):
            return int(
                conn.execute(
                    select(func.count()).select_from(c).where(c.c.erased.is_(False))
                ).scalar_one()
            )

    def numbers(self) -> Sequence[CrmNumber]:
        conn = self._uow._read()
        c = self._t.customers
        with translated("customer"):
            rows = conn.execute(
                select(c.c.number).where(c.c.erased.is_(False)).order_by(c.c.number)
            ).scalars()
            return [CrmNumber(n) for n in rows]

    def iter_all(self, batch_size: int = 1000) -> Iterator[Customer]:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be a positive integer")
        c = self._t.customers
        after = ""
        while True:
            conn = self._uow._read()
            with translated("customer"):
                batch = self._load(conn, c.c.number > after, limit=batch_size)
            yield from batch
            if len(batch) < batch_size:
                return
            after = batch[-1].number.value


def _key(number: CrmNumber) -> str:
    if not isinstance(number, CrmNumber):
        raise ValidationError("number", number, "must be a CrmNumber (parse text first)")
    return number.value


def _stale(number: CrmNumber, stored: int | None, yours: int) -> ConcurrencyError:
    told = "" if stored is None else f"stored version {stored}, "
    return ConcurrencyError(
        f"customer {number} was changed by someone else ({told}yours {yours}); reload and retry"
    )


def _zero_aggregate(number: str) -> dict[str, Any]:
    return {
        "customer": number,
        "purchase_count": 0,
        "refund_count": 0,
        "purchase_minor": 0,
        "refund_minor": 0,
        "first_purchase_at": None,
        "last_purchase_at": None,
        "interaction_count": 0,
        "complaint_count": 0,
        "last_interaction_at": None,
        "first_purchase_us": None,
        "last_purchase_us": None,
        "last_interaction_us": None,
    }


def _validate_limit(limit: int | None, before: dt.datetime | None) -> dt.datetime | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValidationError("limit", limit, "must be a non-negative integer")
    return None if before is None else aware_utc("before", before)


class _History(abc.ABC):
    """Shared add/get/list logic of interactions and transactions."""

    kind = "record"

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow
        self._t = uow._t

    @abc.abstractmethod
    def _table(self) -> Table:
        """Overridden by both subclasses."""

    @abc.abstractmethod
    def _from_row(self, row: Any) -> Any:
        """Overridden by both subclasses."""

    @abc.abstractmethod
    def _fold(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Overridden by both subclasses."""

    def _store(self, rows: list[dict[str, Any]]) -> int:
        """Insert rows skipping known (source, external_ref); fold the new ones in aggregates."""
        conn = self._uow._write()
        if not rows:
            return 0
        table = self._table()
        with translated(self.kind):
            self._uow._require_customers(conn, (r["customer"] for r in rows))
            # As the in-memory store, row by row: "already recorded" (a stored reference, or
            # one earlier in the batch: the first wins) wins over "id taken", so retrying the
            # very same record is a no-op; only a record with a new reference (or none) whose
            # id is taken is a DuplicateError.
            wanted = sorted(
                {(r["source"], r["external_ref"]) for r in rows if r["external_ref"] is not None}
            )
            refs = self._uow._refs_in(conn, table, wanted)
            unique: list[dict[str, Any]] = []
            ids: set[uuid.UUID] = set()
            for r in rows:
                if r["external_ref"] is not None:
                    ref = (r["source"], r["external_ref"])
                    if ref in refs:
                        continue
                    refs.add(ref)
                if r["id"] in ids:
                    raise DuplicateError(f"{self.kind} id", r["id"])
                ids.add(r["id"])
                unique.append(r)
            for where in self._uow._where_in(table.c.id, [r["id"] for r in unique]):
                hit = conn.execute(select(table.c.id).where(where).limit(1)).first()
                if hit is not None:
                    raise DuplicateError(f"{self.kind} id", _as_uuid(hit[0]))
            if not unique:
                return 0
            new = self._insert(conn, table, unique)
            if new:
                self._fold(conn, new)
        return len(new)

    def _insert(
        self, conn: Connection, table: Table, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Insert skipping stored references; return the rows that were new.

        One executemany (multi-row VALUES / pipelined) with the dialect's "skip on conflict"
        (ON CONFLICT DO NOTHING, ON DUPLICATE KEY UPDATE id = id). When the driver reports
        fewer rows than were sent, or cannot tell (MySQL's found-rows count reports a skipped
        duplicate like an inserted row), the ids (pre-checked to be new) are looked up to
        tell which rows landed; this stays exact when a concurrent unit recorded some of the
        same references first.
        """
        bulk = self._uow._bulk_insert(conn, table, list(rows[0]), ignoring_refs=True)
        if bulk is None:
            stmt = self._uow._insert_ignoring_refs(table)
            rowcount = conn.execute(stmt, rows[0] if len(rows) == 1 else rows).rowcount
        else:
            rowcount = bulk.execute(conn, [[r[c] for r in rows] for c in bulk.columns])
        if rowcount == len(rows) and self._uow._store._dialect.name not in ("mysql", "mariadb"):
            return rows
        inserted: set[uuid.UUID] = set()
        for where in self._uow._where_in(table.c.id, [r["id"] for r in rows]):
            inserted.update(
                _as_uuid(i) for i in conn.execute(select(table.c.id).where(where)).scalars()
            )
        return [r for r in rows if _as_uuid(r["id"]) in inserted]

    def _get(self, item_id: uuid.UUID) -> Any:
        conn = self._uow._read()
        if not isinstance(item_id, uuid.UUID):
            raise NotFound(self.kind, item_id)
        table = self._table()
        with translated(self.kind):
            row = conn.execute(select(table).where(table.c.id == item_id)).mappings().first()
        if row is None:
            raise NotFound(self.kind, item_id)
        return self._from_row(row)

    def _by_ref(self, source: str, external_ref: str) -> Any:
        conn = self._uow._read()
        table = self._table()
        with translated(self.kind):
            row = (
                conn.execute(
                    select(table).where(
                        table.c.source == source, table.c.external_ref == external_ref
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else self._from_row(row)

    def _for_customer(
        self, number: CrmNumber, limit: int | None, before: dt.datetime | None
    ) -> list[Any]:
        conn = self._uow._read()
        cutoff = _validate_limit(limit, before)
        table = self._table()
        query = (
            select(table)
            .where(table.c.customer == _key(number))
            .order_by(table.c.occurred_at.desc(), table.c.id.desc())
        )
        if cutoff is not None:
            query = query.where(table.c.occurred_at < cutoff)
        if limit is not None:
            query = query.limit(limit)
        with translated(self.kind):
            rows = conn.execute(query).mappings().all()
        # Ids sort like uuid.int on every dialect (see RECORD_ID), so the database picks the
        # same rows for ``limit`` as the in-memory store, in the same order.
        return [self._from_row(r) for r in rows]


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class _Interactions(_History):
    kind = "interaction"

    def _table(self) -> Table:
        return self._t.interactions

    def _from_row(self, row: Any) -> Interaction:
        return interaction_from_row(row)

    def add(self, interaction: Interaction) -> bool:
        return self.add_many([interaction]) == 1

    def add_many(self, interactions: Sequence[Interaction]) -> int:
        items = list(interactions)
        for item in items:
            if not isinstance(item, Interaction):
                raise ValidationError("interaction", item, "must be an Interaction")
        return self._store([interaction_row(i) for i in items])

    def _fold(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        per: dict[str, list[Any]] = {}
        complaint = InteractionKind.COMPLAINT.value
        for r in rows:
            acc = per.setdefault(r["customer"], [0, 0, r["occurred_at"], r["occurred_us"]])
            acc[0] += 1
            acc[1] += r["kind"] == complaint
            acc[2] = max(acc[2], r["occurred_at"])
            acc[3] = max(acc[3], r["occurred_us"])
        _fold_aggregates(
            self._uow,
            conn,
            [
                {
                    "customer": k,
                    "interaction_count": v[0],
                    "complaint_count": v[1],
                    "last_interaction_at": v[2],
                    "last_interaction_us": v[3],
                }
                for k, v in per.items()
            ],
            add=("interaction_count", "complaint_count"),
            latest=("last_interaction_at", "last_interaction_us"),
        )

    def get(self, interaction_id: uuid.UUID) -> Interaction:
        result: Interaction = self._get(interaction_id)
        return result

    def find_by_external_ref(self, source: str, external_ref: str) -> Interaction | None:
        result: Interaction | None = self._by_ref(source, external_ref)
        return result

    def for_customer(
        self, number: CrmNumber, *, limit: int | None = None, before: dt.datetime | None = None
    ) -> Sequence[Interaction]:
        return self._for_customer(number, limit, before)


def _later(column: Any, value: Any) -> Any:
    """``max(column, value)`` with NULL as "nothing yet" (one SET expression)."""
    return case((or_(column.is_(None), column < value), value), else_=column)


def _earlier(column: Any, value: Any) -> Any:
    """``min(column, value)`` with NULL as "nothing yet"."""
    return case((or_(column.is_(None), column > value), value), else_=column)


_ERASED_WHILE_RECORDING = (
    "a customer was erased by a concurrent unit of work while recording; retry"
)


def _fold_aggregates(
    uow: SqlUnitOfWork,
    conn: Connection,
    deltas: list[dict[str, Any]],
    *,
    add: Sequence[str] = (),
    earliest: Sequence[str] = (),
    latest: Sequence[str] = (),
) -> None:
    """Fold per-customer ``deltas`` (``customer`` plus the named columns, one per customer)
    into the stored aggregate rows: ``add`` columns are summed, ``earliest`` / ``latest``
    keep the min / max with NULL as "nothing yet". Every customer's aggregate row must
    exist (the customers were checked in this transaction; a concurrent erase deletes the
    row): a missing one is a :class:`ConcurrencyError`.

    One statement on PostgreSQL (``UPDATE ... FROM unnest(arrays)``); on MySQL / MariaDB a
    locking read of the rows, then a multi-row ``INSERT ... ON DUPLICATE KEY UPDATE`` of
    the deltas (pymysql batches INSERTs, not UPDATEs); one executemany UPDATE elsewhere.
    """
    if not deltas:
        return
    a = uow._t.aggregates
    columns = [*add, *earliest, *latest]
    name = uow._store._dialect.name

    def folded(value: Any) -> dict[str, Any]:
        sets: dict[str, Any] = {c: a.c[c] + value(c) for c in add}
        sets.update((c, _earlier(a.c[c], value(c))) for c in earliest)
        sets.update((c, _later(a.c[c], value(c))) for c in latest)
        return sets

    if name == "postgresql":
        source = (
            func.unnest(
                literal([d["customer"] for d in deltas], ARRAY(a.c.customer.type)),
                *(literal([d[c] for d in deltas], ARRAY(a.c[c].type)) for c in columns),
            )
            .table_valued("customer", *columns)
            .render_derived()
        )
        stmt: Any = (
            update(a).where(a.c.customer == source.c.customer).values(folded(lambda c: source.c[c]))
        )
        if conn.execute(stmt).rowcount != len(deltas):
            raise ConcurrencyError(_ERASED_WHILE_RECORDING)
        return
    if name in ("mysql", "mariadb"):
        # Lock the aggregate rows first (a locking read sees the latest committed state and
        # keeps a concurrent erase from deleting them before the upsert): the upsert must
        # only ever update. Its row count cannot tell (MariaDB's found-rows count reports an
        # updated row and an inserted one alike).
        wanted = sorted(d["customer"] for d in deltas)
        found = 0
        for where in uow._where_in(a.c.customer, wanted):
            found += len(conn.execute(select(a.c.customer).where(where).with_for_update()).all())
        if found != len(wanted):
            raise ConcurrencyError(_ERASED_WHILE_RECORDING)
        upsert = mysql_insert(a)
        stmt = upsert.on_duplicate_key_update(folded(lambda c: upsert.inserted[c]))
        # The inserted values are the deltas over a zero row (every NOT NULL column set);
        # the checked rows exist, so each one is an update.
        rows = [_zero_aggregate(d["customer"]) | d for d in deltas]
        bulk = uow._bulk_insert(
            conn, a, list(rows[0]), ignoring_refs=False, stmt=stmt, tag=f"fold:{','.join(columns)}"
        )
        if bulk is None:
            conn.execute(stmt, rows)
        else:
            bulk.execute(conn, [[r[c] for r in rows] for c in bulk.columns])
        return
    stmt = update(a).where(a.c.customer == bindparam("b_customer"))
    stmt = stmt.values(folded(lambda c: bindparam(f"b_{c}")))
    params = [{f"b_{k}": v for k, v in d.items()} for d in deltas]
    result = conn.execute(stmt, params)
    if result.rowcount not in (-1, len(params)):
        raise ConcurrencyError(_ERASED_WHILE_RECORDING)


class _Transactions(_History):
    kind = "transaction"

    def _table(self) -> Table:
        return self._t.transactions

    def _from_row(self, row: Any) -> Transaction:
        return transaction_from_row(row, self._uow._store.reporting_currency)

    def add(self, transaction: Transaction) -> bool:
        return self.add_many([transaction]) == 1

    def add_many(self, transactions: Sequence[Transaction]) -> int:
        items = list(transactions)
        currency = self._uow._store.reporting_currency
        for item in items:
            if not isinstance(item, Transaction):
                raise ValidationError("transaction", item, "must be a Transaction")
            if item.reporting_total is None:
                raise ValidationError(
                    "reporting_total", None, "must be set before storing (the services do this)"
                )
            if item.reporting_total.currency != currency:
                raise ValidationError(
                    "reporting_total.currency",
                    item.reporting_total.currency,
                    f"must be the store's reporting currency {currency}",
                )
        return self._store([transaction_row(t) for t in items])

    def _fold(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        purchases: dict[str, list[Any]] = {}
        refunds: dict[str, list[int]] = {}
        purchase = TransactionKind.PURCHASE.value
        for r in rows:
            at, us = r["occurred_at"], r["occurred_us"]
            if r["kind"] == purchase:
                acc = purchases.setdefault(r["customer"], [0, 0, at, at, us, us])
                acc[0] += 1
                acc[1] += r["reporting_minor"]
                acc[2] = min(acc[2], at)
                acc[3] = max(acc[3], at)
                acc[4] = min(acc[4], us)
                acc[5] = max(acc[5], us)
            else:
                racc = refunds.setdefault(r["customer"], [0, 0])
                racc[0] += 1
                racc[1] += r["reporting_minor"]
        _fold_aggregates(
            self._uow,
            conn,
            [
                {
                    "customer": k,
                    "purchase_count": v[0],
                    "purchase_minor": v[1],
                    "first_purchase_at": v[2],
                    "last_purchase_at": v[3],
                    "first_purchase_us": v[4],
                    "last_purchase_us": v[5],
                }
                for k, v in purchases.items()
            ],
            add=("purchase_count", "purchase_minor"),
            earliest=("first_purchase_at", "first_purchase_us"),
            latest=("last_purchase_at", "last_purchase_us"),
        )
        _fold_aggregates(
            self._uow,
            conn,
            [
                {"customer": k, "refund_count": v[0], "refund_minor": v[1]}
                for k, v in refunds.items()
            ],
            add=("refund_count", "refund_minor"),
        )

    def get(self, transaction_id: uuid.UUID) -> Transaction:
        result: Transaction = self._get(transaction_id)
        return result

    def find_by_external_ref(self, source: str, external_ref: str) -> Transaction | None:
        result: Transaction | None = self._by_ref(source, external_ref)
        return result

    def for_customer(
        self, number: CrmNumber, *, limit: int | None = None, before: dt.datetime | None = None
    ) -> Sequence[Transaction]:
        return self._for_customer(number, limit, before)


class _Aggregates:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow
        self._t = uow._t

    def get(self, number: CrmNumber) -> CustomerAggregate:
        conn = self._uow._read()
        a = self._t.aggregates
        with translated("customer"):
            self._uow._require_customers(conn, [_key(number)])
            row = conn.execute(select(a).where(a.c.customer == number.value)).mappings().first()
        if row is None:
            return CustomerAggregate(customer=number)
        return CustomerAggregate(
            customer=number,
            purchase_count=int(row["purchase_count"]),
            refund_count=int(row["refund_count"]),
            purchase_minor=int(row["purchase_minor"]),
            refund_minor=int(row["refund_minor"]),
            first_purchase_at=row["first_purchase_at"],
            last_purchase_at=row["last_purchase_at"],
            interaction_count=int(row["interaction_count"]),
            complaint_count=int(row["complaint_count"]),
            last_interaction_at=row["last_interaction_at"],
        )


class _Segments:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow
        self._t = uow._t

    def save(self, segment: Segment) -> None:
        conn = self._uow._write()
        if not isinstance(segment, Segment):
            raise ValidationError("segment", segment, "must be a Segment")
        s = self._t.segments
        with translated("segment"):
            result = conn.execute(
                update(s)
                .where(s.c.name == segment.name)
                .values(rule=segment.rule, description=segment.description)
            )
            if result.rowcount == 0:
                exists = conn.execute(select(s.c.name).where(s.c.name == segment.name)).first()
                if exists is None:
                    conn.execute(
                        insert(s).values(
                            name=segment.name, rule=segment.rule, description=segment.description
                        )
                    )

    def _row(self, conn: Connection, name: str) -> Any:
        s = self._t.segments
        return conn.execute(select(s).where(s.c.name == name)).mappings().first()

    def get(self, name: str) -> Segment:
        conn = self._uow._read()
        with translated("segment"):
            row = self._row(conn, name)
        if row is None:
            raise NotFound("segment", name)
        return Segment(name=row["name"], rule=row["rule"], description=row["description"])

    def list(self) -> Sequence[Segment]:
        conn = self._uow._read()
        s = self._t.segments
        with translated("segment"):
            rows = conn.execute(select(s).order_by(s.c.name)).mappings().all()
        return [Segment(name=r["name"], rule=r["rule"], description=r["description"]) for r in rows]

    def delete(self, name: str) -> None:
        conn = self._uow._write()
        t = self._t
        with translated("segment"):
            if self._row(conn, name) is None:
                raise NotFound("segment", name)
            conn.execute(delete(t.segment_members).where(t.segment_members.c.segment == name))
            conn.execute(delete(t.segment_runs).where(t.segment_runs.c.segment == name))
            conn.execute(delete(t.segments).where(t.segments.c.name == name))

    def save_membership(self, membership: SegmentMembership) -> None:
        conn = self._uow._write()
        if not isinstance(membership, SegmentMembership):
            raise ValidationError("membership", membership, "must be a SegmentMembership")
        t = self._t
        r = t.segment_runs
        with translated("segment run"):
            if self._row(conn, membership.segment) is None:
                raise NotFound("segment", membership.segment)
            clash = conn.execute(
                select(r.c.segment).where(
                    r.c.segment == membership.segment, r.c.as_of == membership.as_of
                )
            ).first()
            if clash is not None:
                raise DuplicateError(
                    "segment run", f"{membership.segment} as of {membership.as_of.isoformat()}"
                )
            conn.execute(insert(r).values(segment=membership.segment, as_of=membership.as_of))
            members = [
                {"segment": membership.segment, "as_of": membership.as_of, "customer": n.value}
                for n in sorted(membership.members)
            ]
            if members:
                conn.execute(insert(t.segment_members), members)

    def latest_membership(
        self, name: str, *, before: dt.datetime | None = None
    ) -> SegmentMembership | None:
        conn = self._uow._read()
        t = self._t
        r = t.segment_runs
        query = select(r.c.as_of).where(r.c.segment == name)
        if before is not None:
            query = query.where(r.c.as_of < aware_utc("before", before))
        with translated("segment run"):
            as_of = conn.execute(query.order_by(r.c.as_of.desc()).limit(1)).scalar()
            if as_of is None:
                return None
            m = t.segment_members
            members = conn.execute(
                select(m.c.customer).where(m.c.segment == name, m.c.as_of == as_of)
            ).scalars()
            return SegmentMembership(
                segment=name, as_of=as_of, members=frozenset(CrmNumber(n) for n in members)
            )
