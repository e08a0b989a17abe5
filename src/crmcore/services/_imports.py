"""The columnar import use cases: Arrow data in, validated batches stored set-wise.

Each batch of the input is validated column by column (:mod:`crmcore.bulk`), its valid rows
are handed to the store's bulk path in one unit of work with one summarising event, and its
invalid rows are reported with their reasons. A failure stores nothing of the batch it
happened in; batches before it stay stored, and re-running the import completes it without
duplicates (rows are idempotent on their import keys).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from crmcore._epoch import to_us
from crmcore.domain import (
    AuditAction,
    AuditEntity,
    CrmNumber,
    CustomersImported,
    InteractionsImported,
    TransactionsImported,
)
from crmcore.errors import ConfigurationError, NotFound, ValidationError

if TYPE_CHECKING:
    from crmcore.bulk import ImportResult
from crmcore.ports import UnitOfWork
from crmcore.services._context import ServiceContext

__all__ = ["CUSTOMER_COLUMNS", "DEFAULT_BATCH_SIZE", "BulkImports", "ImportProgress"]

DEFAULT_BATCH_SIZE: Final = 262_144
"""Rows per batch (and per unit of work) unless the caller chooses."""

ImportProgress = Callable[[int], None]
"""Called after each committed batch with the number of input rows handled so far."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one batch.

    A batch allocates hundreds of thousands of short-lived, acyclic objects (number texts,
    look-up keys, customers); each allocation burst triggers collector passes that walk every
    object the process holds, and a store of a million customers holds tens of millions.
    Reference counting frees the batch's garbage either way; the collector resumes after.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _bulk() -> Any:
    try:
        from crmcore import bulk
    except ImportError as exc:  # pragma: no cover - exercised by the minimal-extras session
        raise ConfigurationError(
            "the columnar import needs pyarrow: pip install 'crmcore[arrow]'"
        ) from exc
    return bulk


def import_history(
    context: ServiceContext,
    what: Literal["transactions", "interactions"],
    data: object,
    *,
    batch_size: int,
    source: str | None,
    customer_source: str | None,
    on_progress: ImportProgress | None,
) -> Any:
    """Import transactions or interactions; see :meth:`crmcore.Crm.import_transactions`."""
    bulk = _bulk()
    _check_batch_size(batch_size)
    context.authorize(*_AUDITED[what])
    columns = bulk.TRANSACTION_COLUMNS if what == "transactions" else bulk.INTERACTION_COLUMNS
    lookup = bulk.CustomerLookup(
        context.store.scheme,
        lambda numbers: _existing(context, numbers),
        lambda src, ids: _by_external_id(context, src, ids),
        customer_source,
    )
    started = time.perf_counter()
    created = duplicates = batches = offset = 0
    rejected: list[Any] = []
    for batch in bulk.record_batches(data, batch_size, frozenset(columns)):
        _check_columns(batch.schema.names, columns)
        with _collector_paused():
            stored, valid, verdicts = _history_batch(
                context, what, batch, offset, lookup, source, bulk
            )
        created += stored
        duplicates += len(valid) - stored
        rejected.extend(verdicts.in_input_order())
        batches += 1
        offset += batch.num_rows
        if on_progress is not None:
            on_progress(offset)
    return bulk.ImportResult(
        created, duplicates, tuple(rejected), time.perf_counter() - started, batches
    )


def _history_batch(
    context: ServiceContext,
    what: str,
    batch: Any,
    offset: int,
    lookup: Any,
    source: str | None,
    bulk: Any,
) -> tuple[int, Any, Any]:
    """Validate and store one batch of history; (stored, valid rows, verdicts)."""
    erased_meanwhile = False
    while True:
        verdicts = bulk.Verdicts(offset, batch.num_rows)
        if what == "transactions":
            valid = bulk.transaction_batch(
                batch,
                verdicts,
                lookup,
                reporting_currency=context.store.reporting_currency,
                converter=context.converter,
                default_source=source,
            )
        else:
            valid = bulk.interaction_batch(batch, verdicts, lookup, default_source=source)
        try:
            stored = _store(context, what, valid, len(verdicts.rejected))
        except NotFound:
            # A customer was erased between the lookup and the write: look again, once.
            if erased_meanwhile:
                raise
            erased_meanwhile = True
            continue
        return stored, valid, verdicts


_AUDITED: Final = {
    "transactions": (AuditAction.IMPORT_TRANSACTIONS, AuditEntity.TRANSACTION),
    "interactions": (AuditAction.IMPORT_INTERACTIONS, AuditEntity.INTERACTION),
}
"""The audit action and entity of each history import."""


def _store(context: ServiceContext, what: str, valid: Any, rejected: int) -> int:
    now = context.now()
    with context.unit() as uow:
        if what == "transactions":
            stored = uow.transactions.add_batch(valid)
            event: Any = TransactionsImported(
                at=now, created=stored, duplicates=len(valid) - stored, rejected=rejected
            )
        else:
            stored = uow.interactions.add_batch(valid)
            event = InteractionsImported(
                at=now, created=stored, duplicates=len(valid) - stored, rejected=rejected
            )
        uow.add_event(event)
        # One entry per batch (its unit of work), with the rows stored: an entry per row
        # would double the writes of a ten-million-row load, and one per call could not be
        # in the same transaction as the batches committed before a failure.
        action, entity = _AUDITED[what]
        context.audit(uow, action, entity, rows=stored)
    return stored


def _existing(context: ServiceContext, texts: Collection[str]) -> set[str]:
    if not texts:
        return set()
    with context.reading() as uow:
        return set(uow.customers.existing_texts(texts))


def _by_external_id(
    context: ServiceContext, source: str, ids: Iterable[str]
) -> Mapping[str, CrmNumber]:
    wanted = set(ids)
    if not wanted:
        return {}
    with context.reading() as uow:
        return dict(uow.customers.numbers_by_external_id(source, wanted))


def _check_columns(names: list[str], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValidationError(
            "columns", unknown, f"are not import columns (allowed: {', '.join(allowed)})"
        )


CUSTOMER_COLUMNS: Final = (
    "source",
    "external_id",
    "given_name",
    "family_name",
    "display_name",
    "emails",
    "phones",
    "phone_region",
    "birth_date",
    "gender",
    "title",
    "job_title",
    "organisation",
    "preferred_channel",
    "tags",
    "owner",
    "stage",
    "registered_at",
)
"""The columns :meth:`crmcore.Crm.import_customers` reads (see docs/importing.md)."""


def import_customers(
    context: ServiceContext,
    data: object,
    *,
    batch_size: int,
    source: str | None,
    on_progress: ImportProgress | None,
) -> Any:
    """Import customers; see :meth:`crmcore.Crm.import_customers`.

    Each batch is validated column by column with :meth:`~crmcore.Crm.new_customer`'s rules
    (:func:`crmcore.bulk.customer_columns`); in one unit of work the rows whose import key is
    new are numbered with one allocator call and stored with the repository's ``add_batch``.
    """
    from crmcore.ports.customer_batch import CustomerBatch

    bulk = _bulk()
    _check_batch_size(batch_size)
    context.authorize(AuditAction.IMPORT_CUSTOMERS, AuditEntity.CUSTOMER)
    started = time.perf_counter()
    created = duplicates = batches = offset = 0
    rejected: list[Any] = []
    text = frozenset(CUSTOMER_COLUMNS) - {"birth_date", "registered_at"}
    for batch in bulk.record_batches(data, batch_size, text):
        _check_columns(batch.schema.names, CUSTOMER_COLUMNS)
        verdicts = bulk.Verdicts(offset, batch.num_rows)
        now = context.now()
        with _collector_paused():
            columns = bulk.customer_columns(
                batch, verdicts, now_us=to_us(now), default_source=source
            )
        with _collector_paused(), context.unit() as uow:
            fresh = _new_keys(uow, columns["source"], columns["external_id"], verdicts.ok)
            count = int(fresh.sum())
            if count:
                store = context.store
                numbers = bulk.format_numbers(store.scheme, store.allocator.allocate_many(count))
                uow.customers.add_batch(
                    CustomerBatch(number=numbers, **{k: v[fresh] for k, v in columns.items()})
                )
            repeated = int(verdicts.ok.sum()) - count
            uow.add_event(
                CustomersImported(
                    at=now, created=count, duplicates=repeated, rejected=len(verdicts.rejected)
                )
            )
            context.audit(uow, AuditAction.IMPORT_CUSTOMERS, AuditEntity.CUSTOMER, rows=count)
        created += count
        duplicates += repeated
        rejected.extend(verdicts.in_input_order())
        batches += 1
        offset += batch.num_rows
        if on_progress is not None:
            on_progress(offset)
    return bulk.ImportResult(
        created, duplicates, tuple(rejected), time.perf_counter() - started, batches
    )


def _new_keys(uow: UnitOfWork, sources: Any, external_ids: Any, ok: Any) -> Any:
    """Which accepted rows to register: those without an import key, and the first row of
    each ``(source, external_id)`` not registered yet (``register_many``'s rule)."""
    import numpy as np

    fresh = ok.copy()
    keyed = np.flatnonzero(ok & (external_ids != None))  # noqa: E711 - element-wise
    if not keyed.size:
        return fresh
    pairs = list(zip(sources[keyed].tolist(), external_ids[keyed].tolist(), strict=True))
    wanted: dict[str, set[str]] = {}
    for src, external_id in pairs:
        wanted.setdefault(src, set()).add(external_id)
    known = {
        (src, external_id)
        for src, ids in wanted.items()
        for external_id in uow.customers.numbers_by_external_id(src, ids)
    }
    for row, key in zip(keyed.tolist(), pairs, strict=True):
        if key in known:
            fresh[row] = False
        else:
            known.add(key)  # a repeat within the batch: the first wins
    return fresh


def _check_batch_size(batch_size: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("batch_size", batch_size, "must be a positive integer")


class BulkImports:
    """The columnar import use cases of :class:`~crmcore.Crm` (a mixin: ``Crm`` inherits
    them; they need its :attr:`context`)."""

    context: ServiceContext

    def import_transactions(
        self,
        data: object,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        source: str | None = None,
        customer_source: str | None = None,
        on_progress: ImportProgress | None = None,
    ) -> ImportResult:
        """Load transactions from Arrow data, column by column; idempotent on
        ``(source, external_ref)``.

        ``data`` is a ``pyarrow`` Table, RecordBatch or RecordBatchReader, any object with
        ``__arrow_c_stream__`` (a polars or pandas DataFrame, a DuckDB result), or the path
        of a ``.parquet`` or ``.csv`` file, read in batches of ``batch_size`` rows so a file
        larger than memory loads with bounded memory. The columns are documented in
        ``docs/importing.md``: the customer by ``crm_number`` or by
        ``customer_external_id`` (with ``customer_source``), ``occurred_at`` (timestamps
        with a time zone, or ISO 8601 text with an offset), ``kind``, ``amount`` (decimal,
        integer or decimal text; never float), ``currency``, and optional ``channel``,
        ``source``, ``external_ref``.

        Every row meets the per-row API's rules; a bad row is reported in
        :attr:`~crmcore.bulk.ImportResult.rejected` (row, field, value, reason) and the good
        rows are stored. Each batch is one unit of work with one
        :class:`~crmcore.events.TransactionsImported` event; re-running an import stores
        nothing twice, so an interrupted import is completed by running it again.

        Args:
            data: the input (see above).
            batch_size: rows per batch and per unit of work.
            source: ``source`` of rows that have none.
            customer_source: ``customer_source`` of rows that have none.
            on_progress: called after each batch with the number of rows handled.

        Raises:
            ValidationError: unknown columns, a float money column, naive timestamps, or
                data of an unknown kind (nothing of the batch is stored).
            ConfigurationError: ``pyarrow`` is not installed.
        """
        result: ImportResult = import_history(
            self.context,
            "transactions",
            data,
            batch_size=batch_size,
            source=source,
            customer_source=customer_source,
            on_progress=on_progress,
        )
        return result

    def import_interactions(
        self,
        data: object,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        source: str | None = None,
        customer_source: str | None = None,
        on_progress: ImportProgress | None = None,
    ) -> ImportResult:
        """Load interactions from Arrow data, column by column; idempotent on
        ``(source, external_ref)``.

        Like :meth:`import_transactions`, with the columns ``occurred_at``, ``channel``,
        ``direction``, ``kind`` and optional ``subject``, ``notes``, ``outcome``, ``agent``,
        ``follow_up_due``, ``source``, ``external_ref`` (``docs/importing.md``). One
        :class:`~crmcore.events.InteractionsImported` event per batch.
        """
        result: ImportResult = import_history(
            self.context,
            "interactions",
            data,
            batch_size=batch_size,
            source=source,
            customer_source=customer_source,
            on_progress=on_progress,
        )
        return result

    def import_customers(
        self,
        data: object,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        source: str | None = None,
        on_progress: ImportProgress | None = None,
    ) -> ImportResult:
        """Register customers from Arrow data; idempotent on ``(source, external_id)``.

        Columns (``docs/importing.md``): ``given_name``/``family_name``/``display_name`` (at
        least one), optional ``source``, ``external_id``, ``emails``, ``phones`` (lists, or
        text separated by ``;``), ``phone_region``, ``birth_date``, ``gender``, ``title``,
        ``job_title``, ``organisation``, ``preferred_channel``, ``tags``, ``owner``,
        ``stage``, ``registered_at``. Each row is checked exactly as
        :meth:`~crmcore.Crm.new_customer` checks its arguments; a batch is one unit of work
        with one :class:`~crmcore.events.CustomersImported` event (no per-customer events).
        """
        result: ImportResult = import_customers(
            self.context,
            data,
            batch_size=batch_size,
            source=source,
            on_progress=on_progress,
        )
        return result
