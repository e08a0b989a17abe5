"""Domain events: what happened, for the host to react to (ERP, marketing, messaging).

This is the public home of the event classes::

    from crmcore.events import CustomerRegistered, StageChanged

The unit of work collects them during a use case; the host receives them through the handlers
it registers with :meth:`crmcore.Crm.subscribe`. Events carry identifiers, not personal data.

The classes are defined in the domain layer (``crmcore.domain.events``, also re-exported by
:mod:`crmcore.domain`): they are domain vocabulary that the ports (``UnitOfWork.add_event``)
and the services use, and the domain must not import anything above it. This module only
re-exports them, so importing it loads the domain and nothing else (no numpy, no adapter).
The old top-level names (``crmcore.CustomerRegistered``, ...) still work but are deprecated.
"""

from crmcore.domain.events import (
    ConsentChanged,
    CustomerErased,
    CustomerRegistered,
    CustomersImported,
    CustomersMerged,
    CustomerUpdated,
    DomainEvent,
    InteractionRecorded,
    InteractionsImported,
    SegmentEntered,
    SegmentExited,
    StageChanged,
    TransactionRecorded,
    TransactionsImported,
)

__all__ = [
    "ConsentChanged",
    "CustomerErased",
    "CustomerRegistered",
    "CustomerUpdated",
    "CustomersImported",
    "CustomersMerged",
    "DomainEvent",
    "InteractionRecorded",
    "InteractionsImported",
    "SegmentEntered",
    "SegmentExited",
    "StageChanged",
    "TransactionRecorded",
    "TransactionsImported",
]
