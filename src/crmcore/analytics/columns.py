"""The raw per-customer aggregate columns every store maintains, declared once.

A store keeps, per customer, a handful of int64 running totals (counts, minor-unit sums,
first/last instants in microseconds since the epoch) from which every metric field is
computed (:data:`FIELD_SOURCES`). The in-memory adapter holds them as numpy columns, the
SQLAlchemy adapter as a table (or a ``GROUP BY`` over the history for a past ``as_of``), and
:mod:`crmcore.analytics` turns them into a :class:`~crmcore.analytics.CustomerMetrics`
snapshot. The names, their defaults and the integer codes of the enumerations stored in
columns live here so the three agree by construction rather than by a comment.

The codes are part of no file format: stores rebuild their columns from stored history, and
SQL stores keep the enumerations as text. They are still fixed explicitly (not derived from
declaration order) so that adding a member to an enumeration cannot silently renumber the
others.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from crmcore._epoch import NONE_MAX, NONE_MIN
from crmcore.domain import (
    InteractionChannel,
    InteractionKind,
    LifecycleStage,
    SalesChannel,
    TransactionKind,
)

__all__ = [
    "AGGREGATE_COLUMNS",
    "CHANNELS",
    "CHANNEL_CODES",
    "CHANNEL_COUNT_COLUMNS",
    "COLUMN_DEFAULTS",
    "COMPLAINT_CODE",
    "FIELD_SOURCES",
    "INTERACTION_COLUMNS",
    "INTERACTION_KIND_CODES",
    "PROFILE_COLUMNS",
    "SALES_CHANNEL_CODES",
    "STAGES",
    "STAGE_CODES",
    "STAGE_NAMES",
    "TRANSACTION_COLUMNS",
    "TRANSACTION_KIND_CODES",
    "columns_for_fields",
]

TRANSACTION_COLUMNS: Final = (
    "purchase_count",
    "refund_count",
    "purchase_minor",
    "refund_minor",
    "first_purchase_us",
    "last_purchase_us",
)
"""Columns folded from transactions (refunds count apart and do not move the instants)."""

INTERACTION_COLUMNS: Final = ("interaction_count", "complaint_count", "last_interaction_us")
"""Columns folded from interactions."""

PROFILE_COLUMNS: Final = ("stage", "created_us")
"""Columns copied from the customer record (lifecycle stage code, registration instant)."""

AGGREGATE_COLUMNS: Final = TRANSACTION_COLUMNS + INTERACTION_COLUMNS + PROFILE_COLUMNS
"""Every raw column, in the order stores hand them over."""

COLUMN_DEFAULTS: Final[Mapping[str, int]] = MappingProxyType(
    dict.fromkeys(AGGREGATE_COLUMNS, 0)
    | {
        # "No instant yet" sentinels chosen so min()/max() folds need no special case.
        "first_purchase_us": NONE_MAX,
        "last_purchase_us": NONE_MIN,
        "last_interaction_us": NONE_MIN,
    }
)
"""The value of each column for a customer with no history."""

FIELD_SOURCES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "frequency": ("purchase_count",),
        "refunds": ("refund_count",),
        "monetary": ("purchase_minor", "refund_minor"),
        "recency_days": ("purchase_count", "last_purchase_us"),
        "last_purchase_at": ("purchase_count", "last_purchase_us"),
        "first_purchase_at": ("purchase_count", "first_purchase_us"),
        "created_at": ("created_us",),
        "tenure_days": ("created_us",),
        "interactions": ("interaction_count",),
        "complaints": ("complaint_count",),
        "last_interaction_at": ("interaction_count", "last_interaction_us"),
        "stage": ("stage",),
    }
)
"""The raw columns each metric field is computed from (fields not listed need none)."""


def columns_for_fields(fields: frozenset[str]) -> set[str]:
    """The raw columns a snapshot of ``fields`` must read."""
    out: set[str] = set()
    for name in fields:
        out.update(FIELD_SOURCES.get(name, ()))
    return out


STAGES: Final = (
    LifecycleStage.LEAD,
    LifecycleStage.PROSPECT,
    LifecycleStage.NEW,
    LifecycleStage.ACTIVE,
    LifecycleStage.AT_RISK,
    LifecycleStage.CHURNED,
    LifecycleStage.REACTIVATED,
)
"""Lifecycle stages by their column code (``STAGES[code]``)."""
STAGE_CODES: Final[Mapping[LifecycleStage, int]] = MappingProxyType(
    {stage: code for code, stage in enumerate(STAGES)}
)
STAGE_NAMES: Final = tuple(stage.value for stage in STAGES)
"""Stage texts by column code."""

CHANNELS: Final = (
    InteractionChannel.PHONE,
    InteractionChannel.EMAIL,
    InteractionChannel.SMS,
    InteractionChannel.CHAT,
    InteractionChannel.SOCIAL,
    InteractionChannel.VISIT,
    InteractionChannel.WEB,
    InteractionChannel.OTHER,
)
"""Interaction channels by their column code."""
CHANNEL_CODES: Final[Mapping[InteractionChannel, int]] = MappingProxyType(
    {channel: code for code, channel in enumerate(CHANNELS)}
)
CHANNEL_COUNT_COLUMNS: Final[Mapping[InteractionChannel, str]] = MappingProxyType(
    {channel: f"ch_{channel.value}" for channel in CHANNELS}
)
"""Raw names of the per-channel interaction counts (SQL stores compute them on demand)."""

INTERACTION_KIND_CODES: Final[Mapping[InteractionKind, int]] = MappingProxyType(
    {
        InteractionKind.INQUIRY: 0,
        InteractionKind.COMPLAINT: 1,
        InteractionKind.FEEDBACK: 2,
        InteractionKind.SUPPORT: 3,
        InteractionKind.SALES: 4,
        InteractionKind.CARE: 5,
    }
)
COMPLAINT_CODE: Final = INTERACTION_KIND_CODES[InteractionKind.COMPLAINT]

TRANSACTION_KIND_CODES: Final[Mapping[TransactionKind, int]] = MappingProxyType(
    {TransactionKind.PURCHASE: 0, TransactionKind.REFUND: 1}
)

SALES_CHANNEL_CODES: Final[Mapping[SalesChannel, int]] = MappingProxyType(
    {
        SalesChannel.ONLINE: 0,
        SalesChannel.STORE: 1,
        SalesChannel.PHONE: 2,
        SalesChannel.PARTNER: 3,
        SalesChannel.MARKETPLACE: 4,
        SalesChannel.OTHER: 5,
    }
)


def _check_complete() -> None:
    # A new enum member must get a code here; fail at import rather than mis-count later.
    for enum_type, codes in (
        (LifecycleStage, STAGE_CODES),
        (InteractionChannel, CHANNEL_CODES),
        (InteractionKind, INTERACTION_KIND_CODES),
        (TransactionKind, TRANSACTION_KIND_CODES),
        (SalesChannel, SALES_CHANNEL_CODES),
    ):
        if set(codes) != set(enum_type) or sorted(codes.values()) != list(range(len(codes))):
            raise AssertionError(f"column codes of {enum_type.__name__} are incomplete")


_check_complete()
