"""crmcore: an embeddable customer-relationship core.

The public API is re-exported here::

    from crmcore import Crm, InMemoryStore, Customer, CrmNumber, Money

``SqlStore`` (the SQLAlchemy adapter) is importable from here too, lazily, so that
``import crmcore`` never needs SQLAlchemy unless you use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore._version import __version__
from crmcore.adapters.memory import InMemoryStore
from crmcore.clock import FixedClock, SystemClock
from crmcore.domain import (
    DEFAULT_SCHEME,
    TRANSITIONS,
    CheckAlgorithm,
    Consent,
    ConsentPurpose,
    ContactLabel,
    CrmNumber,
    CrmNumberScheme,
    Customer,
    CustomerAggregate,
    CustomerErased,
    CustomerRegistered,
    CustomersMerged,
    CustomerUpdated,
    Direction,
    DomainEvent,
    EmailAddress,
    Gender,
    Interaction,
    InteractionChannel,
    InteractionKind,
    InteractionRecorded,
    LifecycleStage,
    Money,
    PersonName,
    PhoneNumber,
    PostalAddress,
    SalesChannel,
    Segment,
    SegmentEntered,
    SegmentExited,
    SegmentMembership,
    StageChange,
    StageChanged,
    Transaction,
    TransactionKind,
    TransactionLine,
    TransactionRecorded,
)
from crmcore.errors import (
    ConcurrencyError,
    ConfigurationError,
    CrmError,
    CurrencyConversionError,
    DuplicateError,
    ErasedError,
    InvalidTransition,
    NotFound,
    RuleSyntaxError,
    ValidationError,
)
from crmcore.services import Analytics, BulkResult, Crm, Customer360, RecordResult

if TYPE_CHECKING:
    from crmcore.adapters.sqlalchemy import SqlStore as SqlStore

__all__ = [
    "DEFAULT_SCHEME",
    "TRANSITIONS",
    "Analytics",
    "BulkResult",
    "CheckAlgorithm",
    "ConcurrencyError",
    "ConfigurationError",
    "Consent",
    "ConsentPurpose",
    "ContactLabel",
    "Crm",
    "CrmError",
    "CrmNumber",
    "CrmNumberScheme",
    "CurrencyConversionError",
    "Customer",
    "Customer360",
    "CustomerAggregate",
    "CustomerErased",
    "CustomerRegistered",
    "CustomerUpdated",
    "CustomersMerged",
    "Direction",
    "DomainEvent",
    "DuplicateError",
    "EmailAddress",
    "ErasedError",
    "FixedClock",
    "Gender",
    "InMemoryStore",
    "Interaction",
    "InteractionChannel",
    "InteractionKind",
    "InteractionRecorded",
    "InvalidTransition",
    "LifecycleStage",
    "Money",
    "NotFound",
    "PersonName",
    "PhoneNumber",
    "PostalAddress",
    "RecordResult",
    "RuleSyntaxError",
    "SalesChannel",
    "Segment",
    "SegmentEntered",
    "SegmentExited",
    "SegmentMembership",
    "StageChange",
    "StageChanged",
    "SystemClock",
    "Transaction",
    "TransactionKind",
    "TransactionLine",
    "TransactionRecorded",
    "ValidationError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # SqlStore needs the [sqlalchemy] extra; import it only when asked for.
    if name == "SqlStore":
        from crmcore.adapters.sqlalchemy import SqlStore

        return SqlStore
    raise AttributeError(f"module 'crmcore' has no attribute {name!r}")
