"""The adapter contract: what every crmcore store must do, as test cases you can inherit.

:mod:`crmcore.ports` says in prose what a store must do; this package says it in executable
form. Apply it to an adapter by subclassing :class:`StoreContract` in a test module and
telling it how to make a fresh, empty store::

    from crmcore.testing.contract import StoreContract
    from my_adapter import MyStore

    class TestMyStore(StoreContract):
        def make_store(self):
            return MyStore.connect("...")

        def close_store(self, store):   # optional: release what make_store took
            store.drop_everything()

pytest collects every ``test_*`` method of the subclass. crmcore applies the very same class
to the in-memory store, SQLite (file and ``:memory:``), PostgreSQL and MariaDB, so a
third-party adapter that passes it behaves like crmcore's own.

:class:`StoreContract` is composed of one class per port, each usable on its own in the same
way: :class:`AllocatorContract`, :class:`CustomerRepositoryContract`, :class:`HistoryContract`
(interactions and transactions), :class:`AggregateContract`,
:class:`SegmentRepositoryContract`, :class:`ConsentContract` (the consent ledger),
:class:`AuditLogContract`, :class:`RetentionContract` (what retention needs: inactive
customers, redacting interaction texts and line descriptions) and
:class:`UnitOfWorkContract`. Two more contracts are opt-in, because not every store offers
what they test:

* :class:`MetricsSourceContract`, for a store with a ``metrics_source()``: snapshots equal
  the fold of the stored history, and database-side rule members and RFM scores (the optional
  :class:`~crmcore.analytics.ports.RuleSelector` / ``RfmScorer`` capabilities) equal
  numpy's.
* :class:`TransferContract`, for a store that can be dumped, restored and copied
  (:mod:`crmcore.backup`): its units of work offer :mod:`crmcore.ports.transfer`.
* :class:`ConcurrencyContract`, for a store shared by threads: unique numbers, optimistic
  concurrency conflicts as :class:`~crmcore.errors.ConcurrencyError`, idempotent recording.

Property-style cases use :mod:`crmcore.testing.strategies` with modest example counts
(:data:`PROPERTY_SETTINGS`) so that running the contract on several backends stays fast; each
case makes one store and keeps its examples independent of each other (fresh numbers, fresh
ids), so a slow-to-create store is created once per test, not once per example.

Importing this package imports pytest and hypothesis (they are test dependencies, the
``[testing]`` extra); importing :mod:`crmcore` never does.
"""

from __future__ import annotations

from crmcore.testing.contract._support import PROPERTY_SETTINGS
from crmcore.testing.contract.aggregates import AggregateContract
from crmcore.testing.contract.allocator import AllocatorContract
from crmcore.testing.contract.audit import AuditLogContract
from crmcore.testing.contract.concurrency import ConcurrencyContract
from crmcore.testing.contract.consents import ConsentContract
from crmcore.testing.contract.customers import CustomerRepositoryContract
from crmcore.testing.contract.history import HistoryContract
from crmcore.testing.contract.metrics import MetricsSourceContract
from crmcore.testing.contract.retention import RetentionContract
from crmcore.testing.contract.segments import SegmentRepositoryContract
from crmcore.testing.contract.transfer import TransferContract
from crmcore.testing.contract.unit_of_work import UnitOfWorkContract

__all__ = [
    "PROPERTY_SETTINGS",
    "AggregateContract",
    "AllocatorContract",
    "AuditLogContract",
    "ConcurrencyContract",
    "ConsentContract",
    "CustomerRepositoryContract",
    "HistoryContract",
    "MetricsSourceContract",
    "RetentionContract",
    "SegmentRepositoryContract",
    "StoreContract",
    "TransferContract",
    "UnitOfWorkContract",
]


class StoreContract(
    AllocatorContract,
    CustomerRepositoryContract,
    HistoryContract,
    AggregateContract,
    SegmentRepositoryContract,
    ConsentContract,
    AuditLogContract,
    RetentionContract,
    UnitOfWorkContract,
):
    """The behaviour every :class:`~crmcore.ports.Store` must have, as pytest test methods.

    Every port's contract in one class. Subclass it in a test module (the subclass's name
    must start with ``Test``) and implement :meth:`make_store`; override :meth:`close_store`
    if a store holds resources. Each test gets a fresh store through the :meth:`store`
    fixture.
    """
