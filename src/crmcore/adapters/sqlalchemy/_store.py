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

from sqlalchemy import Connection, Engine, MetaData

from crmcore.adapters.sqlalchemy._allocator import SqlNumberAllocator
from crmcore.adapters.sqlalchemy._binding import Binding
from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._encryption import open_encryption, reconcile
from crmcore.adapters.sqlalchemy._engine import configure_sqlite_engine, engine_for_url
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.adapters.sqlalchemy._metrics import SqlMetrics
from crmcore.adapters.sqlalchemy._rotation import RotationReport, rotate_keys
from crmcore.adapters.sqlalchemy._sealing import RowSealer
from crmcore.adapters.sqlalchemy._settings import StoreSettings, check_currency, initialize_rows
from crmcore.adapters.sqlalchemy._tables import CrmTables, build_tables
from crmcore.adapters.sqlalchemy._unit_of_work import SqlUnitOfWork
from crmcore.adapters.sqlalchemy._upsert import InsertCache
from crmcore.crypto import KeyRing
from crmcore.domain import DEFAULT_SCHEME, CrmNumberScheme
from crmcore.errors import ConfigurationError

__all__ = [
    "SqlNumberAllocator",
    "SqlStore",
    "SqlUnitOfWork",
    "configure_sqlite_engine",
    "initialize_rows",
]


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
        keyring: the keys of an encrypted store (``crmcore[crypto]``): personal fields are
            sealed on every write and opened on every read, e-mail and phone look-ups go
            through blind indexes (see ``docs/privacy-encryption.md``). ``None``: a
            plaintext store.
        encrypt_existing: with ``keyring``, turn encryption on for a store that already
            holds plaintext rows: new writes are sealed at once, the old rows stay readable
            until :meth:`rotate_keys` seals them.

    Raises:
        ConfigurationError: a conflicting reporting currency, a bad prefix, an unusable
            bind; an encrypted store opened without its keys (or with another key under a
            recorded key id), a plaintext store with rows opened with a key ring without
            ``encrypt_existing``.
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
        keyring: KeyRing | None = None,
        encrypt_existing: bool = False,
    ) -> None:
        if not isinstance(scheme, CrmNumberScheme):
            raise ConfigurationError(f"scheme must be a CrmNumberScheme, got {scheme!r}")
        self._binding = Binding(bind)
        check_currency(reporting_currency)
        self._scheme = scheme
        self._tables = build_tables(metadata, prefix=table_prefix, schema=schema)
        self._settings = StoreSettings(self._binding, self._tables, reporting_currency)
        self._owns_engine = False
        # Compiled bulk INSERTs (see _bulk.py), shared by every unit of work of the store.
        self._inserts = InsertCache(self._binding.name)
        self._allocator = SqlNumberAllocator(self._binding, self._tables)
        self._settings.refresh()
        self._keyring = keyring
        self._encrypt_existing = encrypt_existing
        self._sealer: RowSealer | None = open_encryption(
            self._binding, self._tables, keyring, encrypt_existing=encrypt_existing
        )

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
        keyring: KeyRing | None = None,
        encrypt_existing: bool = False,
    ) -> SqlStore:
        """Create a store with an engine of its own (disposed by :meth:`close`).

        Args:
            url: a SQLAlchemy URL (``sqlite:///crm.db``, ``sqlite://`` for memory,
                ``postgresql+psycopg://...``, ``mysql+pymysql://...``).
            create_schema: create crmcore's tables if missing (see :meth:`create_schema`).
            scheme: as for the constructor, and so are ``reporting_currency``,
                ``table_prefix``, ``schema``, ``metadata``, ``keyring`` and
                ``encrypt_existing``.

        Raises:
            ConfigurationError: a malformed URL, a missing driver, an unreachable database.
        """
        engine = engine_for_url(url)
        try:
            store = cls(
                engine,
                scheme=scheme,
                reporting_currency=reporting_currency,
                table_prefix=table_prefix,
                schema=schema,
                metadata=metadata,
                keyring=keyring,
                encrypt_existing=encrypt_existing,
            )
        except BaseException:
            engine.dispose()
            raise
        store._take_engine()
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
        return self._settings.reporting_currency

    @property
    def allocator(self) -> SqlNumberAllocator:
        """The CRM number allocator (a counter row, advanced in short transactions)."""
        return self._allocator

    @property
    def tables(self) -> CrmTables:
        """crmcore's ``Table`` objects."""
        return self._tables

    @property
    def encrypted(self) -> bool:
        """Whether personal fields are sealed (the store was opened with a key ring)."""
        return self._sealer is not None

    @property
    def engine(self) -> Engine | None:
        """The engine (``None`` when the store is bound to a host's connection)."""
        return self._binding.engine

    @property
    def dialect_name(self) -> str:
        """``"sqlite"``, ``"postgresql"``, ``"mysql"`` or ``"mariadb"``."""
        return self._binding.name

    def metrics_source(self) -> SqlMetrics:
        """The :class:`~crmcore.analytics.MetricsSource` of this store, computed in SQL.

        Snapshots are fetched column-wise from the maintained aggregates (or a ``GROUP BY``
        over the history for a past ``as_of``); it also selects segment members with WHERE
        clauses and scores RFM with window functions (see ``docs/analytics.md``).
        """
        return SqlMetrics(self._binding, self._tables, self, self._inserts.prepared)

    def unit_of_work(self) -> SqlUnitOfWork:
        """Start a new unit of work (enter it with ``with``)."""
        context = TransactionContext(
            tables=self._tables,
            dialect=self._binding.name,
            settings=self._settings,
            inserts=self._inserts,
            lazy_begin=self._binding.lazy_begin,
            sealer=self._sealer,
        )
        return SqlUnitOfWork(self._binding, context, self, self._allocator)

    def __repr__(self) -> str:
        return (
            f"SqlStore(dialect={self.dialect_name!r}, prefix={self._tables.prefix!r}, "
            f"schema={self._tables.schema!r}, scheme={self._scheme.prefix}/{self._scheme.width}"
            + (", encrypted)" if self._sealer is not None else ")")
        )

    # -- schema -------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create crmcore's tables (only those; existing ones are kept) and settings rows.

        Records the reporting currency (the given one, or ``USD``) if none is recorded.

        Raises:
            ConfigurationError: the database is unreachable, or records another currency.
        """
        with self._binding.admin() as conn, translated("schema"):
            self._tables.metadata.create_all(conn, tables=list(self._tables.all))
            initialize_rows(conn, self._tables, self._settings.given_currency or "USD")
            self._sealer = reconcile(
                conn, self._tables, self._keyring, encrypt_existing=self._encrypt_existing
            )
        self._settings.forget()
        self._settings.refresh()

    def drop_schema(self) -> None:
        """Drop crmcore's tables (only those) with all their rows."""
        with self._binding.admin() as conn, translated("schema"):
            self._tables.metadata.drop_all(conn, tables=list(self._tables.all))
        self._settings.forget()

    def analyze(self) -> None:
        """Refresh the database's planner statistics of crmcore's tables.

        Run it after a bulk import (or let the server's autovacuum / a DBA job do it): without
        statistics a freshly loaded PostgreSQL plans the analytics joins for a few hundred rows
        and picks nested loops over a million. ``ANALYZE`` on PostgreSQL and SQLite,
        ``ANALYZE TABLE`` on MariaDB/MySQL; only crmcore's tables, no rows are changed.
        """
        dialect = self._binding.dialect
        preparer = dialect.identifier_preparer
        with self._binding.admin() as conn, translated("schema"):
            for table in self._tables.all:
                name = preparer.format_table(table)
                if dialect.name in ("mysql", "mariadb"):
                    conn.exec_driver_sql(f"ANALYZE TABLE {name}").fetchall()
                else:
                    conn.exec_driver_sql(f"ANALYZE {name}")

    def rotate_keys(
        self, *, batch_size: int = 500, max_batches: int | None = None
    ) -> RotationReport:
        """Re-seal every row under the active data key and recompute the blind indexes under
        the active index key, ``batch_size`` rows per transaction; resumable (run it again
        after an interruption). See :func:`~crmcore.adapters.sqlalchemy.rotate_keys`."""
        if self._sealer is None:
            raise ConfigurationError("rotating keys needs the store opened with keyring=...")
        return rotate_keys(self, batch_size=batch_size, max_batches=max_batches)

    def _rotation_finished(self) -> None:
        """Every row is sealed under the active keys: plaintext rows are refused again."""
        if self._sealer is not None:
            self._sealer = RowSealer(self._sealer.cipher, allow_plain=False)

    def close(self) -> None:
        """Dispose the engine if this store created it (a host's engine is left alone)."""
        if self._owns_engine and self._binding.engine is not None:
            self._binding.engine.dispose()

    def _take_engine(self) -> None:
        """The store created its engine: dispose it on :meth:`close`; on an in-memory
        SQLite database (one shared connection) run one unit of work at a time."""
        self._owns_engine = True
        if self._binding.sqlite_memory:
            self._binding.serialize()
