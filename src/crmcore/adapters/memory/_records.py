"""The in-memory transaction and interaction repositories.

Each stores its records in its :class:`~crmcore.adapters.memory._history.HistoryTable` and
folds them into the customer's running aggregates: one record by an O(1) update of a few
cells, a batch column-wise with numpy ``ufunc.at``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final, Generic

import attrs
import numpy as np

from crmcore._epoch import to_us
from crmcore.adapters.memory._columns import ALIVE, Int64Array
from crmcore.adapters.memory._context import TransactionContext
from crmcore.adapters.memory._encoders import (
    INTERACTION_ENCODER,
    PURCHASE_CODE,
    REFUND_CODE,
    TRANSACTION_ENCODER,
)
from crmcore.adapters.memory._history import HistoryTable, R
from crmcore.analytics.columns import COMPLAINT_CODE, INTERACTION_COLUMNS, TRANSACTION_COLUMNS
from crmcore.analytics.totals import INT64_MAX, overflowing_groups, total_overflow
from crmcore.domain import CrmNumber, Interaction, Transaction, TransactionKind
from crmcore.domain._checks import aware_utc
from crmcore.errors import ValidationError
from crmcore.ports.batches import InteractionBatch, TransactionBatch
from crmcore.ports.retention import page_limit, redactable

__all__ = ["Interactions", "Transactions"]

_INTERACTION_COLUMNS: Final = frozenset(INTERACTION_COLUMNS)
_TRANSACTION_COLUMNS: Final = frozenset(TRANSACTION_COLUMNS)
SMALL_BATCH: Final = 48
"""Batches shorter than this are stored record by record: the column-wise path's fixed cost
(a few dozen numpy calls) is more than the per-record path costs for so few rows."""


class _Records(Generic[R]):
    """The reads both record repositories share."""

    def __init__(self, context: TransactionContext, history: HistoryTable[R]) -> None:
        self._context = context
        self._history = history

    def get(self, record_id: uuid.UUID) -> R:
        context = self._context
        context.check_active()
        return self._history.get(record_id, context.state.row_numbers, context.reporting_currency)

    def find_by_external_ref(self, source: str, external_ref: str) -> R | None:
        context = self._context
        context.check_active()
        return self._history.by_ref(
            source, external_ref, context.state.row_numbers, context.reporting_currency
        )

    def for_customer(
        self, number: CrmNumber, *, limit: int | None = None, before: dt.datetime | None = None
    ) -> Sequence[R]:
        context = self._context
        context.check_active()
        state = context.state
        row = state.row_of.get(number)
        return self._history.for_customer(
            row, limit, before, state.row_numbers, context.reporting_currency
        )

    def _store_all(
        self, batch: list[R], customers: list[CrmNumber]
    ) -> dict[str, Int64Array] | None:
        """Store checked records as :meth:`HistoryTable.add_many` does; their encoded
        values (for the caller's aggregate fold), or ``None`` if none was new."""
        context = self._context
        context.check_active()
        return self._history.add_many(
            batch,
            customers,
            context.require_customer,
            context.state.row_of,
            context.undo,
        )

    def _add_each(self, batch: list[R], add: Callable[[R], bool]) -> int:
        """Store a checked batch with the per-record ``add``, as ``add_many`` would (the first
        of a repeated reference wins, an error leaves nothing of the batch)."""
        undo = self._context.undo
        mark = len(undo)
        try:
            return sum(map(add, batch))
        except BaseException:
            while len(undo) > mark:
                undo.pop()()
            raise

    def _rows(self, customers: Any) -> Int64Array:
        """Aggregate rows of a batch's customer numbers (canonical text), checked as
        :meth:`TransactionContext.require_customer` checks them: one dictionary look-up per
        distinct number, then one column-wise "alive" test (erased customers keep their
        row)."""
        context = self._context
        state = context.state
        get = state.row_by_text.get
        items = customers.tolist()
        lookup = {text: get(text, -1) for text in dict.fromkeys(items)}
        if -1 in lookup.values():
            for text in [text for text, row in lookup.items() if row < 0]:
                number = CrmNumber(text)
                context.require_customer(number)  # raises NotFound
                # A customer stored by a path that does not fill the text index.
                lookup[text] = state.row_by_text[text] = state.row_of[number]
        rows = np.fromiter(map(lookup.__getitem__, items), np.int64, len(items))
        dead = np.flatnonzero(context.state.aggregates.columns[ALIVE][rows] == 0)
        if dead.size:
            context.require_customer(CrmNumber(items[int(dead[0])]))  # raises ErasedError
        return rows


class Interactions(_Records[Interaction]):
    """:class:`~crmcore.ports.InteractionRepository` of one in-memory unit of work.

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        super().__init__(context, context.state.interactions)

    def add(self, interaction: Interaction) -> bool:
        if not isinstance(interaction, Interaction):
            raise ValidationError("interaction", interaction, "must be an Interaction")
        context = self._context
        context.check_active()
        number = interaction.customer
        context.require_customer(number)
        state = context.state
        row = state.row_of[number]
        values = self._history.add(interaction, row, context.undo)
        if values is None:
            return False
        occurred, kind = values[0], values[1]
        context.add_interaction(row, occurred, kind == COMPLAINT_CODE)
        context.bump_latest(occurred)
        return True

    def add_many(self, interactions: Sequence[Interaction]) -> int:
        """Like :meth:`add` for each, with the aggregates and the log updated column-wise."""
        batch = list(interactions)
        for interaction in batch:
            if not isinstance(interaction, Interaction):
                raise ValidationError("interaction", interaction, "must be an Interaction")
        if len(batch) < SMALL_BATCH:
            return self._add_each(batch, self.add)
        return self._fold(self._store_all(batch, [record.customer for record in batch]))

    def _fold(self, values: dict[str, Int64Array] | None) -> int:
        if values is None:
            return 0
        context = self._context
        rows, occurred = values["row"], values["occurred_us"]
        complaint = values["kind"] == COMPLAINT_CODE

        def fold(cols: dict[str, Int64Array]) -> None:
            np.add.at(cols["interaction_count"], rows, 1)
            np.add.at(cols["complaint_count"], rows, complaint)
            np.maximum.at(cols["last_interaction_us"], rows, occurred)

        context.update_aggregates(rows, _INTERACTION_COLUMNS, fold)
        context.bump_latest(int(occurred.max()))
        return len(rows)

    def add_batch(self, batch: InteractionBatch) -> int:
        """A validated column batch: stored as :meth:`add_many` stores its records, column-wise
        (no domain object per row)."""
        if not isinstance(batch, InteractionBatch):
            raise ValidationError("batch", batch, "must be an InteractionBatch")
        context = self._context
        context.check_active()
        rows = self._rows(batch.customer)
        history = self._history
        encoded = INTERACTION_ENCODER.encode_batch(batch, history)
        return self._fold(history.add_encoded(encoded, rows, context.undo))

    def with_text_before(
        self, cutoff: dt.datetime, *, after: uuid.UUID | None = None, limit: int = 1000
    ) -> Sequence[tuple[uuid.UUID, CrmNumber]]:
        context = self._context
        context.check_active()
        cut = to_us(aware_utc("cutoff", cutoff))
        limit = page_limit(limit)
        history = self._history
        log = history.log
        mask = (
            (log.view("row") >= 0)
            & (log.view("occurred_us") < cut)
            & ((log.view("subject_len") >= 0) | (log.view("notes_len") >= 0))
        )
        rows = history.first_ids(mask, after, limit)
        numbers = context.state.row_numbers
        owners = log.view("row")
        return [(history.id_of(r), numbers[int(owners[r])]) for r in rows.tolist()]

    def redact(self, ids: Collection[uuid.UUID], fields: Collection[str]) -> int:
        context = self._context
        context.check_active()
        names = redactable(fields)
        history = self._history
        found = [history.row_of_id(i) for i in ids if isinstance(i, uuid.UUID)]
        rows = np.array(sorted({r for r in found if r >= 0}), dtype=np.int64)
        if not names or len(rows) == 0:
            return 0
        return history.blank_texts(rows, names, context.undo)


class Transactions(_Records[Transaction]):
    """:class:`~crmcore.ports.TransactionRepository` of one in-memory unit of work.

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        super().__init__(context, context.state.transactions)

    def redact_line_descriptions(self, number: CrmNumber) -> int:
        context = self._context
        context.check_active()
        row = context.state.row_of.get(number)
        if row is None or number not in context.state.customers:
            return 0
        extras = self._history.extras
        saved: dict[int, Any] = {}
        for r in self._history.rows_of(row).tolist():
            lines: Any = extras.get(r)
            if lines and any(line.description is not None for line in lines):
                saved[r] = lines
                extras[r] = tuple(attrs.evolve(line, description=None) for line in lines)
        context.undo.append(lambda: extras.update(saved))
        return len(saved)

    def _check(self, transaction: object) -> Transaction:
        if not isinstance(transaction, Transaction):
            raise ValidationError("transaction", transaction, "must be a Transaction")
        reporting = transaction.reporting_total
        if reporting is None:
            raise ValidationError(
                "reporting_total", None, "must be set before storing (the services do this)"
            )
        currency = self._context.reporting_currency
        if reporting.currency != currency:
            raise ValidationError(
                "reporting_total.currency",
                reporting.currency,
                f"must be the store's reporting currency {currency}",
            )
        return transaction

    def add(self, transaction: Transaction) -> bool:
        self._check(transaction)
        return self._add_checked(transaction)

    def _add_checked(self, transaction: Transaction) -> bool:
        context = self._context
        context.check_active()
        number = transaction.customer
        context.require_customer(number)
        state = context.state
        row = state.row_of[number]
        cols = state.aggregates.columns
        # Checked before anything is written: numpy would refuse (or wrap) the new total.
        adding = transaction.reporting_total.minor_units  # type: ignore[union-attr]
        total = "refund_minor" if transaction.kind is TransactionKind.REFUND else "purchase_minor"
        if int(cols[total][row]) + adding > INT64_MAX:
            raise total_overflow(total, number, adding)
        values = self._history.add(transaction, row, context.undo)
        if values is None:
            return False
        occurred, kind, minor = values[0], values[1], values[2]
        if kind == PURCHASE_CODE:
            context.add_purchase(row, occurred, minor)
        else:
            context.add_refund(row, minor)
        context.bump_latest(occurred)
        return True

    def add_many(self, transactions: Sequence[Transaction]) -> int:
        """Like :meth:`add` for each, with the aggregates and the log updated column-wise."""
        batch = [self._check(transaction) for transaction in transactions]
        if len(batch) < SMALL_BATCH:
            return self._add_each(batch, self._add_checked)
        mark = len(self._context.undo)
        return self._fold(self._store_all(batch, [record.customer for record in batch]), mark)

    def _fold(self, values: dict[str, Int64Array] | None, mark: int) -> int:
        """Fold stored rows into the aggregates; if a running total would overflow, undo
        the writes since ``mark`` (the rows just stored) and raise."""
        if values is None:
            return 0
        context = self._context
        rows, occurred, minor = values["row"], values["occurred_us"], values["reporting_minor"]
        refund = values["kind"] == REFUND_CODE
        bought = ~refund
        _check_totals(context, rows, minor, bought, refund, mark)

        def fold(cols: dict[str, Int64Array]) -> None:
            np.add.at(cols["purchase_count"], rows[bought], 1)
            np.add.at(cols["purchase_minor"], rows[bought], minor[bought])
            np.minimum.at(cols["first_purchase_us"], rows[bought], occurred[bought])
            np.maximum.at(cols["last_purchase_us"], rows[bought], occurred[bought])
            np.add.at(cols["refund_count"], rows[refund], 1)
            np.add.at(cols["refund_minor"], rows[refund], minor[refund])

        context.update_aggregates(rows, _TRANSACTION_COLUMNS, fold)
        context.bump_latest(int(occurred.max()))
        return len(rows)

    def add_batch(self, batch: TransactionBatch) -> int:
        """A validated column batch: stored as :meth:`add_many` stores its records, column-wise
        (no domain object per row)."""
        if not isinstance(batch, TransactionBatch):
            raise ValidationError("batch", batch, "must be a TransactionBatch")
        context = self._context
        context.check_active()
        rows = self._rows(batch.customer)
        history = self._history
        encoded = TRANSACTION_ENCODER.encode_batch(batch, history)
        mark = len(context.undo)
        return self._fold(history.add_encoded(encoded, rows, context.undo), mark)


def _check_totals(
    context: TransactionContext,
    rows: Int64Array,
    minor: Int64Array,
    bought: Any,
    refund: Any,
    mark: int,
) -> None:
    """Raise (after undoing the writes since ``mark``) if folding ``minor`` at ``rows`` would
    take a purchase or refund total past :data:`INT64_MAX` (``np.add.at`` would wrap)."""
    cols = context.state.aggregates.columns
    for total, mask in (("purchase_minor", bought), ("refund_minor", refund)):
        touched, group = np.unique(rows[mask], return_inverse=True)
        if touched.size == 0:
            continue
        over = overflowing_groups(group, minor[mask], touched.size, cols[total][touched])
        if over.size:
            row = int(touched[over[0]])
            number = context.state.row_numbers[row]
            adding = int(minor[mask][group == over[0]].sum(dtype=object))
            context.undo_to(mark)
            raise total_overflow(total, number, adding)
