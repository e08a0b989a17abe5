"""The SQL store's :class:`~crmcore.ports.transfer.TransferRepository`: the number counter,
tombstones, every segment run and the history column-wise, for dump, restore and copy.

History is read with one streamed ``SELECT`` per table (``yield_per``: a server-side cursor
on PostgreSQL and MariaDB), fetched in partitions and turned into numpy columns per
partition: no domain object per row. The columns read are the integer mirrors
(``occurred_us``) and the id as text, so no row goes through a date-time or UUID type.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, Final

import numpy as np
from sqlalchemy import String, case, cast, exists, insert, select, type_coerce, update
from sqlalchemy import exc as sa_exc

from crmcore._epoch import NONE_MIN, to_us
from crmcore.adapters.sqlalchemy._allocator import SqlNumberAllocator
from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._customer_read import read_customer_chunks
from crmcore.adapters.sqlalchemy._customers import SqlCustomers
from crmcore.adapters.sqlalchemy._errors import translate, translated
from crmcore.adapters.sqlalchemy._lookups import chunks
from crmcore.adapters.sqlalchemy._sealing import RowSealer, record_hex
from crmcore.adapters.sqlalchemy._settings import COUNTER_NAME
from crmcore.analytics.columns import (
    CHANNEL_CODES,
    COLUMN_DEFAULTS,
    INTERACTION_COLUMNS,
    INTERACTION_KIND_CODES,
    SALES_CHANNEL_CODES,
    TRANSACTION_COLUMNS,
    TRANSACTION_KIND_CODES,
)
from crmcore.domain import CrmNumber, Customer, Money, SegmentMembership, TransactionLine
from crmcore.errors import DuplicateError, ValidationError
from crmcore.ports.batches import DIRECTION_CODES, InteractionBatch, TransactionBatch
from crmcore.ports.transfer import AggregateColumns, TransactionChunk

__all__ = ["SqlTransfer"]

_TX_KIND: Final = {kind.value: code for kind, code in TRANSACTION_KIND_CODES.items()}
_SALES: Final = {channel.value: code for channel, code in SALES_CHANNEL_CODES.items()}
_IX_KIND: Final = {kind.value: code for kind, code in INTERACTION_KIND_CODES.items()}
_CHANNEL: Final = {channel.value: code for channel, code in CHANNEL_CODES.items()}
_DIRECTION: Final = {d.value: code for d, code in DIRECTION_CODES.items()}
_NO_LINES: Final = "[]"


def _objects(values: Sequence[Any]) -> Any:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _coded(column: Any, mapping: dict[str, int]) -> Any:
    """``column``'s stored text as its integer code, mapped by the database (-1: unknown)."""
    return case(mapping, value=column, else_=-1)


def _codes(field: str, values: Sequence[int]) -> Any:
    # The database maps text to codes (_coded): the driver returns small ints, and one numpy
    # conversion replaces a dictionary look-up per row.
    codes = np.array(values, dtype=np.int8)
    if codes.size and codes.min() < 0:
        raise ValidationError(field, "(stored)", "holds a value crmcore does not know")
    return codes


def _id_halves(texts: Sequence[str]) -> tuple[Any, Any]:
    # PostgreSQL's uuid text has dashes, the CHAR(32) of the other dialects none.
    raw = bytes.fromhex("".join(texts).replace("-", ""))
    pairs = np.frombuffer(raw, dtype=">u8").reshape(-1, 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)


def _lines(text: str, currency: str) -> tuple[TransactionLine, ...]:
    return tuple(
        TransactionLine(sku, Decimal(qty), Money.from_minor_units(unit, currency), desc)
        for sku, qty, unit, desc in json.loads(text)
    )


def _opened(
    sealer: RowSealer, customers: Sequence[str], ids: Sequence[str], *columns: Sequence[Any]
) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
    """Subject, notes and outcome of interaction rows of an encrypted store, opened."""
    key_ids, sealed, subject, notes, outcome = columns
    opened = [
        sealer.open_interaction_fields(number, record_hex(rid), kid, tokens, plain)
        for number, rid, kid, tokens, *plain in zip(
            customers, ids, key_ids, sealed, subject, notes, outcome, strict=True
        )
    ]
    if not opened:
        return (), (), ()
    a, b, c = zip(*opened, strict=True)
    return a, b, c


def _naive_us(value: dt.datetime | str) -> int:
    """Microseconds of a stored instant as the driver returns it: naive UTC (text on SQLite)."""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return to_us(when.replace(tzinfo=dt.UTC))


def _size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValidationError("size", size, "must be a positive integer")
    return size


class SqlTransfer:
    """:class:`~crmcore.ports.transfer.TransferRepository` of one SQL unit of work.

    Args:
        context: the unit's transaction context.
        allocator: the store's allocator.
    """

    def __init__(self, context: TransactionContext, allocator: SqlNumberAllocator) -> None:
        self._ctx = context
        self._t = context.tables
        self._allocator = allocator

    def _id(self, column: Any) -> Any:
        if self._ctx.dialect == "postgresql":
            return cast(column, String)
        return type_coerce(column, String)

    # -- the counter and the tombstones ----------------------------------------------------

    def is_empty(self) -> bool:
        conn = self._ctx.read()
        t = self._t
        with translated():
            for table in (t.customers, t.transactions, t.interactions, t.segments):
                if conn.execute(select(exists().select_from(table))).scalar():
                    return False
        return True

    def allocator_position(self) -> int:
        conn = self._ctx.read()
        c = self._t.number_counter
        with translated("number counter"):
            value = conn.execute(select(c.c.value).where(c.c.name == COUNTER_NAME)).scalar()
        return max(int(value or 0), self._allocator.handed_out)

    def raise_allocator(self, position: int) -> None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValidationError("position", position, "must be a non-negative integer")
        conn = self._ctx.write()
        c = self._t.number_counter
        with translated("number counter"):
            # In the unit's transaction: a restore that rolls back leaves the counter as it was.
            higher = case((c.c.value > position, c.c.value), else_=position)
            done = conn.execute(update(c).where(c.c.name == COUNTER_NAME).values(value=higher))
            if done.rowcount == 0:
                conn.execute(insert(c).values(name=COUNTER_NAME, value=position))

    def customer_chunks(self, size: int) -> Iterator[Sequence[Customer]]:
        conn = self._ctx.read()
        with translated("customer"):
            yield from read_customer_chunks(conn, self._t, _size(size), self._ctx.sealer)

    def add_customers(self, customers: Sequence[Customer]) -> None:
        # Rows are written set-wise by add_many already; nothing is kept in memory here.
        SqlCustomers(self._ctx).add_many(customers)

    def tombstones(self) -> Sequence[CrmNumber]:
        conn = self._ctx.read()
        c = self._t.customers
        with translated("customer"):
            rows = conn.execute(select(c.c.number).where(c.c.erased.is_(True))).scalars()
            return sorted(CrmNumber(n) for n in rows)

    def add_tombstones(self, numbers: Sequence[CrmNumber]) -> None:
        conn = self._ctx.write()
        keys = []
        for number in numbers:
            if not isinstance(number, CrmNumber):
                raise ValidationError("number", number, "must be a CrmNumber (parse text first)")
            keys.append(number.value)
        if len(set(keys)) != len(keys):
            raise DuplicateError("crm number", next(k for k in keys if keys.count(k) > 1))
        c = self._t.customers
        with translated("customer"):
            for chunk in chunks(keys):
                hit = conn.execute(select(c.c.number).where(c.c.number.in_(chunk))).first()
                if hit is not None:
                    raise DuplicateError("crm number", hit[0])
            blank = {col.name: None for col in c.c if col.name not in {"number", "erased"}}
            rows = [blank | {"number": k, "erased": True, "version": 0} for k in keys]
            self._ctx.inserts.insert_rows(conn, c, rows)

    # -- history, column-wise --------------------------------------------------------------

    def _stream(self, query: Any, size: int) -> Iterator[Sequence[Any]]:
        """The rows of ``query`` in partitions of ``size``, straight from the driver's cursor.

        On the unit's own connection (its transaction, so its snapshot), with a server-side
        cursor where the driver has one; no SQLAlchemy result processing per row (about
        three quarters of the fetch time at S), which is why only plain integer and text
        columns are selected, plus the rare date-time (:func:`_naive_us`).
        """
        conn = self._ctx.read()
        dialect = conn.dialect
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        raw: Any = conn.connection.driver_connection
        dbapi: Any = dialect.loaded_dbapi
        try:
            if self._ctx.dialect == "postgresql":
                cursor = raw.cursor(name=f"crmcore_transfer_{id(query):x}")
            elif self._ctx.dialect in {"mysql", "mariadb"}:
                cursor = raw.cursor(dbapi.cursors.SSCursor)
            else:
                cursor = raw.cursor()
            try:
                cursor.execute(sql)
                while rows := cursor.fetchmany(size):
                    yield rows
            finally:
                cursor.close()
        except dbapi.Error as exc:
            error = sa_exc.DBAPIError.instance(sql, None, exc, dbapi.Error)
            raise translate(error) from exc

    def transaction_chunks(self, size: int) -> Iterator[TransactionChunk]:
        t = self._t.transactions
        query = select(
            t.c.customer,
            t.c.occurred_us,
            _coded(t.c.kind, _TX_KIND),
            _coded(t.c.channel, _SALES),
            t.c.currency,
            t.c.amount_minor,
            t.c.reporting_minor,
            t.c.source,
            t.c.external_ref,
            self._id(t.c.id),
            t.c.lines,
        )
        for part in self._stream(query, _size(size)):
            cust, occurred, kind, channel, cur, total, reporting, src, ref, ids, lines = zip(
                *part, strict=True
            )
            high, low = _id_halves(ids)
            yield TransactionChunk(
                batch=TransactionBatch(
                    customer=_objects(cust),
                    occurred_us=np.array(occurred, dtype=np.int64),
                    kind=_codes("transaction kind", kind),
                    channel=_codes("sales channel", channel),
                    currency=_objects(cur),
                    total_minor=np.array(total, dtype=np.int64),
                    reporting_minor=np.array(reporting, dtype=np.int64),
                    source=_objects(src),
                    external_ref=_objects(ref),
                    id_high=high,
                    id_low=low,
                ),
                lines={
                    i: _lines(text, cur[i]) for i, text in enumerate(lines) if text != _NO_LINES
                },
            )

    def interaction_chunks(self, size: int) -> Iterator[InteractionBatch]:
        t = self._t.interactions
        query = select(
            t.c.customer,
            t.c.occurred_us,
            _coded(t.c.channel, _CHANNEL),
            _coded(t.c.direction, _DIRECTION),
            _coded(t.c.kind, _IX_KIND),
            t.c.subject,
            t.c.notes,
            t.c.outcome,
            t.c.agent,
            t.c.follow_up_due,
            t.c.source,
            t.c.external_ref,
            self._id(t.c.id),
            t.c.key_id,
            t.c.sealed,
        )
        sealer = self._ctx.sealer
        for part in self._stream(query, _size(size)):
            (
                cust,
                occurred,
                channel,
                direction,
                kind,
                subj,
                notes,
                outcome,
                agent,
                follow,
                src,
                ref,
                ids,
                key_ids,
                sealed,
            ) = zip(*part, strict=True)
            high, low = _id_halves(ids)
            if sealer is not None:
                subj, notes, outcome = _opened(
                    sealer, cust, ids, key_ids, sealed, subj, notes, outcome
                )
            yield InteractionBatch(
                customer=_objects(cust),
                occurred_us=np.array(occurred, dtype=np.int64),
                channel=_codes("interaction channel", channel),
                direction=_codes("direction", direction),
                kind=_codes("interaction kind", kind),
                subject=_objects(subj),
                notes=_objects(notes),
                outcome=_objects(outcome),
                agent=_objects(agent),
                follow_up_us=np.fromiter(
                    (NONE_MIN if f is None else _naive_us(f) for f in follow),
                    dtype=np.int64,
                    count=len(follow),
                ),
                source=_objects(src),
                external_ref=_objects(ref),
                id_high=high,
                id_low=low,
            )

    # -- aggregates and segment runs -------------------------------------------------------

    def aggregate_columns(self) -> AggregateColumns:
        conn = self._ctx.read()
        a, c = self._t.aggregates, self._t.customers
        names = (*TRANSACTION_COLUMNS, *INTERACTION_COLUMNS)
        query = (
            select(a.c.customer, *(a.c[n] for n in names))
            .join(c, c.c.number == a.c.customer)
            .where(c.c.erased.is_(False))
            .order_by(a.c.customer)
        )
        with translated("aggregate"):
            rows = conn.execute(query).all()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (len(names) + 1)
        return AggregateColumns(
            numbers=list(columns[0]),
            columns={
                name: np.array(
                    [COLUMN_DEFAULTS[name] if v is None else v for v in values], dtype=np.int64
                )
                for name, values in zip(names, columns[1:], strict=True)
            },
        )

    def memberships(self) -> Iterator[SegmentMembership]:
        conn = self._ctx.read()
        r, m = self._t.segment_runs, self._t.segment_members
        with translated("segment run"):
            runs = conn.execute(select(r.c.segment, r.c.as_of).order_by(r.c.segment, r.c.as_of))
            runs_list = runs.all()
            members: dict[tuple[str, Any], set[CrmNumber]] = {}
            for segment, as_of, customer in conn.execute(
                select(m.c.segment, m.c.as_of, m.c.customer)
            ):
                members.setdefault((segment, as_of), set()).add(CrmNumber(customer))
        for segment, as_of in sorted(runs_list, key=lambda run: (run[0], run[1])):
            yield SegmentMembership(
                segment=segment,
                as_of=as_of,
                members=frozenset(members.get((segment, as_of), ())),
            )
