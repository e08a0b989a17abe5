"""What the use cases return."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from crmcore.domain import Customer, CustomerAggregate, Interaction, Transaction

__all__ = ["BulkResult", "Customer360", "RecordResult", "Registration"]

_R = TypeVar("_R", Interaction, Transaction)


@attrs.frozen
class RecordResult(Generic[_R]):
    """What recording a transaction or interaction did.

    Attributes:
        record: the stored record (the earlier one, if it was already recorded).
        created: ``False`` when ``(source, external_ref)`` had been recorded before and
            nothing was written.
    """

    record: _R
    created: bool


@attrs.frozen
class BulkResult:
    """Counts from a bulk recording call."""

    created: int
    already_recorded: int


@attrs.frozen
class Registration:
    """What :meth:`~crmcore.Crm.register_many` did.

    Attributes:
        registered: the new customers, with their CRM numbers, in input order.
        already_registered: drafts skipped because their ``(source, external_id)`` was
            registered before (or earlier in the same batch).
    """

    registered: tuple[Customer, ...]
    already_registered: int

    @property
    def created(self) -> int:
        """How many customers were registered (``len(registered)``)."""
        return len(self.registered)


@attrs.frozen
class Customer360:
    """Everything about one customer on one screen."""

    customer: Customer
    aggregate: CustomerAggregate
    recent_interactions: tuple[Interaction, ...]
    recent_transactions: tuple[Transaction, ...]
    open_follow_ups: tuple[Interaction, ...]
