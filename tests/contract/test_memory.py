"""The adapter contract and the differential state machine on the in-memory store."""

from __future__ import annotations

from crmcore import InMemoryStore
from crmcore.ports import Store
from crmcore.testing.contract import StoreContract


class TestInMemoryStore(StoreContract):
    def make_store(self) -> Store:
        return InMemoryStore(reporting_currency="USD")
