"""What the use cases return, and the registration step the bulk use cases share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import attrs

from crmcore.domain import Customer, CustomerAggregate, Interaction, Transaction
from crmcore.domain._checks import trusted
from crmcore.ports import Store, UnitOfWork

__all__ = ["BulkResult", "Customer360", "RecordResult", "Registration", "register_drafts"]

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


def register_drafts(store: Store, uow: UnitOfWork, drafts: Sequence[Customer]) -> Registration:
    """Number and store the drafts whose import key is new (the first of a repeat wins).

    The core of :meth:`~crmcore.Crm.register_many` and the customer import, inside the
    caller's unit of work; the caller adds the events.
    """
    wanted: dict[str, set[str]] = {}
    for draft in drafts:
        if draft.source is not None and draft.external_id is not None:
            wanted.setdefault(draft.source, set()).add(draft.external_id)
    known = {
        (source, external_id)
        for source, ids in wanted.items()
        for external_id in uow.customers.numbers_by_external_id(source, ids)
    }
    fresh: list[Customer] = []
    for draft in drafts:
        if draft.source is not None and draft.external_id is not None:
            key = (draft.source, draft.external_id)
            if key in known:
                continue
            known.add(key)  # a repeat within the batch: the first wins
        fresh.append(draft)
    registered: tuple[Customer, ...] = ()
    if fresh:
        scheme = store.scheme
        sequences = store.allocator.allocate_many(len(fresh))
        # Every field of a Customer was validated when it was built (an invalid one cannot
        # exist) and none is mutable, so the numbered copy skips evolve()'s second pass of
        # the validators; the new number comes from the scheme itself.
        names = [a.name for a in attrs.fields(Customer) if a.name != "number"]
        registered = tuple(
            trusted(
                Customer,
                number=scheme.format(sequence),
                **{name: getattr(draft, name) for name in names},
            )
            for draft, sequence in zip(fresh, sequences, strict=True)
        )
        uow.customers.add_many(registered)
    return Registration(registered, len(drafts) - len(registered))
