"""The columnar customer metrics snapshot and what a store must offer to build one."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crmcore._epoch import MICROS_PER_DAY, from_us, to_us
from crmcore.analytics._fields import CHANNEL_FIELDS, FIELDS, PROFILE_FIELDS, FieldKind
from crmcore.analytics.columns import (
    AGGREGATE_COLUMNS,
    CHANNELS,
    FIELD_SOURCES,
    STAGE_NAMES,
    columns_for_fields,
)
from crmcore.domain import InteractionChannel
from crmcore.domain._checks import aware_utc
from crmcore.errors import ConfigurationError, ValidationError

__all__ = [
    "AggregateColumns",
    "BoolArray",
    "Categorical",
    "CustomerMetrics",
    "Int64Array",
    "ObjectArray",
    "ProfileColumns",
    "TagIndex",
    "build_metrics",
    "resolve_fields",
]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

CORE_FIELDS: Final = frozenset(FIELDS) - PROFILE_FIELDS - CHANNEL_FIELDS

# Compatibility names for the adapters' imports; the declarations live in columns.py.
RAW_COLUMNS: Final = FIELD_SOURCES
raw_columns_needed: Final = columns_for_fields


class Categorical:
    """A text column as integer codes into a tuple of distinct values (-1: no value).

    Rules over text test each distinct value once, then map the answer onto the codes, so a
    prefix test over a million customers with a few hundred owners is a few hundred string
    operations and one array lookup.

    Args:
        codes: int32 or int64 codes, one per customer.
        categories: the distinct values the codes index.
    """

    __slots__ = ("categories", "codes")

    def __init__(self, codes: npt.NDArray[np.integer[Any]], categories: tuple[str, ...]) -> None:
        self.codes = codes
        self.categories = categories

    @classmethod
    def from_values(cls, values: Iterable[str | None]) -> Categorical:
        """Encode a sequence of optional strings."""
        index: dict[str, int] = {}
        codes = [-1 if v is None else index.setdefault(v, len(index)) for v in values]
        return cls(np.asarray(codes, dtype=np.int64).reshape(-1), tuple(index))

    def where(self, predicate: Callable[[str], bool]) -> BoolArray:
        """Mask of the customers whose value satisfies ``predicate`` (no value: False)."""
        table = np.zeros(len(self.categories) + 1, dtype=np.bool_)
        table[:-1] = [predicate(value) for value in self.categories]
        out: BoolArray = table[self.codes]  # code -1 reads the trailing False
        return out

    def value(self, row: int) -> str | None:
        """The value of one row."""
        code = int(self.codes[row])
        return None if code < 0 else self.categories[code]

    def values(self) -> ObjectArray:
        """Object array of ``str | None``."""
        lookup = np.array([*self.categories, None], dtype=object)
        return lookup[self.codes]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self.codes)


class TagIndex:
    """Which rows hold each tag: a sorted array of row positions per tag.

    Args:
        rows: tag -> int64 array of row positions.
        size: number of customers in the snapshot.
    """

    __slots__ = ("rows", "size")

    def __init__(self, rows: Mapping[str, Int64Array], size: int) -> None:
        self.rows = dict(rows)
        self.size = size

    @classmethod
    def from_sets(cls, tag_sets: Iterable[Collection[str]], size: int) -> TagIndex:
        """Build from one collection of tags per row."""
        positions: dict[str, list[int]] = {}
        for row, tags in enumerate(tag_sets):
            for tag in tags:
                positions.setdefault(tag, []).append(row)
        return cls({t: np.asarray(p, dtype=np.int64) for t, p in positions.items()}, size)

    def mask(self, tag: str) -> BoolArray:
        """Mask of the rows holding ``tag``."""
        out = np.zeros(self.size, dtype=np.bool_)
        hits = self.rows.get(tag)
        if hits is not None:
            out[hits] = True
        return out

    def of_row(self, row: int) -> frozenset[str]:
        """The tags of one row (a scan over the tags; for tests and single lookups)."""
        return frozenset(
            tag
            for tag, hits in self.rows.items()
            if (i := int(np.searchsorted(hits, row))) < len(hits) and hits[i] == row
        )


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


class CustomerMetrics:
    """Per-customer metrics as of one instant, as numpy columns (one row per customer).

    Rows are customers that exist (erased ones are gone), in the store's order. Only the
    fields asked for when the snapshot was taken are present (:attr:`fields`); asking a
    snapshot for another raises :class:`~crmcore.errors.ConfigurationError`.

    Integer fields and instants are int64 arrays (instants in microseconds since the epoch,
    UTC); a nullable field has a boolean ``missing`` mask (its values there are meaningless).
    Text fields are :class:`Categorical`; tags a :class:`TagIndex`. CRM numbers are
    materialised on first use (:meth:`numbers`).

    Args:
        as_of: the instant of the snapshot (aware).
        size: number of customers.
        columns: int64 arrays of the INT and INSTANT fields present.
        missing: masks of nullable fields present (True: no value).
        texts: text fields present, except ``crm_number``.
        tags: the tag index, if tags are present.
        numbers: returns the CRM numbers, an object array in row order.
    """

    def __init__(
        self,
        *,
        as_of: dt.datetime,
        size: int,
        columns: Mapping[str, Int64Array],
        missing: Mapping[str, BoolArray],
        texts: Mapping[str, Categorical],
        tags: TagIndex | None,
        numbers: Callable[[], ObjectArray],
    ) -> None:
        self.as_of = aware_utc("as_of", as_of)
        self.as_of_us = to_us(self.as_of)
        self.size = size
        self._columns = dict(columns)
        self._missing = dict(missing)
        self._texts = dict(texts)
        self._tags = tags
        self._numbers_fn = numbers
        self._numbers: ObjectArray | None = None
        self._number_text: Categorical | None = None
        self._order: Int64Array | None = None
        self._lock = threading.RLock()
        present = set(self._columns) | set(self._texts) | {"crm_number"}
        if tags is not None:
            present.add("tags")
        self.fields: frozenset[str] = frozenset(present)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (
            f"CustomerMetrics(as_of={self.as_of.isoformat()}, customers={self.size}, "
            f"fields={len(self.fields)})"
        )

    def _require(self, name: str) -> None:
        if name not in self.fields:
            if name not in FIELDS:
                raise ValidationError(
                    "field", name, f"unknown snapshot field; known: {', '.join(sorted(FIELDS))}"
                )
            raise ConfigurationError(
                f"field {name!r} was not loaded in this snapshot; take it with fields=[...]"
                f" including {name!r} (loaded: {', '.join(sorted(self.fields))})"
            )

    def column(self, name: str) -> Int64Array:
        """The int64 column of an INT or INSTANT field (read-only view).

        Raises:
            ConfigurationError: the field was not loaded in this snapshot.
            ValidationError: no such field, or not an INT/INSTANT field.
        """
        self._require(name)
        if FIELDS[name].kind not in (FieldKind.INT, FieldKind.INSTANT):
            raise ValidationError("field", name, "is not an integer or instant field")
        return self._columns[name]

    def missing(self, name: str) -> BoolArray:
        """Mask of the rows with no value for ``name`` (all False for non-nullable fields)."""
        self._require(name)
        found = self._missing.get(name)
        if found is None:
            return np.zeros(self.size, dtype=np.bool_)
        return found

    def text(self, name: str) -> Categorical:
        """The :class:`Categorical` of a TEXT field."""
        self._require(name)
        if name == "crm_number":
            with self._lock:
                if self._number_text is None:
                    values = tuple(n.value for n in self.numbers())
                    self._number_text = Categorical(np.arange(self.size, dtype=np.int64), values)
            return self._number_text
        if FIELDS[name].kind is not FieldKind.TEXT:
            raise ValidationError("field", name, "is not a text field")
        return self._texts[name]

    @property
    def tags(self) -> TagIndex:
        """The tag index (``"vip" in tags`` is ``metrics.tags.mask("vip")``)."""
        self._require("tags")
        assert self._tags is not None
        return self._tags

    def numbers(self) -> ObjectArray:
        """CRM numbers in row order (object array of :class:`CrmNumber`)."""
        with self._lock:
            if self._numbers is None:
                self._numbers = self._numbers_fn()
            return self._numbers

    def number_order(self) -> Int64Array:
        """Rank of each row's CRM number in ascending order (0 = smallest)."""
        numbers = self.numbers()
        with self._lock:
            if self._order is None:
                text = np.array([n.value for n in numbers], dtype=str)
                order = np.argsort(text, kind="stable")
                ranks = np.empty(self.size, dtype=np.int64)
                ranks[order] = np.arange(self.size, dtype=np.int64)
                self._order = ranks
            return self._order

    # -- the RFM columns, by name ----------------------------------------------------------

    @property
    def recency_days(self) -> Int64Array:
        return self.column("recency_days")

    @property
    def frequency(self) -> Int64Array:
        return self.column("frequency")

    @property
    def monetary(self) -> Int64Array:
        return self.column("monetary")

    @property
    def scored(self) -> BoolArray:
        """Customers with at least one purchase as of ``as_of`` (the ones RFM scores)."""
        return ~self.missing("recency_days")

    # -- single rows -------------------------------------------------------------------------

    def row(self, index: int) -> dict[str, Any]:
        """One customer's loaded fields as Python values (instants as aware datetimes)."""
        out: dict[str, Any] = {}
        for name in sorted(self.fields):
            spec = FIELDS[name]
            if spec.kind is FieldKind.TAGS:
                out[name] = self.tags.of_row(index)
            elif spec.kind is FieldKind.TEXT:
                out[name] = self.text(name).value(index)
            elif spec.nullable and bool(self.missing(name)[index]):
                out[name] = None
            else:
                value = int(self._columns[name][index])
                out[name] = from_us(value) if spec.kind is FieldKind.INSTANT else value
        return out

    # -- conversions -------------------------------------------------------------------------

    def _python_columns(self) -> dict[str, Any]:
        out: dict[str, Any] = {"crm_number": np.array([n.value for n in self.numbers()])}
        for name in sorted(self.fields - {"crm_number"}):
            spec = FIELDS[name]
            if spec.kind is FieldKind.TAGS:
                tag_lists: list[list[str]] = [[] for _ in range(self.size)]
                for tag in sorted(self.tags.rows):
                    for row in self.tags.rows[tag].tolist():
                        tag_lists[row].append(tag)
                out[name] = tag_lists
            elif spec.kind is FieldKind.TEXT:
                out[name] = self.text(name).values()
            else:
                out[name] = self._columns[name]
        return out

    def to_pandas(self) -> Any:
        """A pandas DataFrame (nullable ``Int64`` and UTC ``datetime64[us]`` columns).

        Requires the ``dataframes`` extra.
        """
        import pandas as pd

        data: dict[str, Any] = {}
        for name, values in self._python_columns().items():
            spec = FIELDS[name]
            if spec.kind is FieldKind.INSTANT:
                series = pd.Series(values.astype("datetime64[us]")).dt.tz_localize("UTC")
                if spec.nullable:
                    series = series.mask(self.missing(name))
                data[name] = series
            elif spec.kind is FieldKind.INT:
                series = pd.Series(values, dtype="Int64")
                if spec.nullable:
                    series = series.mask(self.missing(name))
                data[name] = series
            else:
                data[name] = pd.Series(values, dtype=object)
        return pd.DataFrame(data)

    def to_arrow(self) -> Any:
        """A pyarrow Table (null where a value is missing). Requires the ``dataframes`` extra."""
        import pyarrow as pa

        arrays: dict[str, Any] = {}
        for name, values in self._python_columns().items():
            spec = FIELDS[name]
            mask = self.missing(name) if spec.nullable and name in self._missing else None
            if spec.kind is FieldKind.INSTANT:
                arrays[name] = pa.array(values, type=pa.timestamp("us", tz="UTC"), mask=mask)
            elif spec.kind is FieldKind.INT:
                arrays[name] = pa.array(values, type=pa.int64(), mask=mask)
            elif spec.kind is FieldKind.TAGS:
                arrays[name] = pa.array(values, type=pa.list_(pa.string()))
            else:
                arrays[name] = pa.array(list(values), type=pa.string())
        return pa.table(arrays)

    def to_polars(self) -> Any:
        """A polars DataFrame (via Arrow). Requires the ``dataframes`` extra."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())


def build_metrics(
    as_of: dt.datetime,
    fields: frozenset[str],
    *,
    size: int,
    aggregates: AggregateColumns,
    channel_counts: Mapping[InteractionChannel, Int64Array] | None,
    profile: ProfileColumns | None,
    numbers: Callable[[], ObjectArray],
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
    return CustomerMetrics(
        as_of=when,
        size=size,
        columns=columns,
        missing=missing,
        texts=texts,
        tags=tags,
        numbers=numbers,
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
