"""The fields of a customer metrics snapshot: one schema for snapshots, rules and compilers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

import attrs

from crmcore.domain import Gender, InteractionChannel, LifecycleStage

__all__ = ["FIELDS", "FieldKind", "FieldSpec"]


class FieldKind(enum.Enum):
    """What values a field holds and therefore which operators a rule may apply to it."""

    INT = "int"
    """A whole number (counts, days, minor units of money)."""
    INSTANT = "instant"
    """An aware instant, stored as int64 microseconds since the epoch."""
    TEXT = "text"
    """A string; compared exactly (==, !=, in, startswith, contains), never ordered."""
    TAGS = "tags"
    """The customer's set of tags; only ``"x" in tags`` applies."""
    CONSENTS = "consents"
    """The customer's consent ledger; only ``consented(purpose, channel)`` applies."""


@attrs.frozen
class FieldSpec:
    """One snapshot field.

    Attributes:
        name: the field's name in rules and in :class:`CustomerMetrics`.
        kind: its :class:`FieldKind`.
        nullable: whether a customer may have no value (a missing value compares false).
        doc: what the field means, in one line.
        choices: the values an enumerated text field can take (empty: any text).
    """

    name: str
    kind: FieldKind
    nullable: bool
    doc: str
    choices: tuple[str, ...] = ()


def _specs() -> dict[str, FieldSpec]:
    i, t, s = FieldKind.INT, FieldKind.INSTANT, FieldKind.TEXT
    rows = [
        FieldSpec("crm_number", s, False, "the customer's CRM number"),
        FieldSpec(
            "recency_days", i, True, "whole days since the last purchase (none: no purchase)"
        ),
        FieldSpec("frequency", i, False, "number of purchases (refunds are not purchases)"),
        FieldSpec("monetary", i, False, "purchases minus refunds, reporting-currency minor units"),
        FieldSpec("refunds", i, False, "number of refunds"),
        FieldSpec("first_purchase_at", t, True, "the first purchase"),
        FieldSpec("last_purchase_at", t, True, "the last purchase"),
        FieldSpec("tenure_days", i, False, "whole days since the customer was created"),
        FieldSpec("interactions", i, False, "number of interactions on every channel"),
        FieldSpec("complaints", i, False, "number of interactions of kind complaint"),
        FieldSpec("last_interaction_at", t, True, "the last interaction"),
        FieldSpec(
            "stage", s, False, "lifecycle stage", tuple(stage.value for stage in LifecycleStage)
        ),
        FieldSpec("created_at", t, False, "when the customer was registered"),
        FieldSpec("tags", FieldKind.TAGS, False, "the customer's tags"),
        FieldSpec(
            "consents",
            FieldKind.CONSENTS,
            False,
            "the customer's consent ledger (read by consented(...))",
        ),
        FieldSpec("gender", s, True, "self-described gender", tuple(g.value for g in Gender)),
        FieldSpec("birth_year", i, True, "year of birth"),
        FieldSpec("owner", s, True, "account manager id"),
        FieldSpec("country", s, True, "ISO country code of the first postal address"),
    ]
    rows.extend(
        FieldSpec(f"interactions_{c.value}", i, False, f"number of interactions by {c.value}")
        for c in InteractionChannel
    )
    return {row.name: row for row in rows}


FIELDS: Final[Mapping[str, FieldSpec]] = _specs()
"""Every field a snapshot can hold, by name (the rule language's vocabulary)."""

PROFILE_FIELDS: Final = frozenset(
    {"crm_number", "tags", "gender", "birth_year", "owner", "country"}
)
"""Fields read from customer profiles rather than from the maintained aggregates."""

CHANNEL_FIELDS: Final = frozenset(f"interactions_{c.value}" for c in InteractionChannel)
"""Per-channel interaction counts (computed from the interaction history)."""
