"""Building a :class:`~crmcore.analytics.CustomerMetrics` snapshot from what a store offers:
its raw per-customer aggregate columns, channel counts and profile columns (shared by every
adapter, so the arithmetic of each field is written once)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import numpy as np

from crmcore._epoch import MICROS_PER_DAY, from_us, to_us
from crmcore.analytics._consents import ConsentColumns
from crmcore.analytics._fields import CHANNEL_FIELDS, FIELDS, PROFILE_FIELDS
from crmcore.analytics._metrics import (
    BoolArray,
    Categorical,
    CustomerMetrics,
    Int64Array,
    ObjectArray,
    TagIndex,
)
from crmcore.analytics.columns import (
    AGGREGATE_COLUMNS,
    CHANNELS,
    FIELD_SOURCES,
    STAGE_NAMES,
    columns_for_fields,
)
from crmcore.domain import InteractionChannel
from crmcore.domain._checks import aware_utc
from crmcore.errors import ValidationError

__all__ = [
    "AggregateColumns",
    "ProfileColumns",
    "build_metrics",
    "resolve_fields",
    "row_from_aggregate",
]

# Compatibility names for the adapters' imports; the declarations live in columns.py.
RAW_COLUMNS: Final = FIELD_SOURCES
raw_columns_needed: Final = columns_for_fields


class AggregateColumns:
    """Raw per-customer aggregate columns, as a store hands them over (one row per customer).

    Instants are int64 microseconds; "no purchase/interaction" may hold any value where the
    matching count is zero. Attributes mirror the in-memory store's aggregate columns.
    """

    __slots__ = (
        "complaint_count",
        "created_us",
        "first_purchase_us",
        "interaction_count",
        "last_interaction_us",
        "last_purchase_us",
        "purchase_count",
        "purchase_minor",
        "refund_count",
        "refund_minor",
        "stage",
    )

    def __init__(self, **columns: Int64Array) -> None:
        for name in self.__slots__:
            setattr(self, name, columns.get(name))

    purchase_count: Int64Array | None
    refund_count: Int64Array | None
    purchase_minor: Int64Array | None
    refund_minor: Int64Array | None
    first_purchase_us: Int64Array | None
    last_purchase_us: Int64Array | None
    interaction_count: Int64Array | None
    complaint_count: Int64Array | None
    last_interaction_us: Int64Array | None
    stage: Int64Array | None
    created_us: Int64Array | None


assert frozenset(AggregateColumns.__slots__) == frozenset(AGGREGATE_COLUMNS)


class ProfileColumns:
    """Profile fields of a snapshot (read from customer records, not from aggregates)."""

    __slots__ = ("birth_year", "country", "gender", "owner", "tags")

    def __init__(
        self,
        *,
        gender: Categorical,
        owner: Categorical,
        country: Categorical,
        birth_year: Int64Array,
        birth_year_missing: BoolArray,
        tags: TagIndex,
    ) -> None:
        self.gender = gender
        self.owner = owner
        self.country = country
        self.birth_year = (birth_year, birth_year_missing)
        self.tags = tags


def resolve_fields(fields: Collection[str] | None) -> frozenset[str]:
    """Validate a field selection (``None``: every field).

    Raises:
        ValidationError: an unknown field name (the message lists the known ones).
    """
    if fields is None:
        return frozenset(FIELDS)
    if type(fields) is frozenset and fields <= FIELDS.keys():
        return fields  # already resolved (a refresh passes the same set every time)
    if isinstance(fields, str):
        fields = (fields,)
    chosen = frozenset(fields)
    unknown = sorted(chosen - FIELDS.keys())
    if unknown:
        raise ValidationError(
            "fields", unknown[0], f"unknown snapshot field; known: {', '.join(sorted(FIELDS))}"
        )
    return chosen


def build_metrics(
    as_of: dt.datetime,
    fields: frozenset[str],
    *,
    size: int,
    aggregates: AggregateColumns,
    channel_counts: Mapping[InteractionChannel, Int64Array] | None,
    profile: ProfileColumns | None,
    numbers: Callable[[], ObjectArray],
    consents: ConsentColumns | None = None,
) -> CustomerMetrics:
    """Derive the snapshot fields from raw per-customer columns (shared by every adapter).

    Args:
        as_of: the snapshot instant.
        fields: the fields to derive (see :func:`resolve_fields`).
        size: number of customers (rows).
        aggregates: raw aggregate columns as of ``as_of``; only the ones the fields need
            must be present.
        channel_counts: interactions per channel as of ``as_of`` (needed for
            ``interactions_<channel>`` fields).
        profile: profile columns (needed for profile fields).
        numbers: returns the CRM numbers in row order.
        consents: the consent ledger's entries (needed for ``consents``).

    Returns:
        The snapshot.
    """
    when = aware_utc("as_of", as_of)
    as_of_us = to_us(when)
    agg = aggregates
    columns: dict[str, Int64Array] = {}
    missing: dict[str, BoolArray] = {}
    texts: dict[str, Categorical] = {}

    def need(*names: str) -> bool:
        return any(name in fields for name in names)

    no_purchase: BoolArray | None = None
    if need("recency_days", "first_purchase_at", "last_purchase_at"):
        assert agg.purchase_count is not None
        no_purchase = agg.purchase_count == 0
    if need("frequency"):
        assert agg.purchase_count is not None
        columns["frequency"] = agg.purchase_count
    if need("refunds"):
        assert agg.refund_count is not None
        columns["refunds"] = agg.refund_count
    if need("monetary"):
        assert agg.purchase_minor is not None and agg.refund_minor is not None
        columns["monetary"] = agg.purchase_minor - agg.refund_minor
    if need("recency_days", "last_purchase_at"):
        assert agg.last_purchase_us is not None and no_purchase is not None
        if "last_purchase_at" in fields:
            columns["last_purchase_at"] = agg.last_purchase_us
            missing["last_purchase_at"] = no_purchase
        if "recency_days" in fields:
            recency = np.subtract(as_of_us, agg.last_purchase_us)
            recency //= MICROS_PER_DAY
            recency[no_purchase] = 0
            columns["recency_days"] = recency
            missing["recency_days"] = no_purchase
    if need("first_purchase_at"):
        assert agg.first_purchase_us is not None and no_purchase is not None
        columns["first_purchase_at"] = agg.first_purchase_us
        missing["first_purchase_at"] = no_purchase
    if need("created_at", "tenure_days"):
        assert agg.created_us is not None
        if "created_at" in fields:
            columns["created_at"] = agg.created_us
        if "tenure_days" in fields:
            columns["tenure_days"] = np.subtract(as_of_us, agg.created_us) // MICROS_PER_DAY
    if need("interactions"):
        assert agg.interaction_count is not None
        columns["interactions"] = agg.interaction_count
    if need("complaints"):
        assert agg.complaint_count is not None
        columns["complaints"] = agg.complaint_count
    if need("last_interaction_at"):
        assert agg.interaction_count is not None and agg.last_interaction_us is not None
        columns["last_interaction_at"] = agg.last_interaction_us
        missing["last_interaction_at"] = agg.interaction_count == 0
    if need("stage"):
        assert agg.stage is not None
        texts["stage"] = Categorical(agg.stage, STAGE_NAMES)
    if fields & CHANNEL_FIELDS:
        assert channel_counts is not None
        for channel in CHANNELS:
            name = f"interactions_{channel.value}"
            if name in fields:
                columns[name] = channel_counts[channel]
    tags: TagIndex | None = None
    if fields & (PROFILE_FIELDS - {"crm_number"}):
        assert profile is not None
        for name in ("gender", "owner", "country"):
            if name in fields:
                texts[name] = getattr(profile, name)
        if "birth_year" in fields:
            columns["birth_year"], missing["birth_year"] = profile.birth_year
        if "tags" in fields:
            tags = profile.tags
    if "consents" in fields:
        assert consents is not None
    return CustomerMetrics(
        as_of=when,
        size=size,
        columns=columns,
        missing=missing,
        texts=texts,
        tags=tags,
        numbers=numbers,
        consents=consents if "consents" in fields else None,
    )


def row_from_aggregate(
    as_of_us: int,
    fields: frozenset[str],
    agg: Mapping[str, int],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """One customer's fields from its raw aggregate values (the single-row twin of
    :func:`build_metrics`; same arithmetic, Python ints).

    Args:
        as_of_us: the instant in microseconds.
        fields: fields to produce.
        agg: raw aggregate values by the names of :class:`AggregateColumns`.
        extra: already-known values (profile fields, channel counts) copied through.

    Returns:
        Field name -> Python value.
    """
    out: dict[str, Any] = {}
    bought = agg.get("purchase_count", 0) > 0
    for name in fields:
        if name in extra:
            out[name] = extra[name]
        elif name == "frequency":
            out[name] = agg["purchase_count"]
        elif name == "refunds":
            out[name] = agg["refund_count"]
        elif name == "monetary":
            out[name] = agg["purchase_minor"] - agg["refund_minor"]
        elif name == "recency_days":
            out[name] = (as_of_us - agg["last_purchase_us"]) // MICROS_PER_DAY if bought else None
        elif name == "last_purchase_at":
            out[name] = from_us(agg["last_purchase_us"]) if bought else None
        elif name == "first_purchase_at":
            out[name] = from_us(agg["first_purchase_us"]) if bought else None
        elif name == "created_at":
            out[name] = from_us(agg["created_us"])
        elif name == "tenure_days":
            out[name] = (as_of_us - agg["created_us"]) // MICROS_PER_DAY
        elif name == "interactions":
            out[name] = agg["interaction_count"]
        elif name == "complaints":
            out[name] = agg["complaint_count"]
        elif name == "last_interaction_at":
            seen = agg["interaction_count"] > 0
            out[name] = from_us(agg["last_interaction_us"]) if seen else None
        elif name == "stage":
            out[name] = STAGE_NAMES[agg["stage"]]
    return out
