"""Customer metrics, segment members and RFM scores computed in the database.

``SqlStore.metrics_source()`` returns a :class:`SqlMetrics`. A snapshot is one query over the
:class:`~crmcore.adapters.sqlalchemy._frame.Frame` (customers joined with the maintained
aggregates, or with ``GROUP BY`` subqueries for a past ``as_of``), plus one for tags when a
rule needs them. Rows come back through the driver in chunks of tuples, each transposed
into numpy columns at C speed (``zip(*rows)`` and ``np.array``); no Python code runs per
customer except for text profile fields (encoded once into a :class:`Categorical`). On
PostgreSQL the server packs the whole result into ``bytea`` instead (``_pgpack``).
Segment members are selected by the database (:func:`compile_where`), and RFM scores can be
computed there too with window functions (:meth:`SqlMetrics.score_rfm`).

Every query of one snapshot runs in one read transaction (``REPEATABLE READ`` on
PostgreSQL and MariaDB, a deferred transaction on SQLite), so the columns agree with each
other even while other units of work write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Final

import numpy as np
from sqlalchemy import ColumnElement, Connection, Select, bindparam, case, func, null, select

from crmcore._epoch import NONE_MAX, to_us
from crmcore.adapters.sqlalchemy._binding import Binding
from crmcore.adapters.sqlalchemy._frame import (
    INTERACTION_RAW,
    TRANSACTION_RAW,
    Frame,
    build_frame,
    number_order,
)
from crmcore.adapters.sqlalchemy._pgpack import NUMBER_WIDTH, decode_numbers, fetch_packed
from crmcore.adapters.sqlalchemy._prepared import PreparedCache
from crmcore.adapters.sqlalchemy._reading import crm_numbers, current_frame
from crmcore.adapters.sqlalchemy._rules import compile_where, raw_needed
from crmcore.adapters.sqlalchemy._scoring import score_in_database
from crmcore.adapters.sqlalchemy._segments import segment_from_row
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.analytics._consents import NO_CHANNEL, ConsentColumns
from crmcore.analytics._derive import (
    AggregateColumns,
    ProfileColumns,
    build_metrics,
    resolve_fields,
)
from crmcore.analytics._fields import CHANNEL_FIELDS, PROFILE_FIELDS
from crmcore.analytics._metrics import (
    BoolArray,
    Categorical,
    CustomerMetrics,
    Int64Array,
    ObjectArray,
    TagIndex,
)
from crmcore.analytics._parse import parse_rule
from crmcore.analytics._rfm import RfmPolicy, RfmResult
from crmcore.analytics._rules import Rule
from crmcore.analytics.columns import (
    CHANNEL_CODES,
    CHANNEL_COUNT_COLUMNS,
    STAGE_CODES,
    columns_for_fields,
)
from crmcore.domain import CrmNumber
from crmcore.domain._checks import aware_utc
from crmcore.errors import ErasedError, NotFound

__all__ = ["SqlMetrics"]

_TEXT_PROFILE: Final = ("gender", "owner", "country")
_CHANNEL_CODE: Final = {channel.value: code for channel, code in CHANNEL_CODES.items()}


def _raw_for_snapshot(fields: frozenset[str]) -> list[str]:
    out = columns_for_fields(fields)
    if fields & CHANNEL_FIELDS:
        out.update(CHANNEL_COUNT_COLUMNS.values())
    return sorted(out)


class SqlMetrics:
    """:class:`~crmcore.analytics.MetricsSource` over a :class:`SqlStore`, computed in SQL.

    Besides snapshots it selects segment members in the database (:meth:`members`, used by
    :class:`~crmcore.services.Analytics` for segment runs) and scores RFM with window
    functions (:meth:`score_rfm`, ``Analytics.rfm(engine="sql")``).

    Args:
        binding: how to reach the store's database.
        tables: the store's tables.
        owner: the store, for ``repr``.
        statements: the store's compiled per-event statements (``_prepared``).
    """

    def __init__(
        self,
        binding: Binding,
        tables: CrmTables,
        owner: object,
        statements: PreparedCache | None = None,
    ) -> None:
        self._binding = binding
        self._tables = tables
        self._owner = owner
        self._statements = statements if statements is not None else PreparedCache()
        # Set once a packed fetch met CRM numbers of several lengths: later fetches pad them
        # from the start instead of finding out again (each finding costs a whole query).
        self._pad_numbers = False

    def __repr__(self) -> str:
        return f"SqlMetrics({self._owner!r})"

    # -- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection in one consistent read transaction (the host's, if bound to one)."""
        with self._binding.reading() as conn:
            yield conn

    def frame(self, conn: Connection, as_of_us: int, needed: Collection[str]) -> Frame:
        """The frame with the raw columns ``needed`` as of ``as_of_us`` (checks whether the
        maintained aggregates are current for that instant)."""
        return current_frame(conn, self._tables, self._binding.name, as_of_us, needed)

    # -- MetricsSource -----------------------------------------------------------------------

    def snapshot(
        self, as_of: dt.datetime, fields: Collection[str] | None = None
    ) -> CustomerMetrics:
        """See :meth:`crmcore.analytics.MetricsSource.snapshot` (rows in CRM number order)."""
        when = aware_utc("as_of", as_of)
        chosen = resolve_fields(fields)
        with self.reading() as conn:
            return self._snapshot(conn, when, chosen, None)

    def _snapshot(
        self,
        conn: Connection,
        when: dt.datetime,
        chosen: frozenset[str],
        only: str | None,
    ) -> CustomerMetrics:
        as_of_us = to_us(when)
        raw = _raw_for_snapshot(chosen)
        texts = [n for n in _TEXT_PROFILE if n in chosen]
        with_birth = "birth_year" in chosen
        frame = self.frame(conn, as_of_us, raw)
        int_columns = _int_columns(frame, raw, with_birth)
        packable = not texts and "consents" not in chosen
        if only is None and packable and self._binding.name == "postgresql":
            fast = self._packed_snapshot(conn, when, chosen, frame, raw, int_columns)
            if fast is not None:
                return fast
        query = (
            select(frame.number, *int_columns, *(frame.column(n) for n in texts))
            .select_from(frame.source)
            .where(frame.where)
            .order_by(number_order(frame))
        )
        if only is not None:
            query = query.where(frame.number == only)
        numbers_text, ints, text_values = _fetch_columns(
            conn.execute(query).cursor, len(int_columns), len(texts)
        )
        size = len(numbers_text)
        values = {name: ints[position] for position, name in enumerate(raw)}
        profile = None
        if chosen & (PROFILE_FIELDS - {"crm_number"}):
            birth = np.zeros(size, dtype=np.int64)
            birth_missing: BoolArray = np.ones(size, dtype=np.bool_)
            if with_birth:
                birth = ints[len(raw)]
                birth_missing = ints[len(raw) + 1].astype(np.bool_)
            categorical = {
                name: Categorical.from_values(text_values[i]) for i, name in enumerate(texts)
            }
            empty = Categorical(np.full(size, -1, dtype=np.int64), ())
            tags = (
                self._tags(conn, frame, numbers_text, only)
                if "tags" in chosen
                else TagIndex({}, size)
            )
            profile = ProfileColumns(
                gender=categorical.get("gender", empty),
                owner=categorical.get("owner", empty),
                country=categorical.get("country", empty),
                birth_year=birth,
                birth_year_missing=birth_missing,
                tags=tags,
            )
        consents = self._consents(conn, frame, numbers_text, only) if "consents" in chosen else None
        return _assemble(
            when, chosen, size, values, profile, lambda: crm_numbers(numbers_text), consents
        )

    def _consents(
        self, conn: Connection, frame: Frame, numbers: Sequence[str], only: str | None
    ) -> ConsentColumns:
        """The ledger entries of the snapshot's customers, each with its row (history order:
        ``at``, then append order)."""
        t = self._tables.consents
        c = self._tables.customers
        query = (
            select(t.c.customer, t.c.purpose, t.c.channel, t.c.decision, t.c.at_us, t.c.expires_us)
            .join(c, c.c.number == t.c.customer)
            .where(frame.where)
            .order_by(t.c.customer, t.c.at_us, t.c.seq)
        )
        if only is not None:
            query = query.where(t.c.customer == only)
        rows = conn.execute(query).all()
        row_of = {number: i for i, number in enumerate(numbers)}
        n = len(rows)
        return ConsentColumns(
            size=len(numbers),
            row=np.fromiter((row_of[r[0]] for r in rows), np.int64, n),
            purpose=np.array([r[1] for r in rows] or [], dtype=object),
            channel=np.fromiter(
                (NO_CHANNEL if r[2] is None else _CHANNEL_CODE[r[2]] for r in rows), np.int64, n
            ),
            granted=np.fromiter((r[3] == "granted" for r in rows), np.bool_, n),
            at_us=np.fromiter((r[4] for r in rows), np.int64, n),
            expires_us=np.fromiter((NONE_MAX if r[5] is None else r[5] for r in rows), np.int64, n),
        )

    def _packed_snapshot(
        self,
        conn: Connection,
        when: dt.datetime,
        chosen: frozenset[str],
        frame: Frame,
        raw: list[str],
        int_columns: list[ColumnElement[Any]],
    ) -> CustomerMetrics | None:
        """PostgreSQL: the snapshot packed into ``bytea`` by the server (see ``_pgpack``).

        ``None`` (the caller then fetches rows) if the packed result is not as expected.
        """
        query = (
            select(frame.number)
            .select_from(frame.source)
            .where(frame.where)
            .order_by(number_order(frame))
        )
        columns = fetch_packed(
            conn,
            frame.number,
            int_columns,
            query,
            frame.number,
            self._tables.customers,
            self._pad_numbers,
        )
        if columns is None:
            return None
        padded = columns["number"]
        self._pad_numbers |= padded.dtype.itemsize == NUMBER_WIDTH  # canonical numbers < 32
        size = len(padded)
        if size > 1 and not bool((padded[1:] > padded[:-1]).all()):
            order = np.argsort(padded, kind="stable")
            columns = {name: column[order] for name, column in columns.items()}
            padded = columns["number"]
        values = {name: columns[f"c{i}"] for i, name in enumerate(raw)}
        profile = None
        if chosen & (PROFILE_FIELDS - {"crm_number"}):
            birth = np.zeros(size, dtype=np.int64)
            birth_missing: BoolArray = np.ones(size, dtype=np.bool_)
            if "birth_year" in chosen:
                birth = columns[f"c{len(raw)}"]
                birth_missing = columns[f"c{len(raw) + 1}"].astype(np.bool_)
            tags = TagIndex({}, size)
            if "tags" in chosen:
                found = self._packed_tags(conn, padded)
                if found is None:
                    return None
                tags = found
            empty = Categorical(np.full(size, -1, dtype=np.int64), ())
            profile = ProfileColumns(
                gender=empty,
                owner=empty,
                country=empty,
                birth_year=birth,
                birth_year_missing=birth_missing,
                tags=tags,
            )
        return _assemble(
            when, chosen, size, values, profile, lambda: crm_numbers(decode_numbers(padded))
        )

    def _packed_tags(self, conn: Connection, padded: np.ndarray[Any, Any]) -> TagIndex | None:
        """Tags as packed (tag code, number) pairs; each number's row is found by binary
        search in the snapshot's sorted numbers (``None`` if one is not among them)."""
        t = self._tables.customer_tags
        # Erasing a customer deletes its tags, so every tag row belongs to a snapshot row
        # (checked below: an owner that is not among the numbers makes the row fetch take
        # over) and the tags are read without joining the customers.
        # Tags travel as hashtext() codes, named by a second query run after this one: a tag
        # added in between is simply unused, one removed in between leaves a code without a
        # name, and two tags sharing a code are detected; either way the row fetch takes over.
        columns = fetch_packed(
            conn,
            t.c.customer,
            [func.hashtext(t.c.tag)],
            select(t.c.customer),
            t.c.customer,
            t,
            padded.dtype.itemsize == NUMBER_WIDTH,
        )
        if columns is None:
            return None
        codes, owners = columns["c0"], columns["number"]
        if not len(codes):
            return TagIndex({}, len(padded))
        if owners.dtype != padded.dtype:
            return None  # owners of another length than every snapshot number: not among them
        distinct = select(t.c.tag).distinct().subquery("tag_names")
        named = conn.execute(select(distinct.c.tag, func.hashtext(distinct.c.tag))).all()
        name_of = {int(code): str(name) for name, code in named}
        if len(name_of) != len(named):
            return None  # two tags with one hash code
        positions = np.searchsorted(padded, owners).astype(np.int64)
        if positions.max() >= len(padded) or not bool((padded[positions] == owners).all()):
            return None
        order = np.lexsort((positions, codes))
        codes, positions = codes[order], positions[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        ends = np.r_[starts[1:], len(codes)]
        out: dict[str, Int64Array] = {}
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            name = name_of.get(int(codes[start]))
            if name is None:
                return None  # a tag removed between the two queries
            out[name] = positions[start:end]
        return TagIndex(out, len(padded))

    def _tags(
        self, conn: Connection, frame: Frame, numbers: Sequence[str], only: str | None
    ) -> TagIndex:
        t = self._tables.customer_tags
        c = self._tables.customers
        query = (
            select(t.c.tag, t.c.customer)
            .join(c, c.c.number == t.c.customer)
            .where(frame.where)
            .order_by(t.c.tag, t.c.customer)
        )
        if only is not None:
            query = query.where(t.c.customer == only)
        rows = conn.execute(query).cursor.fetchall()
        if not rows:
            return TagIndex({}, len(numbers))
        row_of = {number: i for i, number in enumerate(numbers)}
        tags, owners = zip(*rows, strict=True)
        positions = np.fromiter((row_of[n] for n in owners), dtype=np.int64, count=len(owners))
        names = np.array(tags, dtype=object)
        starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
        ends = np.r_[starts[1:], len(names)]
        return TagIndex(
            {
                str(names[s]): np.sort(positions[s:e])
                for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
            },
            len(numbers),
        )

    def customer_row(
        self, number: CrmNumber, as_of: dt.datetime, fields: Collection[str] | None = None
    ) -> dict[str, Any]:
        """See :meth:`crmcore.analytics.MetricsSource.customer_row` (one indexed query)."""
        when = aware_utc("as_of", as_of)
        chosen = resolve_fields(fields)
        if not isinstance(number, CrmNumber):
            raise NotFound("customer", number)
        with self._binding.single_read() as conn:
            fast = self._row_now(conn, when, chosen, number.value)
        if fast is not None:
            return fast
        c = self._tables.customers
        with self.reading() as conn:
            erased = conn.execute(select(c.c.erased).where(c.c.number == number.value)).first()
            if erased is None:
                raise NotFound("customer", number)
            if erased[0]:
                raise ErasedError("customer", number)
            metrics = self._snapshot(conn, when, chosen, number.value)
        row = metrics.row(0)
        return {name: value for name, value in row.items() if name in chosen}

    def saved_rules(self) -> list[tuple[str, str]]:
        """See :class:`crmcore.analytics.ports.SavedRules`: one SELECT, no transaction."""
        s = self._tables.segments
        query = select(
            s.c.name, s.c.rule, s.c.description, s.c.consent_purpose, s.c.consent_channel
        ).order_by(s.c.name)
        with self._binding.single_read("segment") as conn:
            prepared = self._statements.get(conn, "saved_rules", lambda: query)
            rows = (conn.execute(query) if prepared is None else prepared.execute(conn, {})).all()
        return [
            (segment.name, segment.effective_rule)
            for segment in (segment_from_row(*row) for row in rows)
        ]

    def _row_now(
        self, conn: Connection, when: dt.datetime, chosen: frozenset[str], number: str
    ) -> dict[str, Any] | None:
        """One customer's row in one statement when the maintained aggregates are current
        for ``when`` (the common case: refreshing a customer after recording an event);
        ``None`` when they are not, for a missing or erased customer and for channel
        fields (then :meth:`customer_row` reads the frame as of ``when``).

        The statement reads the customer's flags, profile and aggregate row, its tags
        (one comma-joined text: tags contain no commas) and the latest instants of both
        histories (index look-ups), compiled once per field set (``_prepared``).
        """
        if chosen & CHANNEL_FIELDS or "consents" in chosen:
            return None
        prepared = self._statements.get(
            conn, ("customer_row", chosen), lambda: self._row_query(chosen)
        )
        if prepared is None:
            return None
        found = prepared.execute(conn, {"n": number}).first()
        if found is None or found[0]:
            return None
        latest_tx, latest_ix, tags = found[1], found[2], found[3]
        raw = _raw_for_snapshot(chosen)
        as_of_us = to_us(when)
        if (set(raw) & TRANSACTION_RAW and latest_tx is not None and as_of_us < latest_tx) or (
            set(raw) & INTERACTION_RAW and latest_ix is not None and as_of_us < latest_ix
        ):
            return None
        texts = [n for n in _TEXT_PROFILE if n in chosen]
        ints = [np.array([value], dtype=np.int64) for value in found[4 : len(found) - len(texts)]]
        values = {name: ints[position] for position, name in enumerate(raw)}
        profile = None
        if chosen & (PROFILE_FIELDS - {"crm_number"}):
            birth, birth_missing = np.zeros(1, np.int64), np.ones(1, np.bool_)
            if "birth_year" in chosen:
                birth, birth_missing = ints[len(raw)], ints[len(raw) + 1].astype(np.bool_)
            text_values = found[len(found) - len(texts) :]
            categorical = {
                name: Categorical.from_values([text_values[i]]) for i, name in enumerate(texts)
            }
            empty = Categorical(np.full(1, -1, dtype=np.int64), ())
            profile = ProfileColumns(
                gender=categorical.get("gender", empty),
                owner=categorical.get("owner", empty),
                country=categorical.get("country", empty),
                birth_year=birth,
                birth_year_missing=birth_missing,
                tags=TagIndex(
                    {tag: np.zeros(1, np.int64) for tag in tags.split(",")} if tags else {}, 1
                ),
            )
        metrics = _assemble(when, chosen, 1, values, profile, lambda: crm_numbers([number]))
        return {name: value for name, value in metrics.row(0).items() if name in chosen}

    def _row_query(self, chosen: frozenset[str]) -> Select[Any]:
        """The statement of :meth:`_row_now` for the fields ``chosen`` (bind ``n``)."""
        t = self._tables
        c, tags = t.customers, t.customer_tags
        raw = _raw_for_snapshot(chosen)
        frame = build_frame(t, self._binding.name, 0, raw, current_tx=True, current_ix=True)
        number = bindparam("n", type_=c.c.number.type)
        joined: Any = null()
        if "tags" in chosen:
            if self._binding.name == "postgresql":
                joined = func.string_agg(tags.c.tag, ",")
            elif self._binding.name == "sqlite":
                joined = func.group_concat(tags.c.tag, ",")
            else:
                joined = func.group_concat(tags.c.tag)  # MariaDB/MySQL: "," by default
            joined = select(joined).where(tags.c.customer == number).scalar_subquery()
        return (
            select(
                c.c.erased,
                select(func.max(t.transactions.c.occurred_us)).scalar_subquery(),
                select(func.max(t.interactions.c.occurred_us)).scalar_subquery(),
                joined,
                *_int_columns(frame, raw, "birth_year" in chosen),
                *(frame.column(n) for n in _TEXT_PROFILE if n in chosen),
            )
            .select_from(frame.source)
            .where(c.c.number == number)
        )

    # -- pushdown ----------------------------------------------------------------------------

    def members(
        self, rules: Mapping[str, Rule | str], as_of: dt.datetime
    ) -> dict[str, frozenset[CrmNumber]]:
        """The customers matching each rule as of ``as_of``, selected by the database.

        One ``SELECT number ... WHERE <rule>`` per rule, in one read transaction.

        Raises:
            RuleSyntaxError: a malformed rule.
        """
        when = aware_utc("as_of", as_of)
        as_of_us = to_us(when)
        parsed = {name: parse_rule(rule) for name, rule in rules.items()}
        out: dict[str, frozenset[CrmNumber]] = {}
        with self.reading() as conn:
            for name, rule in parsed.items():
                frame = self.frame(conn, as_of_us, raw_needed(set(rule.fields())))
                query = (
                    select(frame.number)
                    .select_from(frame.source)
                    .where(frame.where, compile_where(rule, frame))
                )
                found = conn.execute(query).scalars().all()
                out[name] = frozenset(crm_numbers(found).tolist())
        return out

    def score_rfm(self, as_of: dt.datetime, policy: RfmPolicy | None = None) -> RfmResult:
        """RFM scores computed in the database with window functions (see ``_scoring``).

        Identical to ``score_rfm(snapshot(as_of, RFM_FIELDS), policy)``.
        """
        return score_in_database(
            self._binding,
            self._tables,
            self._binding.name,
            aware_utc("as_of", as_of),
            policy or RfmPolicy(),
        )


_FETCH_ROWS: Final = 65_536
"""Rows the row fetch transposes at a time. With a driver that streams rows (SQLite's) only
this many row tuples are alive at once; ``fetchall()`` of a million customers held ~300 MB
of tuples and boxed ints. (PyMySQL buffers the whole result in its cursor either way.)"""


def _fetch_columns(
    cursor: Any, ints: int, texts: int
) -> tuple[list[Any], list[Int64Array], list[list[Any]]]:
    """Rows of (number, ``ints`` integers, ``texts`` texts) as columns, fetched in chunks
    and transposed at C speed (``zip(*rows)`` and ``np.array`` per chunk)."""
    numbers: list[Any] = []
    chunks: list[list[Int64Array]] = [[] for _ in range(ints)]
    text_values: list[list[Any]] = [[] for _ in range(texts)]
    while rows := cursor.fetchmany(_FETCH_ROWS):
        columns = list(zip(*rows, strict=True))
        numbers.extend(columns[0])
        for i in range(ints):
            chunks[i].append(np.array(columns[1 + i], dtype=np.int64))
        for j in range(texts):
            text_values[j].extend(columns[1 + ints + j])
        del rows, columns
    joined = [np.concatenate(parts) if parts else np.zeros(0, np.int64) for parts in chunks]
    return numbers, joined, text_values


def _assemble(
    when: dt.datetime,
    chosen: frozenset[str],
    size: int,
    values: dict[str, Int64Array],
    profile: ProfileColumns | None,
    numbers: Callable[[], ObjectArray],
    consents: ConsentColumns | None = None,
) -> CustomerMetrics:
    """The snapshot from fetched raw columns (either fetch path)."""
    channels = None
    if chosen & CHANNEL_FIELDS:
        channels = {channel: values[name] for channel, name in CHANNEL_COUNT_COLUMNS.items()}
    return build_metrics(
        when,
        chosen,
        size=size,
        aggregates=AggregateColumns(**{k: v for k, v in values.items() if not k.startswith("ch_")}),
        channel_counts=channels,
        profile=profile,
        numbers=numbers,
        consents=consents,
    )


def _int_columns(frame: Frame, raw: list[str], with_birth: bool) -> list[ColumnElement[Any]]:
    """The integer columns a snapshot fetches: each raw column (the stage as its code,
    NULL as 0), then, with ``with_birth``, the birth year and whether it is missing."""
    out: list[ColumnElement[Any]] = []
    for name in raw:
        column = frame.column(name)
        out.append(_stage_code(column) if name == "stage" else func.coalesce(column, 0))
    if with_birth:
        out.append(func.coalesce(frame.column("birth_year"), 0))
        out.append(case((frame.column("birth_year").is_(None), 1), else_=0))
    return out


def _stage_code(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The stage text of ``column`` as its code (``crmcore.analytics.columns.STAGE_CODES``)."""
    codes = {stage.value: code for stage, code in STAGE_CODES.items()}
    return case(codes, value=column, else_=-1)
