"""crmcore: an embeddable customer-relationship core.

The public API is re-exported here::

    from crmcore import Crm, InMemoryStore, Customer, CrmNumber, Money

The names load lazily (PEP 562), on first use: ``import crmcore`` (and ``import
crmcore.domain`` or ``crmcore.errors``, which import this package first) loads neither numpy,
nor an adapter, nor the services. ``SqlStore`` needs the ``[sqlalchemy]`` extra only when it is
used. The domain events live in :mod:`crmcore.events`; their old names here still work but
are deprecated.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from crmcore._version import __version__

if TYPE_CHECKING:
    from crmcore.adapters.memory import InMemoryStore as InMemoryStore
    from crmcore.adapters.sqlalchemy import SqlStore as SqlStore
    from crmcore.clock import FixedClock as FixedClock
    from crmcore.clock import SystemClock as SystemClock
    from crmcore.crypto import KeyRing as KeyRing
    from crmcore.domain import DEFAULT_SCHEME as DEFAULT_SCHEME
    from crmcore.domain import TRANSITIONS as TRANSITIONS
    from crmcore.domain import AuditAction as AuditAction
    from crmcore.domain import AuditEntry as AuditEntry
    from crmcore.domain import AuditOutcome as AuditOutcome
    from crmcore.domain import CheckAlgorithm as CheckAlgorithm
    from crmcore.domain import Consent as Consent
    from crmcore.domain import ConsentPurpose as ConsentPurpose
    from crmcore.domain import ContactLabel as ContactLabel
    from crmcore.domain import CrmNumber as CrmNumber
    from crmcore.domain import CrmNumberScheme as CrmNumberScheme
    from crmcore.domain import Customer as Customer
    from crmcore.domain import CustomerAggregate as CustomerAggregate
    from crmcore.domain import Direction as Direction
    from crmcore.domain import EmailAddress as EmailAddress
    from crmcore.domain import Gender as Gender
    from crmcore.domain import Interaction as Interaction
    from crmcore.domain import InteractionChannel as InteractionChannel
    from crmcore.domain import InteractionKind as InteractionKind
    from crmcore.domain import LifecycleStage as LifecycleStage
    from crmcore.domain import Money as Money
    from crmcore.domain import PersonName as PersonName
    from crmcore.domain import PhoneNumber as PhoneNumber
    from crmcore.domain import PostalAddress as PostalAddress
    from crmcore.domain import SalesChannel as SalesChannel
    from crmcore.domain import Segment as Segment
    from crmcore.domain import SegmentMembership as SegmentMembership
    from crmcore.domain import StageChange as StageChange
    from crmcore.domain import Transaction as Transaction
    from crmcore.domain import TransactionKind as TransactionKind
    from crmcore.domain import TransactionLine as TransactionLine
    from crmcore.domain.access import AccessPolicy as AccessPolicy
    from crmcore.domain.access import Decision as Decision
    from crmcore.errors import AccessDenied as AccessDenied
    from crmcore.errors import BackupError as BackupError
    from crmcore.errors import ConcurrencyError as ConcurrencyError
    from crmcore.errors import ConfigurationError as ConfigurationError
    from crmcore.errors import CrmError as CrmError
    from crmcore.errors import CurrencyConversionError as CurrencyConversionError
    from crmcore.errors import DecryptionError as DecryptionError
    from crmcore.errors import DuplicateError as DuplicateError
    from crmcore.errors import ErasedError as ErasedError
    from crmcore.errors import EventDeliveryError as EventDeliveryError
    from crmcore.errors import InvalidTransition as InvalidTransition
    from crmcore.errors import NotFound as NotFound
    from crmcore.errors import RuleSyntaxError as RuleSyntaxError
    from crmcore.errors import ValidationError as ValidationError
    from crmcore.services import Analytics as Analytics
    from crmcore.services import BulkResult as BulkResult
    from crmcore.services import Crm as Crm
    from crmcore.services import Customer360 as Customer360
    from crmcore.services import RecordResult as RecordResult

__all__ = [
    "DEFAULT_SCHEME",
    "TRANSITIONS",
    "AccessDenied",
    "AccessPolicy",
    "Analytics",
    "AuditAction",
    "AuditEntry",
    "AuditOutcome",
    "BackupError",
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
    "Decision",
    "DecryptionError",
    "Direction",
    "DuplicateError",
    "EmailAddress",
    "ErasedError",
    "EventDeliveryError",
    "FixedClock",
    "Gender",
    "InMemoryStore",
    "Interaction",
    "InteractionChannel",
    "InteractionKind",
    "InvalidTransition",
    "KeyRing",
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
    "SegmentMembership",
    "StageChange",
    "SystemClock",
    "Transaction",
    "TransactionKind",
    "TransactionLine",
    "ValidationError",
    "__version__",
]

# Public name -> the module that defines it; imported on first access, then cached here.
# ``SqlStore`` is here but not in ``__all__``: it needs the [sqlalchemy] extra, so a star
# import must not pull it in.
_LAZY: dict[str, str] = {
    "InMemoryStore": "crmcore.adapters.memory",
    "SqlStore": "crmcore.adapters.sqlalchemy",
    "FixedClock": "crmcore.clock",
    "SystemClock": "crmcore.clock",
    "DEFAULT_SCHEME": "crmcore.domain",
    "TRANSITIONS": "crmcore.domain",
    "CheckAlgorithm": "crmcore.domain",
    "Consent": "crmcore.domain",
    "ConsentPurpose": "crmcore.domain",
    "ContactLabel": "crmcore.domain",
    "CrmNumber": "crmcore.domain",
    "CrmNumberScheme": "crmcore.domain",
    "Customer": "crmcore.domain",
    "CustomerAggregate": "crmcore.domain",
    "Direction": "crmcore.domain",
    "EmailAddress": "crmcore.domain",
    "Gender": "crmcore.domain",
    "Interaction": "crmcore.domain",
    "InteractionChannel": "crmcore.domain",
    "InteractionKind": "crmcore.domain",
    "LifecycleStage": "crmcore.domain",
    "Money": "crmcore.domain",
    "PersonName": "crmcore.domain",
    "PhoneNumber": "crmcore.domain",
    "PostalAddress": "crmcore.domain",
    "SalesChannel": "crmcore.domain",
    "Segment": "crmcore.domain",
    "SegmentMembership": "crmcore.domain",
    "StageChange": "crmcore.domain",
    "Transaction": "crmcore.domain",
    "TransactionKind": "crmcore.domain",
    "TransactionLine": "crmcore.domain",
    "AuditAction": "crmcore.domain",
    "AuditEntry": "crmcore.domain",
    "AuditOutcome": "crmcore.domain",
    "AccessPolicy": "crmcore.domain.access",
    "Decision": "crmcore.domain.access",
    "AccessDenied": "crmcore.errors",
    "BackupError": "crmcore.errors",
    "ConcurrencyError": "crmcore.errors",
    "ConfigurationError": "crmcore.errors",
    "CrmError": "crmcore.errors",
    "CurrencyConversionError": "crmcore.errors",
    "DecryptionError": "crmcore.errors",
    "KeyRing": "crmcore.crypto",
    "DuplicateError": "crmcore.errors",
    "ErasedError": "crmcore.errors",
    "EventDeliveryError": "crmcore.errors",
    "InvalidTransition": "crmcore.errors",
    "NotFound": "crmcore.errors",
    "RuleSyntaxError": "crmcore.errors",
    "ValidationError": "crmcore.errors",
    "Analytics": "crmcore.services",
    "BulkResult": "crmcore.services",
    "Crm": "crmcore.services",
    "Customer360": "crmcore.services",
    "RecordResult": "crmcore.services",
}

# The domain events moved to crmcore.events; the old top-level names warn on every access.
_MOVED_TO_EVENTS = frozenset(
    {
        "CustomerErased",
        "CustomerRegistered",
        "CustomerUpdated",
        "CustomersMerged",
        "DomainEvent",
        "InteractionRecorded",
        "SegmentEntered",
        "SegmentExited",
        "StageChanged",
        "TransactionRecorded",
    }
)

# Subpackages that ``import crmcore`` used to load eagerly: ``crmcore.services.Crm`` after a
# bare ``import crmcore`` keeps working (they load on first attribute access now).
_SUBMODULES = frozenset(
    {
        "adapters",
        "analytics",
        "clock",
        "crypto",
        "domain",
        "errors",
        "events",
        "ports",
        "serialization",
        "services",
    }
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later accesses skip this function
        return value
    if name in _MOVED_TO_EVENTS:
        warnings.warn(
            f"crmcore.{name} is deprecated; import it from crmcore.events "
            f"(from crmcore.events import {name})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("crmcore.events"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"crmcore.{name}")
    raise AttributeError(f"module 'crmcore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_LAZY))
