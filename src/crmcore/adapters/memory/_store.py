"""The in-memory store: the reference implementation of every port.

Design: one unit of work at a time (like SQLite's single writer). A unit of work holds the
store's lock from ``__enter__`` to ``__exit__``, applies each write to the live state at once
and pushes the inverse operation on an undo log; ``rollback`` replays the log backwards,
``commit`` forgets it. Reads inside the unit therefore see its own writes, other threads see
only committed state, and a failed unit leaves no trace. Serialising units is the strongest
isolation there is, and it keeps every write O(1): no copy of the store per unit.

Besides the objects, the store keeps numpy columns (see ``_columns``): per-customer running
aggregates and append-only logs of transactions and interactions, which analytics read
without touching Python objects.

The package's modules, one job each:

- ``_store``: this module, the composition root of one store;
- ``_state``: what a store holds (:class:`MemoryState`) and its lock (:class:`StateGuard`);
- ``_uow``: the unit of work; ``_context``: the transaction context it hands its
  repositories (state, undo log, pending events);
- ``_customers``, ``_records``, ``_aggregates``, ``_segments``, ``_consents``: the
  repositories;
- ``_history``: one generic history of records (column-wise records); ``_encoders``: how
  transactions and interactions become log rows; ``_columns``: growable numpy columns;
- ``_metrics``: analytics' columnar view of a store;
- ``_transfer``: what a dump, restore or copy reads and writes beyond the repositories.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from crmcore.adapters.memory._metrics import MemoryMetrics
from crmcore.adapters.memory._state import MemoryState, StateGuard
from crmcore.adapters.memory._uow import MemoryUnitOfWork
from crmcore.domain import DEFAULT_SCHEME, CrmNumberScheme, currency_exponent
from crmcore.errors import ConfigurationError, ValidationError

__all__ = ["InMemoryStore", "MemoryUnitOfWork"]


class _CounterAllocator:
    """Sequences from a counter under a lock: unique within the process, never reused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def allocate(self) -> int:
        with self._lock:
            self._last += 1
            return self._last

    def allocate_many(self, count: int) -> Sequence[int]:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError("count", count, "must be a non-negative integer")
        with self._lock:
            first = self._last + 1
            self._last += count
            return list(range(first, self._last + 1))

    def position(self) -> int:
        """The last sequence handed out (0 if none): what a dump records."""
        with self._lock:
            return self._last

    def raise_to(self, position: int) -> None:
        """Hand out only sequences above ``position`` from now on (a restore's last step)."""
        with self._lock:
            self._last = max(self._last, position)


class InMemoryStore:
    """A complete crmcore store in process memory.

    The reference implementation of :mod:`crmcore.ports` and the fast default for tests and
    small embedded uses. Units of work are serialised: one runs at a time (others wait), so a
    long-running unit blocks the rest. Nesting two units of the same store in one thread
    raises :class:`~crmcore.errors.ConfigurationError` instead of deadlocking.

    Args:
        scheme: how CRM numbers look.
        reporting_currency: ISO 4217 code all analytics money is reported in.
    """

    def __init__(
        self, *, scheme: CrmNumberScheme = DEFAULT_SCHEME, reporting_currency: str = "USD"
    ) -> None:
        if not isinstance(scheme, CrmNumberScheme):
            raise ConfigurationError(f"scheme must be a CrmNumberScheme, got {scheme!r}")
        currency_exponent(reporting_currency, "reporting_currency")
        self._scheme = scheme
        self._currency = reporting_currency
        self._allocator = _CounterAllocator()
        self._guard = StateGuard(MemoryState())

    @property
    def scheme(self) -> CrmNumberScheme:
        return self._scheme

    @property
    def reporting_currency(self) -> str:
        return self._currency

    @property
    def allocator(self) -> _CounterAllocator:
        return self._allocator

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self._guard, self._currency, self._allocator)

    def metrics_source(self) -> MemoryMetrics:
        """Analytics' columnar view of this store (see ``crmcore.adapters.memory._metrics``)."""
        return MemoryMetrics(self._guard, self)

    def _read_state(self) -> StateGuard:
        """The store's lock around its state: ``with store._read_state() as state: ...``.

        For white-box tests of this adapter only; the package's own readers are handed the
        guard when the store makes them.
        """
        return self._guard

    def __repr__(self) -> str:
        return (
            f"InMemoryStore(scheme={self._scheme.prefix}/{self._scheme.width}, "
            f"reporting_currency={self._currency!r}, "
            f"customers={len(self._guard.state.customers)})"
        )
