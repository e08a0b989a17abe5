"""``sql-sqlite``, ``sql-postgresql`` and ``sql-mariadb``: hand-written SQL over raw tables
(DB-API directly).

The raw tables (``bench_*``) live in the same database file / server database as crmcore's
tables, so both are measured on the same engine with the same settings. Bulk load uses what a
user would: ``executemany`` in one transaction on SQLite, ``COPY`` on PostgreSQL, ``LOAD DATA LOCAL
INFILE`` of a CSV file on MariaDB.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.data import STAGES, Event, read_arrays
from benchmarks.impl import Implementation, IngestCheck, Refreshed, scatter
from benchmarks.spec import Cuts, RfmResult, metrics_from_row, rule_bits
from benchmarks.sql import (
    DDL,
    INDEXES,
    RAW,
    metrics_sql,
    one_customer_sql,
    rfm_sql,
    rules_sql,
)


def _columns(table: str, columns: dict[str, Any]) -> dict[str, Any]:
    if table == "bench_customers":
        columns = dict(columns)
        columns["stage"] = np.array(STAGES, dtype=object)[columns["stage"]]
        columns["vip"] = columns["vip"].astype(np.int16)
        columns["newsletter"] = columns["newsletter"].astype(np.int16)
    return columns


class _SqlBaseline(Implementation):
    param: str
    placeholder: str
    div = "/"  # integer division (MariaDB's / is exact: DIV)

    def analyze(self, cur: Any) -> None:
        cur.execute("ANALYZE")

    def connect(self) -> Any:
        raise NotImplementedError

    def load(self, cur: Any, table: str, columns: dict[str, Any]) -> None:
        raise NotImplementedError

    def ingest(self) -> IngestCheck:
        store = read_arrays(self.ctx.data_dir)
        self.conn = self.connect()
        cur = self.conn.cursor()
        for table in DDL:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"CREATE TABLE {table} ({DDL[table]})")
        for source, table in RAW.items():
            self.load(cur, table, _columns(table, store.tables()[source].columns))
        rows = self.ctx.segments.rows()
        cur.executemany(
            f"INSERT INTO bench_segment_map VALUES ({', '.join([self.placeholder] * 4)})", rows
        )
        for ddl in INDEXES:
            cur.execute(ddl)
        self.conn.commit()
        self.analyze(cur)
        self.conn.commit()
        cur.execute(
            "SELECT (SELECT COUNT(*) FROM bench_customers), "
            "(SELECT COUNT(*) FROM bench_transactions), (SELECT COUNT(*) FROM bench_interactions), "
            "(SELECT SUM(CASE WHEN kind = 0 THEN amount_minor ELSE -amount_minor END) "
            "FROM bench_transactions)"
        )
        return IngestCheck(*(int(x) for x in cur.fetchone()))

    def _fetch(self, sql: str) -> npt.NDArray[np.int64]:
        cur = self.conn.cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        self.conn.commit()
        return np.array(rows, dtype=np.int64).reshape(len(rows), -1)

    def rfm(self) -> RfmResult:
        res = self._fetch(
            rfm_sql(RAW["customers"], RAW["transactions"], "bench_segment_map", div=self.div)
        )
        n, ids = self.ctx.customers, res[:, 0]
        return RfmResult(
            scatter(n, ids, res[:, 1], np.int8, 0),
            scatter(n, ids, res[:, 2], np.int8, 0),
            scatter(n, ids, res[:, 3], np.int8, 0),
            scatter(n, ids, res[:, 4], np.int16, -1),
        )

    def rules(self) -> npt.NDArray[np.int16]:
        res = self._fetch(
            rules_sql(RAW["customers"], RAW["transactions"], RAW["interactions"], div=self.div)
        )
        return scatter(self.ctx.customers, res[:, 0], res[:, 1], np.int16, 0)

    def prepare_incremental(self) -> None:
        cte = metrics_sql(
            RAW["customers"], RAW["transactions"], "", div=self.div, with_profile=False
        )
        res = self._fetch(
            f"WITH {cte} SELECT recency_days, frequency, monetary FROM m WHERE frequency > 0"
        )
        self.cuts = Cuts.from_metrics(res[:, 0], res[:, 1], res[:, 2])
        self.one = one_customer_sql(
            RAW["transactions"], RAW["interactions"], RAW["customers"], self.param
        )
        self.insert = (
            f"INSERT INTO {RAW['transactions']} VALUES ({', '.join([self.placeholder] * 5)})"
        )

    def refresh(self, event: Event) -> Refreshed:
        cur = self.conn.cursor()
        cur.execute(
            self.insert,
            (event.customer_id, event.occurred_us, event.kind, event.amount_minor, event.channel),
        )
        cur.execute(self.one, {"c": event.customer_id})
        metrics = metrics_from_row(cur.fetchone())
        self.conn.commit()
        r, f, m, segment = self.cuts.score(
            metrics.recency_days, metrics.frequency, metrics.monetary, self.ctx.segments
        )
        return r, f, m, segment, rule_bits(metrics)

    def close(self) -> None:
        self.conn.close()


def _rows(columns: dict[str, Any]) -> Iterable[Sequence[Any]]:
    return zip(*(c.tolist() for c in columns.values()), strict=True)


class SqlSqlite(_SqlBaseline):
    name = "sql-sqlite"
    param = ":c"
    placeholder = "?"

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.ctx.sqlite_path)

    def load(self, cur: Any, table: str, columns: dict[str, Any]) -> None:
        marks = ", ".join("?" * len(columns))
        cur.executemany(f"INSERT INTO {table} VALUES ({marks})", _rows(columns))


class SqlPostgres(_SqlBaseline):
    name = "sql-postgresql"
    param = "%(c)s"
    placeholder = "%s"

    def connect(self) -> Any:
        import psycopg
        from sqlalchemy.engine import make_url

        assert self.ctx.postgres_url is not None
        url = make_url(self.ctx.postgres_url).set(drivername="postgresql")
        return psycopg.connect(url.render_as_string(hide_password=False))

    def load(self, cur: Any, table: str, columns: dict[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        buffer = io.BytesIO()
        pacsv.write_csv(pa.table(columns), buffer, pacsv.WriteOptions(include_header=False))
        with cur.copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())


class SqlMariadb(_SqlBaseline):
    name = "sql-mariadb"
    param = "%(c)s"
    placeholder = "%s"
    div = "DIV"

    def connect(self) -> Any:
        import pymysql
        from sqlalchemy.engine import make_url

        assert self.ctx.mariadb_url is not None
        url = make_url(self.ctx.mariadb_url)
        return pymysql.connect(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            database=url.database,
            local_infile=True,
        )

    def analyze(self, cur: Any) -> None:
        cur.execute(f"ANALYZE TABLE {', '.join(DDL)}")
        cur.fetchall()

    def load(self, cur: Any, table: str, columns: dict[str, Any]) -> None:
        import os
        import tempfile

        import pyarrow as pa
        import pyarrow.csv as pacsv

        handle, path = tempfile.mkstemp(suffix=".csv")
        try:
            with os.fdopen(handle, "wb") as out:
                pacsv.write_csv(pa.table(columns), out, pacsv.WriteOptions(include_header=False))
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} FIELDS TERMINATED BY ',' "
                "OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n'",
                (path,),
            )
        finally:
            os.unlink(path)
