"""Interactions and transactions: the customer's history, written once and folded in aggregates.

Both tables share their shape (an id, the customer, ``occurred_at``/``occurred_us``, an
optional ``(source, external_ref)`` that is unique) and so their repository code
(:class:`_History`); each kind adds its row mapping and its fold into the aggregates.
"""

from __future__ import annotations

import abc
import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, Table, exists, false, or_, select, update

from crmcore.adapters.sqlalchemy._aggregates import (
    fold_interactions,
    fold_transactions,
    refuse_fold,
)
from crmcore.adapters.sqlalchemy._batchcolumns import interaction_columns, transaction_columns
from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.adapters.sqlalchemy._lookups import (
    chunks,
    key_of,
    refs_in,
    require_customers,
    where_in,
)
from crmcore.adapters.sqlalchemy._mapping import (
    interaction_from_row,
    interaction_row,
    lines_without_descriptions,
    transaction_from_row,
    transaction_row,
)
from crmcore.adapters.sqlalchemy._row_writes import (
    ERASED_WHILE_RECORDING,
    combined_insert,
    interaction_deltas,
    row_fold,
    row_totals,
    transaction_deltas,
)
from crmcore.adapters.sqlalchemy._sealing import INTERACTION_FIELDS, record_hex
from crmcore.adapters.sqlalchemy._staging import (
    fold_staged_interactions,
    fold_staged_transactions,
    refuse_batch_overflow,
    store_staged,
)
from crmcore.domain import CrmNumber, Interaction, Transaction
from crmcore.domain._checks import aware_utc
from crmcore.errors import (
    ConcurrencyError,
    DuplicateError,
    ErasedError,
    NotFound,
    ValidationError,
)
from crmcore.ports.batches import InteractionBatch, TransactionBatch
from crmcore.ports.retention import page_limit, redactable

__all__ = ["SqlInteractions", "SqlTransactions"]


def _validate_limit(limit: int | None, before: dt.datetime | None) -> dt.datetime | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValidationError("limit", limit, "must be a non-negative integer")
    return None if before is None else aware_utc("before", before)


class _History(abc.ABC):
    """Shared add/get/list logic of interactions and transactions."""

    kind = "record"

    def __init__(self, context: TransactionContext) -> None:
        self._ctx = context
        self._t = context.tables

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
        """Insert rows skipping known (source, external_ref); fold the new ones in aggregates.

        The bulk import's batches take the set-wise path of ``_staging`` instead.
        """
        conn = self._ctx.write()
        if not rows:
            return 0
        table = self._table()
        with translated(self.kind):
            if len(rows) == 1:
                return self._store_one(conn, table, rows[0])
            require_customers(
                self._ctx.dialect, conn, self._t.customers, (r["customer"] for r in rows)
            )
            # As the in-memory store, row by row: "already recorded" (a stored reference, or
            # one earlier in the batch: the first wins) wins over "id taken", so retrying the
            # very same record is a no-op; only a record with a new reference (or none) whose
            # id is taken is a DuplicateError.
            wanted = sorted(
                {(r["source"], r["external_ref"]) for r in rows if r["external_ref"] is not None}
            )
            refs = refs_in(self._ctx.dialect, conn, table, wanted)
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
            for where in where_in(self._ctx.dialect, table.c.id, [r["id"] for r in unique]):
                hit = conn.execute(select(table.c.id).where(where).limit(1)).first()
                if hit is not None:
                    raise DuplicateError(f"{self.kind} id", _as_uuid(hit[0]))
            if not unique:
                return 0
            new = self._insert(conn, table, unique)
            if new:
                self._fold(conn, new)
        return len(new)

    def _store_one(self, conn: Connection, table: Table, row: dict[str, Any]) -> int:
        """One row, with the checks of :meth:`_store` in as few statements as the dialect
        allows (recording one record is the common case of the services), each compiled
        once per store (``_prepared``).

        PostgreSQL: one statement, the guarded INSERT (:func:`guarded_insert`: stores the
        row only if its customer is alive and neither its reference nor its id is taken)
        and the fold of the row into its customer's aggregates (``_row_writes``). SQLite:
        the guarded INSERT, then the fold. Only when the INSERT stored nothing is the reason
        looked up (:meth:`_recorded`). MariaDB/MySQL: :meth:`_recorded` first, then
        :meth:`_store`'s INSERT and the fold.
        """
        ctx = self._ctx
        statements = ctx.inserts.prepared
        fold, deltas = self._deltas(row)
        columns = tuple(row)
        params = {f"v_{k}": v for k, v in row.items()}
        if ctx.dialect == "postgresql":
            a, customers = self._t.aggregates, self._t.customers
            combined = statements.get(
                conn,
                ("record", table.name, columns, fold),
                lambda: combined_insert(ctx.dialect, table, customers, a, columns, fold),
            )
            if combined is not None:
                counts = combined.execute(conn, params | deltas).one()
                inserted, folded = counts[0], counts[1]
                if inserted == 1:
                    if folded != 1:
                        self._refuse_fold(conn, row["customer"], fold, deltas)
                    return 1
                return self._not_stored(conn, table, row)
        if ctx.dialect in ("postgresql", "sqlite"):
            guarded = ctx.inserts.guarded(table, self._t.customers, columns)
            prepared = statements.get(conn, ("guarded", table.name, columns), lambda: guarded)
            result = (
                conn.execute(guarded, params)
                if prepared is None
                else prepared.execute(conn, params)
            )
            if result.rowcount == 1:
                self._fold_one(conn, row["customer"], fold, deltas)
                return 1
            return self._not_stored(conn, table, row)
        if self._recorded(conn, table, row):
            return 0
        new = self._insert(conn, table, [row])
        if new:
            self._fold_one(conn, row["customer"], fold, deltas)
        return len(new)

    def _not_stored(self, conn: Connection, table: Table, row: dict[str, Any]) -> int:
        """The guarded INSERT stored nothing: 0 if the reference is recorded, else the
        reason (:meth:`_recorded` raises it) or a concurrent change."""
        if self._recorded(conn, table, row):
            return 0
        raise ConcurrencyError(f"the {self.kind} was not stored (a concurrent change); retry")

    def _fold_one(self, conn: Connection, customer: str, fold: str, deltas: dict[str, Any]) -> None:
        """Fold one stored row into its customer's aggregate row (one UPDATE)."""
        a = self._t.aggregates
        values = deltas | {"d_customer": customer}
        prepared = self._ctx.inserts.prepared.get(conn, ("fold", fold), lambda: row_fold(a, fold))
        result = (
            conn.execute(row_fold(a, fold), values)
            if prepared is None
            else prepared.execute(conn, values)
        )
        if result.rowcount != 1:
            self._refuse_fold(conn, customer, fold, deltas)

    def _refuse_fold(
        self, conn: Connection, customer: str, fold: str, deltas: dict[str, Any]
    ) -> None:
        """Raise why one row's fold updated nothing: a running total that would overflow
        (a ``ValidationError`` naming it), else a concurrent erase."""
        totals = row_totals(fold)
        if not totals:
            raise ConcurrencyError(ERASED_WHILE_RECORDING)
        refuse_fold(
            self._ctx,
            conn,
            [{"customer": customer} | {c: deltas[f"d_{c}"] for c in totals}],
            totals,
        )

    @abc.abstractmethod
    def _deltas(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Overridden by both subclasses (``_row_writes``)."""

    def _recorded(self, conn: Connection, table: Table, row: dict[str, Any]) -> bool:
        """Whether ``row``'s reference is stored, in one SELECT; its checks come in the
        order of :meth:`_store`: the customer, then the reference, then the id.

        Raises:
            NotFound: the customer does not exist.
            ErasedError: the customer was erased.
            DuplicateError: the reference is new (or there is none) and the id is taken.
        """
        customers = self._t.customers
        ref = row["external_ref"]
        recorded: Any = false()
        if ref is not None:
            recorded = exists().where(table.c.source == row["source"], table.c.external_ref == ref)
        # A shared lock on the customer's row (see ``alive``): a merge or erase that holds
        # it for update makes this wait, and then read the row as that unit committed it.
        found = conn.execute(
            select(customers.c.erased, recorded, exists().where(table.c.id == row["id"]))
            .where(customers.c.number == row["customer"])
            .with_for_update(read=True, key_share=True)
        ).first()
        if found is None:
            raise NotFound("customer", CrmNumber(row["customer"]))
        erased, stored, taken = found
        if erased:
            raise ErasedError("customer", CrmNumber(row["customer"]))
        if stored:
            return True
        if taken:
            raise DuplicateError(f"{self.kind} id", _as_uuid(row["id"]))
        return False

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
        rowcount = self._ctx.inserts.insert_ignoring_refs(conn, table, rows)
        if rowcount == len(rows) and self._ctx.dialect not in ("mysql", "mariadb"):
            return rows
        inserted: set[uuid.UUID] = set()
        for where in where_in(self._ctx.dialect, table.c.id, [r["id"] for r in rows]):
            inserted.update(
                _as_uuid(i) for i in conn.execute(select(table.c.id).where(where)).scalars()
            )
        return [r for r in rows if _as_uuid(r["id"]) in inserted]

    def _get(self, item_id: uuid.UUID) -> Any:
        conn = self._ctx.read()
        if not isinstance(item_id, uuid.UUID):
            raise NotFound(self.kind, item_id)
        table = self._table()
        with translated(self.kind):
            row = conn.execute(select(table).where(table.c.id == item_id)).mappings().first()
        if row is None:
            raise NotFound(self.kind, item_id)
        return self._from_row(row)

    def _by_ref(self, source: str, external_ref: str) -> Any:
        conn = self._ctx.read()
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
        conn = self._ctx.read()
        cutoff = _validate_limit(limit, before)
        table = self._table()
        query = (
            select(table)
            .where(table.c.customer == key_of(number))
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


class SqlInteractions(_History):
    """The interactions of one unit of work (see :class:`~crmcore.ports.InteractionRepository`)."""

    kind = "interaction"

    def _table(self) -> Table:
        return self._t.interactions

    def _from_row(self, row: Any) -> Interaction:
        sealer = self._ctx.sealer
        return interaction_from_row(row if sealer is None else sealer.open_interaction(row))

    def add(self, interaction: Interaction) -> bool:
        return self.add_many([interaction]) == 1

    def add_many(self, interactions: Sequence[Interaction]) -> int:
        items = list(interactions)
        for item in items:
            if not isinstance(item, Interaction):
                raise ValidationError("interaction", item, "must be an Interaction")
        rows = [interaction_row(i) for i in items]
        sealer = self._ctx.sealer
        if sealer is not None:
            for row in rows:
                sealer.seal_interaction(row)
        return self._store(rows)

    def add_batch(self, batch: InteractionBatch) -> int:
        data, has_refs = interaction_columns(batch, self._ctx.sealer)
        return store_staged(
            self._ctx, self.kind, self._table(), data, fold_staged_interactions, has_refs=has_refs
        )

    def _fold(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        fold_interactions(self._ctx, conn, rows)

    def _deltas(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return interaction_deltas(row)

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

    def with_text_before(
        self, cutoff: dt.datetime, *, after: uuid.UUID | None = None, limit: int = 1000
    ) -> Sequence[tuple[uuid.UUID, CrmNumber]]:
        conn = self._ctx.read()
        when = aware_utc("cutoff", cutoff)
        limit = page_limit(limit)
        i = self._t.interactions
        sealer = self._ctx.sealer
        if sealer is None:
            query = select(i.c.id, i.c.customer).where(
                i.c.occurred_at < when, or_(i.c.subject.is_not(None), i.c.notes.is_not(None))
            )
            if after is not None:
                query = query.where(i.c.id > after)
            with translated(self.kind):
                rows = conn.execute(query.order_by(i.c.id).limit(limit)).all()
            return [(_as_uuid(ident), CrmNumber(customer)) for ident, customer in rows]
        # Sealed texts are one ciphertext per field whatever the value: open them to tell.
        found: list[tuple[uuid.UUID, CrmNumber]] = []
        while len(found) < limit:
            query = select(i).where(i.c.occurred_at < when)
            if after is not None:
                query = query.where(i.c.id > after)
            with translated(self.kind):
                page = conn.execute(query.order_by(i.c.id).limit(limit)).mappings().all()
            if not page:
                break
            for row in page:
                opened = sealer.open_interaction(dict(row))
                if opened["subject"] is not None or opened["notes"] is not None:
                    found.append((_as_uuid(row["id"]), CrmNumber(row["customer"])))
            after = _as_uuid(page[-1]["id"])
        return found[:limit]

    def redact(self, ids: Collection[uuid.UUID], fields: Collection[str]) -> int:
        conn = self._ctx.write()
        names = redactable(fields)
        keys = sorted({i for i in ids if isinstance(i, uuid.UUID)})
        if not names or not keys:
            return 0
        i = self._t.interactions
        sealer = self._ctx.sealer
        changed = 0
        with translated(self.kind):
            for chunk in chunks(keys):
                if sealer is None:
                    result = conn.execute(
                        update(i)
                        .where(i.c.id.in_(chunk), or_(*(i.c[n].is_not(None) for n in names)))
                        .values(dict.fromkeys(names))
                    )
                    changed += result.rowcount
                    continue
                for row in conn.execute(select(i).where(i.c.id.in_(chunk))).mappings().all():
                    opened = sealer.open_interaction(dict(row))
                    if all(opened[n] is None for n in names):
                        continue
                    values = [None if f in names else opened[f] for f in INTERACTION_FIELDS]
                    sealed = sealer.seal_interaction_fields(
                        row["customer"], record_hex(row["id"]), values
                    )
                    conn.execute(
                        update(i)
                        .where(i.c.id == row["id"])
                        .values(
                            sealed=sealed,
                            key_id=sealer.cipher.active_key_id,
                            **dict.fromkeys(INTERACTION_FIELDS),
                        )
                    )
                    changed += 1
        return changed


class SqlTransactions(_History):
    """The transactions of one unit of work (see :class:`~crmcore.ports.TransactionRepository`)."""

    kind = "transaction"

    def _table(self) -> Table:
        return self._t.transactions

    def _from_row(self, row: Any) -> Transaction:
        return transaction_from_row(row, self._ctx.settings.reporting_currency)

    def add(self, transaction: Transaction) -> bool:
        return self.add_many([transaction]) == 1

    def add_many(self, transactions: Sequence[Transaction]) -> int:
        items = list(transactions)
        currency = self._ctx.settings.reporting_currency
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

    def add_batch(self, batch: TransactionBatch) -> int:
        refuse_batch_overflow(batch)
        data, has_refs = transaction_columns(batch)
        return store_staged(
            self._ctx, self.kind, self._table(), data, fold_staged_transactions, has_refs=has_refs
        )

    def _fold(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        fold_transactions(self._ctx, conn, rows)

    def _deltas(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return transaction_deltas(row)

    def redact_line_descriptions(self, number: CrmNumber) -> int:
        conn = self._ctx.write()
        t = self._t.transactions
        with translated(self.kind):
            rows = conn.execute(
                select(t.c.id, t.c.lines).where(t.c.customer == key_of(number))
            ).all()
            changed = 0
            for ident, stored in rows:
                redacted = lines_without_descriptions(stored)
                if redacted is not None:
                    conn.execute(update(t).where(t.c.id == ident).values(lines=redacted))
                    changed += 1
        return changed

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
