"""The in-memory adapter: the reference implementation of every crmcore port."""

from crmcore.adapters.memory._store import InMemoryStore
from crmcore.adapters.memory._uow import MemoryUnitOfWork

__all__ = ["InMemoryStore", "MemoryUnitOfWork"]
