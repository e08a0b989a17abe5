"""The adapter contract and the differential state machine on the in-memory store."""

from __future__ import annotations

from hypothesis.stateful import run_state_machine_as_test

from crmcore import InMemoryStore
from crmcore.ports import Store
from crmcore.testing.contract import (
    ConcurrencyContract,
    MetricsSourceContract,
    StoreContract,
    TransferContract,
)
from crmcore.testing.stateful import make_differential_machine

from .conftest import STATEFUL_SETTINGS


class _MemoryStores:
    def make_store(self) -> Store:
        return InMemoryStore(reporting_currency="USD")


class TestInMemoryStore(_MemoryStores, StoreContract):
    pass


class TestInMemoryMetrics(_MemoryStores, MetricsSourceContract):
    pass


class TestInMemoryConcurrency(_MemoryStores, ConcurrencyContract):
    pass


class TestInMemoryTransfer(_MemoryStores, TransferContract):
    pass


def test_the_in_memory_store_agrees_with_a_second_in_memory_store() -> None:
    """The machine itself is sound: two reference stores never diverge."""
    machine = make_differential_machine(lambda: InMemoryStore(reporting_currency="USD"))
    run_state_machine_as_test(machine, settings=STATEFUL_SETTINGS)
