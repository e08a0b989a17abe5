"""The argument checks every store makes for the retention operations of the ports
(:meth:`~crmcore.ports.CustomerRepository.inactive`,
:meth:`~crmcore.ports.InteractionRepository.with_text_before` and
:meth:`~crmcore.ports.InteractionRepository.redact`), so each adapter refuses the same input
with the same error."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from crmcore.errors import ValidationError

__all__ = ["REDACTABLE", "page_limit", "redactable"]

REDACTABLE: Final = ("subject", "notes", "outcome")
"""The free texts of an interaction that :meth:`~crmcore.ports.InteractionRepository.redact`
removes (the agent is the organisation's, not the customer's, and stays)."""


def page_limit(value: object) -> int:
    """A page size: a positive integer.

    Raises:
        ValidationError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("limit", value, "must be a positive integer")
    return value


def redactable(fields: Collection[str]) -> tuple[str, ...]:
    """The fields to redact, in :data:`REDACTABLE` order.

    Raises:
        ValidationError: a field that is not redactable.
    """
    for field in fields:
        if field not in REDACTABLE:
            raise ValidationError("fields", field, f"must be among {list(REDACTABLE)}")
    return tuple(name for name in REDACTABLE if name in fields)
