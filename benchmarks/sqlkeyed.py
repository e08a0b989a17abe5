"""``sql-sqlite-keyed``, ``sql-postgresql-keyed``, ``sql-mariadb-keyed``: the ingest a careful
user would write by hand for the same guarantees crmcore's SQL store gives (raw DB-API).

The narrow baselines (:mod:`benchmarks.sqlbase`) load integer-keyed tables without primary
key, unique constraint or foreign key and build their one index after the load; crmcore's
tables have all of those from the start. These baselines load tables declared like
crmcore's customers, customer tags, aggregates, transactions and interactions (the same
column types per dialect, primary keys, ``(source, external_ref)`` unique constraints,
foreign keys to the customer and indexes, see ``adapters/sqlalchemy/_tables.py``), created
with their constraints and indexes *before* the load, as crmcore's are. Rows carry what
crmcore stores for the benchmark's import (CRM-number text references, time-ordered UUID
ids, enumeration labels as text, instants as naive UTC timestamps plus their microseconds);
columns that stay NULL are left out of the load. The bulk mechanism is the narrow
baseline's (``COPY`` on PostgreSQL, ``executemany`` of tuples on SQLite, ``LOAD DATA LOCAL
INFILE`` on MariaDB), then one ``INSERT ... SELECT ... GROUP BY`` fills the per-customer
aggregates, all in one transaction, then ``ANALYZE``.

Only the ingest workload exists here: there is nothing new to learn from running the
analytics over these tables (the narrow baselines do that), so the harness runs them with
the ingest alone and the other workloads refuse.
"""

from __future__ import annotations

import io
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from typing import Any, Final, NoReturn

import numpy as np
import numpy.typing as npt

from benchmarks.data import STAGES, Store, read_arrays
from benchmarks.impl import Implementation, IngestCheck, Refreshed
from benchmarks.spec import RfmResult
from benchmarks.sqlbase import SqlMariadb, SqlPostgres

PREFIX: Final = "bk_"
CHUNK: Final = 262_144
"""Rows loaded per statement / CSV file: the batch size of crmcore's benchmark import."""

# crmcore's enumeration values by the generator's codes (the worker of a baseline does not
# import crmcore, so its modules never count in the baseline's memory).
_TX_KINDS: Final = ("purchase", "refund")
_SALES: Final = ("online", "store", "phone", "partner", "marketplace", "other")
_CONTACT: Final = ("phone", "email", "sms", "chat", "social", "visit", "web", "other")
_KINDS: Final = ("inquiry", "complaint", "feedback", "support", "sales", "care")
_DIRECTIONS: Final = ("inbound", "outbound")

# Per dialect: record id, instant, unbounded text, boolean, and the table options.
_TYPES: Final = {
    "postgresql": ("UUID", "TIMESTAMP WITHOUT TIME ZONE", "TEXT", "BOOLEAN", ""),
    "sqlite": ("CHAR(32)", "DATETIME", "TEXT", "BOOLEAN", ""),
    "mariadb": (
        "CHAR(32)",
        "DATETIME(6)",
        "LONGTEXT",
        "BOOL",
        " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ),
}


def quoted(dialect: str, column: str) -> str:
    """``column`` as an identifier (``lines`` is a reserved word on MariaDB)."""
    return f"`{column}`" if dialect == "mariadb" else f'"{column}"'


def keyed_ddl(dialect: str) -> list[str]:
    """CREATE TABLE and CREATE INDEX statements mirroring crmcore's tables on ``dialect``."""
    rid, ts, long, boolean, options = _TYPES[dialect]
    p = PREFIX

    def quote(column: str) -> str:
        return quoted(dialect, column)

    def fk(table: str) -> str:
        return (
            f"CONSTRAINT fk_{p}{table}_customer_{p}customers FOREIGN KEY (customer) "
            f"REFERENCES {p}customers (number)"
        )

    tables = {
        "customers": f"""
            number VARCHAR(32) NOT NULL, erased {boolean} NOT NULL,
            given_name VARCHAR(200), family_name VARCHAR(200), display_name VARCHAR(400),
            gender VARCHAR(32), birth_date DATE, title VARCHAR(100), job_title VARCHAR(200),
            organisation VARCHAR(200), preferred_channel VARCHAR(32), stage VARCHAR(32),
            owner VARCHAR(200), source VARCHAR(100), external_id VARCHAR(200),
            addresses {long}, attributes {long}, stage_history {long},
            created_at {ts}, updated_at {ts}, version INTEGER NOT NULL, anonymised_at {ts},
            created_us BIGINT,
            country VARCHAR(2), birth_year INTEGER,
            CONSTRAINT pk_{p}customers PRIMARY KEY (number),
            CONSTRAINT uq_{p}customers_source_external_id UNIQUE (source, external_id)""",
        "customer_tags": f"""
            customer VARCHAR(32) NOT NULL, tag VARCHAR(64) NOT NULL,
            CONSTRAINT pk_{p}customer_tags PRIMARY KEY (customer, tag), {fk("customer_tags")}""",
        "aggregates": f"""
            customer VARCHAR(32) NOT NULL, purchase_count BIGINT NOT NULL,
            refund_count BIGINT NOT NULL, purchase_minor BIGINT NOT NULL,
            refund_minor BIGINT NOT NULL, first_purchase_at {ts}, last_purchase_at {ts},
            interaction_count BIGINT NOT NULL, complaint_count BIGINT NOT NULL,
            last_interaction_at {ts}, first_purchase_us BIGINT, last_purchase_us BIGINT,
            last_interaction_us BIGINT,
            CONSTRAINT pk_{p}aggregates PRIMARY KEY (customer), {fk("aggregates")}""",
        "transactions": f"""
            customer VARCHAR(32) NOT NULL, id {rid} NOT NULL, occurred_at {ts} NOT NULL,
            kind VARCHAR(32) NOT NULL, amount_minor BIGINT NOT NULL,
            currency VARCHAR(3) NOT NULL, reporting_minor BIGINT NOT NULL,
            channel VARCHAR(32) NOT NULL, source VARCHAR(100), external_ref VARCHAR(200),
            {quote("lines")} {long} NOT NULL, occurred_us BIGINT NOT NULL,
            CONSTRAINT pk_{p}transactions PRIMARY KEY (id),
            CONSTRAINT uq_{p}transactions_source_external_ref UNIQUE (source, external_ref),
            {fk("transactions")}""",
        "interactions": f"""
            customer VARCHAR(32) NOT NULL, id {rid} NOT NULL, occurred_at {ts} NOT NULL,
            channel VARCHAR(32) NOT NULL, direction VARCHAR(32) NOT NULL,
            kind VARCHAR(32) NOT NULL, subject VARCHAR(500), notes {long},
            outcome VARCHAR(500), agent VARCHAR(200), follow_up_due {ts},
            source VARCHAR(100), external_ref VARCHAR(200), occurred_us BIGINT NOT NULL,
            sealed {long}, key_id VARCHAR(16),
            CONSTRAINT pk_{p}interactions PRIMARY KEY (id),
            CONSTRAINT uq_{p}interactions_source_external_ref UNIQUE (source, external_ref),
            {fk("interactions")}""",
    }
    indexes = (
        ("customer_tags", "tag"),
        ("transactions", "customer", "occurred_at"),
        ("transactions", "occurred_us"),
        ("interactions", "customer", "occurred_at"),
        ("interactions", "occurred_us"),
    )
    out = [f"DROP TABLE IF EXISTS {p}{name}" for name in reversed(tables)]
    out += [f"CREATE TABLE {p}{name} ({body}){options}" for name, body in tables.items()]
    out += [
        f"CREATE INDEX ix_{p}{table}_{'_'.join(cols)} ON {p}{table} ({', '.join(cols)})"
        for table, *cols in indexes
    ]
    return out


AGGREGATES_SQL: Final = f"""
INSERT INTO {PREFIX}aggregates (customer, purchase_count, refund_count, purchase_minor,
    refund_minor, first_purchase_at, last_purchase_at, interaction_count, complaint_count,
    last_interaction_at, first_purchase_us, last_purchase_us, last_interaction_us)
SELECT c.number, COALESCE(t.pc, 0), COALESCE(t.rc, 0), COALESCE(t.pm, 0), COALESCE(t.rm, 0),
    t.fa, t.la, COALESCE(i.n, 0), COALESCE(i.cc, 0), i.la, t.fu, t.lu, i.lu
FROM {PREFIX}customers c
LEFT JOIN (
    SELECT customer,
        SUM(CASE WHEN kind = 'purchase' THEN 1 ELSE 0 END) AS pc,
        SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END) AS rc,
        SUM(CASE WHEN kind = 'purchase' THEN reporting_minor ELSE 0 END) AS pm,
        SUM(CASE WHEN kind = 'refund' THEN reporting_minor ELSE 0 END) AS rm,
        MIN(CASE WHEN kind = 'purchase' THEN occurred_at END) AS fa,
        MAX(CASE WHEN kind = 'purchase' THEN occurred_at END) AS la,
        MIN(CASE WHEN kind = 'purchase' THEN occurred_us END) AS fu,
        MAX(CASE WHEN kind = 'purchase' THEN occurred_us END) AS lu
    FROM {PREFIX}transactions GROUP BY customer
) t ON t.customer = c.number
LEFT JOIN (
    SELECT customer, COUNT(*) AS n,
        SUM(CASE WHEN kind = 'complaint' THEN 1 ELSE 0 END) AS cc,
        MAX(occurred_at) AS la, MAX(occurred_us) AS lu
    FROM {PREFIX}interactions GROUP BY customer
) i ON i.customer = c.number
"""

CHECK_SQL: Final = (
    f"SELECT (SELECT COUNT(*) FROM {PREFIX}customers), SUM(purchase_count + refund_count), "
    f"SUM(interaction_count), SUM(purchase_minor - refund_minor) FROM {PREFIX}aggregates"
)
"""Counts and the net money total read back from the aggregates (so the fold is checked)."""


def time_ordered_ids(count: int) -> Any:
    """``count`` ascending version-7 UUIDs (48-bit millisecond time, then random bits) as an
    Arrow string array of 32 lower-case hex digits: the ids crmcore gives imported rows, so
    the primary key's B-tree grows at its right edge here too."""
    import pyarrow as pa

    rand = np.frombuffer(os.urandom(16 * count), dtype=">u8").reshape(-1, 2).astype(np.uint64)
    millis = np.uint64(time.time_ns() // 1_000_000 & 0xFFFFFFFFFFFF)
    high = (millis << np.uint64(16)) | np.uint64(0x7000) | (rand[:, 0] & np.uint64(0x0FFF))
    low = (rand[:, 1] & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(1 << 63)
    order = np.lexsort((low, high))
    words = np.empty((count, 2), dtype=">u8")
    words[:, 0], words[:, 1] = high[order], low[order]
    digits = np.frombuffer(words.tobytes().hex().encode("ascii"), dtype="S32")
    return pa.array(digits, pa.binary(32)).cast(pa.string())


def keyed_tables(store: Store) -> dict[str, Any]:
    """The generated store as the rows crmcore stores for it (Arrow tables, column-wise),
    parents first: customers, customer_tags, interactions, transactions."""
    import pyarrow as pa

    def labels(values: tuple[str, ...], codes: Any) -> Any:
        return pa.array(values, pa.string()).take(pa.array(np.asarray(codes, dtype=np.int32)))

    def instants(us: Any) -> Any:
        return pa.array(np.asarray(us, dtype=np.int64), pa.timestamp("us"))

    def constant(value: Any, count: int) -> Any:
        return pa.repeat(pa.scalar(value), count)

    c, t, x = store.customers, store.transactions, store.interactions
    n = len(c)
    # CRM numbers: "C", the 9-digit sequence (id + 1), a check digit (its width is what
    # matters to the keys; crmcore's check digit is computed, this one is a stand-in).
    seq = np.arange(1, n + 1)
    numbers = pa.array([f"C{s:09d}{s % 10}" for s in seq.tolist()], pa.string())
    created = instants(c["created_us"])
    customers = pa.table(
        {
            "number": numbers,
            "erased": constant(False, n),
            "given_name": constant("Customer", n),
            "family_name": pa.array(np.arange(n).astype(str), pa.string()),
            "display_name": pa.array([f"Customer {i}" for i in range(n)], pa.string()),
            "stage": labels(STAGES, c["stage"]),
            "addresses": constant("[]", n),
            "attributes": constant("{}", n),
            "stage_history": constant("[]", n),
            "created_at": created,
            "updated_at": created,
            "version": constant(1, n),
            "created_us": pa.array(c["created_us"], pa.int64()),
        }
    )
    vip, news = np.flatnonzero(c["vip"]), np.flatnonzero(c["newsletter"])
    tags = pa.table(
        {
            "customer": numbers.take(pa.array(np.concatenate([vip, news]))),
            "tag": pa.array(["vip"] * len(vip) + ["newsletter"] * len(news), pa.string()),
        }
    )
    interactions = pa.table(
        {
            "customer": numbers.take(pa.array(x["customer_id"])),
            "id": time_ordered_ids(len(x)),
            "occurred_at": instants(x["occurred_us"]),
            "channel": labels(_CONTACT, x["channel"]),
            "direction": labels(_DIRECTIONS, x["direction"]),
            "kind": labels(_KINDS, x["kind"]),
            "occurred_us": pa.array(x["occurred_us"], pa.int64()),
        }
    )
    transactions = pa.table(
        {
            "customer": numbers.take(pa.array(t["customer_id"])),
            "id": time_ordered_ids(len(t)),
            "occurred_at": instants(t["occurred_us"]),
            "kind": labels(_TX_KINDS, t["kind"]),
            "amount_minor": pa.array(t["amount_minor"], pa.int64()),
            "currency": constant("USD", len(t)),
            "reporting_minor": pa.array(t["amount_minor"], pa.int64()),
            "channel": labels(_SALES, t["channel"]),
            "lines": constant("[]", len(t)),
            "occurred_us": pa.array(t["occurred_us"], pa.int64()),
        }
    )
    return {
        "customers": customers,
        "customer_tags": tags,
        "interactions": interactions,
        "transactions": transactions,
    }


def _chunks(data: Any) -> Iterator[Any]:
    for offset in range(0, data.num_rows, CHUNK):
        yield data.slice(offset, CHUNK)


def _csv(data: Any) -> bytes:
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
    return buffer.getvalue()


class _Keyed(Implementation):
    dialect: str

    def connect(self) -> Any:
        raise NotImplementedError

    def prepare(self, cur: Any) -> None:
        """Connection settings crmcore's engine uses on this dialect (none by default)."""

    def load(self, cur: Any, table: str, data: Any) -> None:
        raise NotImplementedError

    def analyze(self, cur: Any) -> None:
        tables = ", ".join(f"{PREFIX}{name}" for name in _ANALYZED)
        cur.execute(f"ANALYZE {tables}")

    def ingest(self) -> IngestCheck:
        tables = keyed_tables(read_arrays(self.ctx.data_dir))
        self.conn = self.connect()
        cur = self.conn.cursor()
        self.prepare(cur)
        for ddl in keyed_ddl(self.dialect):
            cur.execute(ddl)
        self.conn.commit()
        for name, data in tables.items():
            self.load(cur, f"{PREFIX}{name}", data)
        cur.execute(AGGREGATES_SQL)
        self.conn.commit()
        self.analyze(cur)
        self.conn.commit()
        cur.execute(CHECK_SQL)
        check = IngestCheck(*(int(v) for v in cur.fetchone()))
        self.conn.commit()
        return check

    def _refuse(self) -> NoReturn:
        raise NotImplementedError(f"{self.name} is an ingest-only baseline")

    def rfm(self) -> RfmResult:
        self._refuse()

    def rules(self) -> npt.NDArray[np.int16]:
        self._refuse()

    def prepare_incremental(self) -> None:
        self._refuse()

    def refresh(self, event: Any) -> Refreshed:
        self._refuse()

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()


_ANALYZED: Final = ("customers", "customer_tags", "aggregates", "transactions", "interactions")


class KeyedSqlite(_Keyed):
    name = "sql-sqlite-keyed"
    dialect = "sqlite"

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.ctx.sqlite_path)

    def prepare(self, cur: Any) -> None:
        # What crmcore's SQLite engine sets (foreign keys enforced, WAL, NORMAL sync) and
        # the page cache it stores a batch with.
        for pragma in (
            "foreign_keys=ON",
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "cache_size=-65536",
        ):
            cur.execute(f"PRAGMA {pragma}")

    def analyze(self, cur: Any) -> None:
        for name in _ANALYZED:
            cur.execute(f"ANALYZE {PREFIX}{name}")

    def load(self, cur: Any, table: str, data: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        names = ", ".join(quoted(self.dialect, n) for n in data.column_names)
        marks = ", ".join("?" * data.num_columns)
        sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"
        for part in _chunks(data):
            columns = [
                # SQLAlchemy's SQLite DATETIME text (six fractional digits), as crmcore stores.
                pc.strftime(col, format="%Y-%m-%d %H:%M:%S")
                if pa.types.is_timestamp(col.type)
                else col
                for col in part.columns
            ]
            cur.executemany(sql, list(zip(*(col.to_pylist() for col in columns), strict=True)))


class KeyedPostgres(_Keyed):
    name = "sql-postgresql-keyed"
    dialect = "postgresql"
    connect = SqlPostgres.connect

    def load(self, cur: Any, table: str, data: Any) -> None:
        names = ", ".join(quoted(self.dialect, n) for n in data.column_names)
        with cur.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
            for part in _chunks(data):
                copy.write(_csv(part))


class KeyedMariadb(_Keyed):
    name = "sql-mariadb-keyed"
    dialect = "mariadb"
    connect = SqlMariadb.connect

    def analyze(self, cur: Any) -> None:
        cur.execute(f"ANALYZE TABLE {', '.join(PREFIX + name for name in _ANALYZED)}")
        cur.fetchall()

    def load(self, cur: Any, table: str, data: Any) -> None:
        import pyarrow as pa

        names = ", ".join(quoted(self.dialect, n) for n in data.column_names)
        # LOAD DATA reads booleans as 0/1 only.
        data = pa.table(
            [c.cast(pa.int8()) if pa.types.is_boolean(c.type) else c for c in data.columns],
            names=data.column_names,
        )
        for part in _chunks(data):
            handle, path = tempfile.mkstemp(suffix=".csv")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(_csv(part))
                cur.execute(
                    f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} CHARACTER SET utf8mb4 "
                    "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
                    f"LINES TERMINATED BY '\\n' ({names})",
                    (path,),
                )
            finally:
                os.unlink(path)
