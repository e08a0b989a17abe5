"""Domain events: what happened, for the host to react to (ERP, marketing, messaging).

Events carry identifiers, not personal data: a subscriber that needs the e-mail address looks
the customer up, so an event log or a message queue never becomes a second copy of the
registry that erasure would have to chase.

Hosts import these classes from their public home, :mod:`crmcore.events`, which re-exports
them; they are defined here, in the bottom layer, because the ports and services use them and
the domain must not import anything above it.
"""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from crmcore.domain.lifecycle import LifecycleStage
from crmcore.domain.numbers import CrmNumber
from crmcore.domain.transaction import TransactionKind

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


@attrs.frozen
class DomainEvent:
    """Base class of every event. ``at`` is when it happened (the store clock's time)."""

    at: dt.datetime


@attrs.frozen
class CustomerRegistered(DomainEvent):
    """A new customer was registered under ``customer``."""

    customer: CrmNumber


@attrs.frozen
class CustomerUpdated(DomainEvent):
    """A customer's record changed (``update``); ``version`` is the new version."""

    customer: CrmNumber
    version: int


@attrs.frozen
class InteractionRecorded(DomainEvent):
    """An interaction was recorded for ``customer`` (a duplicate external ref is not)."""

    customer: CrmNumber
    interaction_id: uuid.UUID


@attrs.frozen
class TransactionRecorded(DomainEvent):
    """A transaction was recorded for ``customer`` (a duplicate external ref is not)."""

    customer: CrmNumber
    transaction_id: uuid.UUID
    kind: TransactionKind


@attrs.frozen
class StageChanged(DomainEvent):
    """``customer`` moved from ``from_stage`` to ``to_stage``, for ``reason``."""

    customer: CrmNumber
    from_stage: LifecycleStage
    to_stage: LifecycleStage
    reason: str


@attrs.frozen
class SegmentEntered(DomainEvent):
    """``customer`` became a member of ``segment`` in a segment run."""

    segment: str
    customer: CrmNumber


@attrs.frozen
class SegmentExited(DomainEvent):
    """``customer`` stopped being a member of ``segment`` in a segment run."""

    segment: str
    customer: CrmNumber


@attrs.frozen
class CustomersMerged(DomainEvent):
    """``merged`` was merged into ``survivor`` (its history and contact points moved there)."""

    survivor: CrmNumber
    merged: CrmNumber


@attrs.frozen
class ConsentChanged(DomainEvent):
    """A consent decision was appended to ``customer``'s ledger (``record_id``): ``granted``
    or withdrawn, for ``purpose`` on ``channel`` (``None``: every channel)."""

    customer: CrmNumber
    record_id: uuid.UUID
    purpose: str
    channel: str | None
    granted: bool


@attrs.frozen
class CustomerErased(DomainEvent):
    """``customer``'s personal data was erased; only a tombstone remains."""

    customer: CrmNumber


@attrs.frozen
class _BatchImported(DomainEvent):
    created: int
    duplicates: int
    rejected: int


@attrs.frozen
class CustomersImported(_BatchImported):
    """One batch of a bulk customer import was committed (one event per batch, not per row).

    ``created`` customers were registered, ``duplicates`` skipped as already registered and
    ``rejected`` input rows refused.
    """


@attrs.frozen
class TransactionsImported(_BatchImported):
    """One batch of a bulk transaction import was committed (one event per batch, not per
    row): ``created`` stored, ``duplicates`` already recorded, ``rejected`` refused."""


@attrs.frozen
class InteractionsImported(_BatchImported):
    """One batch of a bulk interaction import was committed (one event per batch, not per
    row): ``created`` stored, ``duplicates`` already recorded, ``rejected`` refused."""
