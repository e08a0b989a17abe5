"""Moving a whole store: what :mod:`crmcore.backup` needs from a store beyond the repositories.

A dump, a restore and a copy read or write *everything* a store holds, including what the
everyday repositories never hand out: the number allocator's position, the tombstones of
erased and merged-away customers, every consent ledger entry, every saved segment run, the
history column-wise and the aggregates of every customer. A store that supports this hands
out units of work that are also :class:`TransferUnitOfWork`: their
:attr:`~TransferUnitOfWork.transfer` repository reads and writes those parts inside the
unit, so a restore commits (or rolls back) them together with the customers, the consent
ledger and the history it writes through the other repositories.

Rules, beside the general ones of :mod:`crmcore.ports`:

* Reads see one consistent state: the unit's.
* Writes are meant for an *empty* store (:meth:`TransferRepository.is_empty`); they skip no
  check the repositories make, but they do not merge with data already there.
* History chunks hold validated columns (:mod:`crmcore.ports.batches`) plus the one thing the
  columns do not: a transaction's lines, by row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

from crmcore.domain import (
    ConsentRecord,
    CrmNumber,
    Customer,
    SegmentMembership,
    TransactionLine,
)
from crmcore.ports import UnitOfWork
from crmcore.ports.batches import InteractionBatch, TransactionBatch

__all__ = [
    "AggregateColumns",
    "TransactionChunk",
    "TransferRepository",
    "TransferUnitOfWork",
]


@attrs.frozen(eq=False)
class TransactionChunk:
    """Some stored transactions, column-wise.

    Attributes:
        batch: every column but the lines.
        lines: the lines of the rows that have some, by row of ``batch``.
    """

    batch: TransactionBatch
    lines: Mapping[int, tuple[TransactionLine, ...]]

    def __len__(self) -> int:
        return len(self.batch)


@attrs.frozen(eq=False)
class AggregateColumns:
    """The running aggregates of every live customer, column-wise, ascending by number.

    Attributes:
        numbers: CRM number text of each row.
        columns: :data:`~crmcore.analytics.columns.TRANSACTION_COLUMNS` and
            :data:`~crmcore.analytics.columns.INTERACTION_COLUMNS`, int64, with the
            sentinels of :data:`~crmcore.analytics.columns.COLUMN_DEFAULTS` for "no instant".
    """

    numbers: Sequence[str]
    columns: Mapping[str, npt.NDArray[np.int64]]


class TransferRepository(Protocol):
    """The parts of a store the everyday repositories do not hand out, for moving a store."""

    def is_empty(self) -> bool:
        """Whether the store holds nothing: no customer (live or erased), no record, no
        segment. The allocator's position does not count (gaps are allowed)."""
        ...

    def allocator_position(self) -> int:
        """The highest sequence the allocator has handed out (0 if none)."""
        ...

    def raise_allocator(self, position: int) -> None:
        """Make the allocator hand out only sequences above ``position`` from now on.

        Raises:
            ValidationError: ``position`` is not a non-negative integer.
        """
        ...

    def customer_chunks(self, size: int) -> Iterator[Sequence[Customer]]:
        """Every live customer, ascending by number, in chunks of at most ``size``.

        The objects are the caller's own (changing them changes nothing stored). A store
        may build them without running the domain's validators again: they are what the
        store itself validated when it stored them.
        """
        ...

    def add_customers(self, customers: Sequence[Customer]) -> None:
        """Store ``customers``, which the caller hands over for good (it keeps no reference:
        a store may keep the objects as they are). Checked as
        :meth:`~crmcore.ports.CustomerRepository.add_many` checks customers.

        Raises:
            ValidationError: an item is not a customer, or breaks a cross-field rule.
            DuplicateError: a number or external id is taken, or repeats in ``customers``.
        """
        ...

    def tombstones(self) -> Sequence[CrmNumber]:
        """The numbers of erased (and merged-away) customers, ascending."""
        ...

    def add_tombstones(self, numbers: Sequence[CrmNumber]) -> None:
        """Retire ``numbers`` as if their customers had been erased.

        Raises:
            DuplicateError: a number is taken (by a customer or a tombstone).
        """
        ...

    def consent_chunks(self, size: int) -> Iterator[Sequence[ConsentRecord]]:
        """Every consent ledger entry, in chunks of at most ``size``: by customer number,
        each customer's in history order (:meth:`~crmcore.ports.ConsentLedger.history`), so
        appending them in this order to an empty store rebuilds the same ledgers. (Loading
        goes through :meth:`~crmcore.ports.ConsentLedger.append_many`.)"""
        ...

    def transaction_chunks(self, size: int) -> Iterator[TransactionChunk]:
        """Every stored transaction, in chunks of at most ``size`` rows."""
        ...

    def interaction_chunks(self, size: int) -> Iterator[InteractionBatch]:
        """Every stored interaction, in chunks of at most ``size`` rows."""
        ...

    def aggregate_columns(self) -> AggregateColumns:
        """The aggregates of every live customer."""
        ...

    def memberships(self) -> Iterator[SegmentMembership]:
        """Every saved segment run, by segment name, then ``as_of``."""
        ...


@runtime_checkable
class TransferUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also offers a :class:`TransferRepository`."""

    @property
    def transfer(self) -> TransferRepository: ...
