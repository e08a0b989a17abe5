"""crmcore itself, as a host would use it: ``crmcore-memory``, ``crmcore-sqlite``,
``crmcore-postgresql``, ``crmcore-mariadb``.

Every workload goes through the public API: the ports' bulk ``add_many`` for ingest,
:class:`crmcore.services.Analytics` for RFM (``rfm``), snapshots plus
:func:`crmcore.analytics.evaluate` for rule segments, and ``Crm.record_transaction`` followed
by ``Analytics.refresh`` for one new transaction.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks import load
from benchmarks.data import Event, read_arrays
from benchmarks.impl import Implementation, IngestCheck, Refreshed, scatter
from benchmarks.spec import (
    AS_OF_US,
    RULE_NAMES,
    RULES,
    RfmResult,
    SegmentMap,
    build_segment_map,
    pack_rules,
    rule_text,
)
from benchmarks.worker import rss_mib
from crmcore import Crm, FixedClock, InMemoryStore
from crmcore.analytics import (
    DEFAULT_SEGMENT_MAP,
    RFM_FIELDS,
    RfmPolicy,
    compile_predicate,
    evaluate,
    parse_rule,
    score_rfm,
)
from crmcore.ports import Store as CrmStore
from crmcore.services import Analytics

AS_OF = load.instant(AS_OF_US)


def crmcore_segment_map() -> SegmentMap:
    """crmcore's default named-segment map as a 125-row table (what the baselines join)."""
    return build_segment_map(DEFAULT_SEGMENT_MAP.name)


class _Crm(Implementation):
    def make_store(self) -> CrmStore:
        raise NotImplementedError

    def attach(self) -> None:
        self.store = self.make_store()
        self.nums = load.numbers(self.store.scheme, self.ctx.customers)
        self._serve()

    def _serve(self) -> None:
        """The host's use cases over the loaded store."""
        self.crm = Crm(self.store, clock=FixedClock(AS_OF))
        self.analytics = Analytics(self.crm)

    def ingest(self) -> None:
        arrays = read_arrays(self.ctx.data_dir)
        self.store = self.make_store()
        self.nums = load.numbers(self.store.scheme, len(arrays.customers))
        marks: dict[str, tuple[float, float]] = {"start": (time.perf_counter(), rss_mib())}
        load.ingest(
            self.store,
            arrays,
            self.nums,
            lambda phase: marks.__setitem__(phase, (time.perf_counter(), rss_mib())),
        )
        analyze = getattr(self.store, "analyze", None)
        if analyze is not None:
            # As the SQL baselines do after loading (this server runs no autovacuum): fresh
            # planner statistics, part of the timed ingest.
            analyze()
        tx = len(arrays.transactions)
        self._notes = {
            "ingest": {
                "phase_s": {
                    phase: round(marks[phase][0] - marks[before][0], 3)
                    for before, phase in (
                        ("start", "arrow"),
                        ("arrow", "customers"),
                        ("customers", "interactions"),
                        ("interactions", "transactions"),
                    )
                },
                "rss_bytes_per_transaction": round(
                    (marks["transactions"][1] - marks["interactions"][1]) * 2**20 / tx
                ),
            }
        }
        self._serve()

    def notes(self) -> dict[str, dict[str, Any]]:
        return {**getattr(self, "_notes", {}), "incremental": self.incremental_notes()}

    # -- agreement: crmcore answers in snapshot rows keyed by CRM number -----------------------

    def _ids(self, numbers: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        width = len(self.store.scheme.prefix)
        return np.fromiter(
            (int(n.value[width:-1]) - 1 for n in numbers), dtype=np.int64, count=len(numbers)
        )

    def _segment_codes(self, names: tuple[str, ...], codes: npt.NDArray[Any]) -> Any:
        mine = self.ctx.segments.names
        lookup = np.array([mine.index(name) for name in names] + [-1], dtype=np.int16)
        return lookup[codes]  # code -1 reads the trailing -1

    def convert(self, workload: str, native: Any) -> Any:
        n = self.ctx.customers
        if workload == "ingest":
            snap = self.analytics.snapshot(AS_OF, {"frequency", "refunds", "interactions"})
            money = self.analytics.snapshot(AS_OF, {"monetary"})
            with self.store.unit_of_work() as uow:
                customers = uow.customers.count()
            return IngestCheck(
                customers,
                int(snap.column("frequency").sum() + snap.column("refunds").sum()),
                int(snap.column("interactions").sum()),
                int(money.column("monetary").sum()),
            )
        if workload in ("rfm", "scores"):
            ids = self._ids(native.metrics.numbers())
            segment = (
                self._segment_codes(native.segment_names, native.segment_codes)
                if workload == "rfm"
                else np.full(len(ids), -1, dtype=np.int16)
            )
            return RfmResult(
                scatter(n, ids, native.r, np.int8, 0),
                scatter(n, ids, native.f, np.int8, 0),
                scatter(n, ids, native.m, np.int8, 0),
                scatter(n, ids, segment, np.int16, -1),
            )
        if workload == "rules":
            snapshot, masks = native
            bits = pack_rules(dict(zip(RULE_NAMES, masks, strict=True)))
            return scatter(n, self._ids(snapshot.numbers()), bits, np.int16, 0)
        return native

    # -- workloads -----------------------------------------------------------------------------

    def rfm(self) -> Any:
        return self.analytics.rfm(AS_OF)

    def prepare_scores(self) -> None:
        self.snapshot = self.analytics.snapshot(AS_OF, RFM_FIELDS)
        self.policy = RfmPolicy(segment_map=None)

    def scores(self) -> Any:
        return score_rfm(self.snapshot, self.policy)

    def rules(self) -> Any:
        parsed = [parse_rule(rule_text(node)) for _, node in RULES]
        fields: set[str] = set()
        for rule in parsed:
            fields |= rule.fields()
        snapshot = self.analytics.snapshot(AS_OF, fields)
        return snapshot, [evaluate(rule, snapshot) for rule in parsed]

    def prepare_incremental(self) -> None:
        self.analytics.rfm(AS_OF)  # the last full run, whose cut points refresh uses
        for name, node in RULES:
            self.analytics.define_segment(name, rule_text(node))
        self.record_s: list[float] = []
        self.refreshed_s: list[float] = []
        # The same refresh from the analytics building blocks, with the rules parsed and
        # compiled once (what Analytics.refresh does per call): timed as a note, and checked.
        self.predicates = [
            compile_predicate(parse_rule(rule_text(node)), AS_OF) for _, node in RULES
        ]
        self.fields = set(RFM_FIELDS)
        for _, node in RULES:
            self.fields |= parse_rule(rule_text(node)).fields()
        self.direct_s: list[float] = []

    def refresh(self, event: Event) -> Refreshed:
        tx = load.event_transaction(self.nums, event)  # the host's incoming record
        start = time.perf_counter()
        self.crm.record_transaction(tx)
        recorded = time.perf_counter()
        out = self.analytics.refresh(tx.customer, AS_OF)
        refreshed = time.perf_counter()
        self.record_s.append(recorded - start)
        self.refreshed_s.append(refreshed - recorded)
        self.refresh_s = refreshed - start  # what the worker reports for this event
        score = out.rfm
        assert score is not None
        bits = sum(1 << i for i, name in enumerate(RULE_NAMES) if out.segments[name])
        self._direct(tx.customer, score.r, score.segment, bits)
        if score.r is None:
            return 0, 0, 0, -1, bits
        assert score.f is not None and score.m is not None and score.segment is not None
        return score.r, score.f, score.m, self.ctx.segments.names.index(score.segment), bits

    def _direct(self, number: Any, r: int | None, segment: str | None, bits: int) -> None:
        last = self.analytics.last_rfm
        assert last is not None
        start = time.perf_counter()
        values = self.analytics.source.customer_row(number, AS_OF, self.fields)
        score = last.score_one(values["recency_days"], values["frequency"], values["monetary"])
        matches = [predicate(values) for predicate in self.predicates]
        self.direct_s.append(time.perf_counter() - start)
        direct_bits = sum(1 << i for i, hit in enumerate(matches) if hit)
        assert (score.r, score.segment, direct_bits) == (r, segment, bits)

    def incremental_notes(self) -> dict[str, Any]:
        if not getattr(self, "record_s", None):
            return {}
        return {
            "record_p50_s": float(np.median(self.record_s)),
            "refresh_p50_s": float(np.median(self.refreshed_s)),
            "refresh_p99_s": float(np.percentile(self.refreshed_s, 99)),
            "precompiled_refresh_p50_s": float(np.median(self.direct_s)),
        }


class CrmMemory(_Crm):
    name = "crmcore-memory"

    def make_store(self) -> CrmStore:
        return InMemoryStore(reporting_currency=load.CURRENCY)


class _CrmSql(_Crm):
    def url(self) -> str:
        raise NotImplementedError

    def make_store(self) -> CrmStore:
        from crmcore.adapters.sqlalchemy import SqlStore

        return SqlStore.from_url(self.url(), create_schema=True, reporting_currency=load.CURRENCY)

    def close(self) -> None:
        store = getattr(self, "store", None)
        engine = getattr(store, "engine", None)
        if engine is not None:
            engine.dispose()


class CrmSqlite(_CrmSql):
    name = "crmcore-sqlite"

    def url(self) -> str:
        return f"sqlite:///{self.ctx.sqlite_path}"


class CrmPostgres(_CrmSql):
    name = "crmcore-postgresql"

    def url(self) -> str:
        assert self.ctx.postgres_url is not None
        return self.ctx.postgres_url


class CrmMariadb(_CrmSql):
    name = "crmcore-mariadb"

    def url(self) -> str:
        from sqlalchemy.engine import make_url

        assert self.ctx.mariadb_url is not None
        # The host's opt-in to LOAD DATA LOCAL INFILE for the bulk import (the server of the
        # scratch database allows it); without it the import sends multi-row INSERTs.
        url = make_url(self.ctx.mariadb_url).update_query_dict({"local_infile": "1"})
        return url.render_as_string(hide_password=False)
