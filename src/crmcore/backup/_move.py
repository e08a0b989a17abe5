"""Reading every part of a store into a sink, and the sink that loads parts into a store.

A dump is "store → Parquet sink", a restore "Parquet files → loading sink", a copy "store →
loading sink": all three move the same parts in the same order (customers and tombstones
before the history that refers to them, the history before the aggregates it is checked
against, definitions before their runs) through :class:`Sink`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

import attrs
import numpy as np

from crmcore.domain import (
    AuditEntry,
    CrmNumber,
    CrmNumberScheme,
    Customer,
    Segment,
    SegmentMembership,
)
from crmcore.errors import BackupError, ConfigurationError
from crmcore.ports import Store, UnitOfWork
from crmcore.ports.batches import InteractionBatch
from crmcore.ports.transfer import AggregateColumns, TransactionChunk, TransferUnitOfWork

__all__ = [
    "CUSTOMER_BATCH",
    "HISTORY_BATCH",
    "Loader",
    "Sink",
    "check_compatible",
    "check_target",
    "read_store",
    "transfer_unit",
]

CUSTOMER_BATCH: Final = 10_000
HISTORY_BATCH: Final = 100_000
_RUN_BATCH: Final = 200


class Sink(Protocol):
    """Where the parts of a store go, in this order of calls (each may repeat)."""

    def customers(self, batch: Sequence[Customer]) -> None: ...
    def tombstones(self, numbers: Sequence[CrmNumber]) -> None: ...
    def transactions(self, chunk: TransactionChunk) -> None: ...
    def interactions(self, batch: InteractionBatch) -> None: ...
    def aggregates(self, columns: AggregateColumns) -> None: ...
    def segments(self, segments: Sequence[Segment]) -> None: ...
    def runs(self, runs: Sequence[SegmentMembership]) -> None: ...
    def audit(self, entries: Sequence[AuditEntry]) -> None: ...


def transfer_unit(store: Store) -> TransferUnitOfWork:
    """A unit of work of ``store`` that offers the transfer repository.

    Raises:
        ConfigurationError: the store's units of work do not (a third-party adapter that
            does not implement :class:`~crmcore.ports.transfer.TransferRepository`).
    """
    unit: UnitOfWork = store.unit_of_work()
    if not isinstance(unit, TransferUnitOfWork):
        raise ConfigurationError(
            f"{type(store).__name__} cannot be dumped, restored or copied: its units of work "
            "have no 'transfer' repository (crmcore.ports.transfer.TransferRepository)"
        )
    return unit


def read_store(uow: TransferUnitOfWork, sink: Sink) -> int:
    """Hand every part of the store of ``uow`` (entered) to ``sink``; return the allocator's
    position."""
    transfer = uow.transfer
    for batch in transfer.customer_chunks(CUSTOMER_BATCH):
        sink.customers(batch)
    sink.tombstones(list(transfer.tombstones()))
    for chunk in transfer.transaction_chunks(HISTORY_BATCH):
        sink.transactions(chunk)
    for interactions in transfer.interaction_chunks(HISTORY_BATCH):
        sink.interactions(interactions)
    sink.aggregates(transfer.aggregate_columns())
    sink.segments(list(uow.segments.list()))
    runs: list[SegmentMembership] = []
    for run in transfer.memberships():
        runs.append(run)
        if len(runs) == _RUN_BATCH:
            sink.runs(runs)
            runs = []
    sink.runs(runs)
    entries = uow.audit.query()
    for start in range(0, len(entries), CUSTOMER_BATCH):
        sink.audit(entries[start : start + CUSTOMER_BATCH])
    # Read last, in the same unit: a number handed out meanwhile is not in this state anyway.
    return transfer.allocator_position()


def _sequence(number: CrmNumber, scheme: CrmNumberScheme) -> int:
    """The sequence of ``number`` under ``scheme`` (0 if it is not one of its numbers)."""
    text = number.value
    digits = text[len(scheme.prefix) : len(scheme.prefix) + scheme.width]
    if len(text) != scheme.length or not text.startswith(scheme.prefix) or not digits.isdigit():
        return 0
    return int(digits)


def _sorted_columns(columns: AggregateColumns) -> tuple[list[str], dict[str, np.ndarray]]:
    numbers = list(columns.numbers)
    order = sorted(range(len(numbers)), key=numbers.__getitem__)
    index = np.array(order, dtype=np.int64)
    return [numbers[i] for i in order], {
        name: np.asarray(values)[index] for name, values in columns.columns.items()
    }


@attrs.define
class Loader:
    """A :class:`Sink` that writes every part into the entered unit ``uow`` of an empty
    store; :meth:`finish` raises the allocator and commits.

    Errors name ``files[part]`` (the dump file a part came from, or ``None`` in a copy).

    Args:
        uow: the target's unit of work, entered.
        scheme: the target store's number scheme.
        reporting_currency: the target store's reporting currency.
        files: the file of each part (``"customers"``, ``"transactions"``, ...).
    """

    uow: TransferUnitOfWork
    scheme: CrmNumberScheme
    reporting_currency: str
    files: dict[str, str | None] = attrs.Factory(dict)
    highest: int = 0
    checked: bool = False

    def _file(self, part: str) -> str | None:
        return self.files.get(part)

    def _numbers(self, numbers: Sequence[CrmNumber]) -> None:
        if numbers:
            self.highest = max(self.highest, max(_sequence(n, self.scheme) for n in numbers))

    def customers(self, batch: Sequence[Customer]) -> None:
        if batch:
            # The batch is the sink's alone (read for this move): the store may keep it.
            self.uow.transfer.add_customers(batch)
            self._numbers([c.number for c in batch])

    def tombstones(self, numbers: Sequence[CrmNumber]) -> None:
        if numbers:
            self.uow.transfer.add_tombstones(numbers)
            self._numbers(numbers)

    def _stored(self, part: str, expected: int, stored: int) -> None:
        if stored != expected:
            raise BackupError(
                f"{expected - stored} of {expected} rows repeat an id or an external "
                "reference already loaded",
                self._file(part),
            )

    def transactions(self, chunk: TransactionChunk) -> None:
        batch = chunk.batch
        if not len(batch):
            return
        lined = np.zeros(len(batch), dtype=bool)
        lined[list(chunk.lines)] = True
        stored = 0
        if not lined.all():
            stored += self.uow.transactions.add_batch(batch.take(~lined))
        if lined.any():
            # Lines have no column in a batch: those few rows go in as domain objects.
            rows = lined.nonzero()[0]
            records = [
                attrs.evolve(record, lines=chunk.lines[int(row)])
                for row, record in zip(
                    rows, batch.take(rows).records(self.reporting_currency), strict=True
                )
            ]
            stored += self.uow.transactions.add_many(records)
        self._stored("transactions", len(batch), stored)

    def interactions(self, batch: InteractionBatch) -> None:
        if len(batch):
            self._stored("interactions", len(batch), self.uow.interactions.add_batch(batch))

    def aggregates(self, columns: AggregateColumns) -> None:
        """Check the aggregates the loaded history gave against ``columns`` (the source's)."""
        mine_numbers, mine = _sorted_columns(self.uow.transfer.aggregate_columns())
        theirs_numbers, theirs = _sorted_columns(columns)
        file = self._file("aggregates")
        if mine_numbers != theirs_numbers:
            raise BackupError(
                f"lists {len(theirs_numbers)} customers, the restored store has "
                f"{len(mine_numbers)}",
                file,
            )
        for name, values in theirs.items():
            wrong = (mine[name] != values).nonzero()[0]
            if len(wrong):
                raise BackupError(
                    f"{name} of customer {theirs_numbers[int(wrong[0])]} differs from what its "
                    f"history gives ({int(values[wrong[0]])} dumped, "
                    f"{int(mine[name][wrong[0]])} recomputed)",
                    file,
                )
        self.checked = True

    def segments(self, segments: Sequence[Segment]) -> None:
        for segment in segments:
            self.uow.segments.save(segment)

    def runs(self, runs: Sequence[SegmentMembership]) -> None:
        for run in runs:
            self.uow.segments.save_membership(run)

    def audit(self, entries: Sequence[AuditEntry]) -> None:
        # Appended in the source's order (instant, then insertion), which the target keeps.
        if entries:
            self.uow.audit.append_many(entries)

    def finish(self, allocator_position: int) -> None:
        """Raise the allocator above every loaded number and ``allocator_position``, commit."""
        if not self.checked:  # pragma: no cover - every reader hands over the aggregates
            raise BackupError("no aggregates were checked", self._file("aggregates"))
        self.uow.transfer.raise_allocator(max(self.highest, allocator_position))
        self.uow.commit()


def check_target(store: Store, uow: TransferUnitOfWork) -> None:
    """Refuse a target store that is not empty.

    Raises:
        BackupError: it is not.
    """
    if not uow.transfer.is_empty():
        raise BackupError(
            f"the target store {type(store).__name__} is not empty: a restore or copy loads "
            "into an empty store only (nothing was written)"
        )


def check_compatible(
    target: Store, scheme: CrmNumberScheme, reporting_currency: str, file: str | None
) -> None:
    """Refuse a target whose number scheme or reporting currency differ from the source's.

    Raises:
        BackupError: they differ.
    """
    if target.scheme != scheme:
        raise BackupError(
            f"the source's CRM numbers are {scheme.prefix}/{scheme.width}/"
            f"{scheme.algorithm.value}, the target store's {target.scheme.prefix}/"
            f"{target.scheme.width}/{target.scheme.algorithm.value}",
            file,
        )
    if target.reporting_currency != reporting_currency:
        raise BackupError(
            f"the source reports in {reporting_currency}, the target store in "
            f"{target.reporting_currency} (reporting totals would be wrong)",
            file,
        )
