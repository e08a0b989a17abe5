"""The columnar customer metrics snapshot and its column types (:class:`Categorical` text,
:class:`TagIndex` tags). Building one from a store's raw columns is ``_derive``'s job."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from crmcore._epoch import from_us, to_us
from crmcore.analytics._fields import CHANNEL_FIELDS, FIELDS, PROFILE_FIELDS, FieldKind
from crmcore.domain._checks import aware_utc
from crmcore.errors import ConfigurationError, ValidationError

if TYPE_CHECKING:
    # The ledger's columns are built in ``_consents``, which imports this module's types.
    from crmcore.analytics._consents import ConsentColumns

__all__ = [
    "BoolArray",
    "Categorical",
    "CustomerMetrics",
    "Int64Array",
    "ObjectArray",
    "TagIndex",
]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

CORE_FIELDS: Final = frozenset(FIELDS) - PROFILE_FIELDS - CHANNEL_FIELDS


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
        consents: the consent ledger's entries, if consents are present.
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
        consents: ConsentColumns | None = None,
    ) -> None:
        self.as_of = aware_utc("as_of", as_of)
        self.as_of_us = to_us(self.as_of)
        self.size = size
        self._columns = dict(columns)
        self._missing = dict(missing)
        self._texts = dict(texts)
        self._tags = tags
        self._consents = consents
        self._numbers_fn = numbers
        self._numbers: ObjectArray | None = None
        self._number_text: Categorical | None = None
        self._order: Int64Array | None = None
        self._lock = threading.RLock()
        present = set(self._columns) | set(self._texts) | {"crm_number"}
        if tags is not None:
            present.add("tags")
        if consents is not None:
            present.add("consents")
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

    @property
    def consents(self) -> ConsentColumns:
        """The consent ledger of the snapshot's customers (``consented(...)`` reads it)."""
        self._require("consents")
        assert self._consents is not None
        return self._consents

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
            elif spec.kind is FieldKind.CONSENTS:
                out[name] = self.consents.of_row(index)
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
            elif spec.kind is FieldKind.CONSENTS:
                out[name] = self.consents.per_row()
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
            elif spec.kind is FieldKind.CONSENTS:
                entry = pa.struct(
                    [
                        ("purpose", pa.string()),
                        ("channel", pa.string()),
                        ("granted", pa.bool_()),
                        ("at", pa.timestamp("us", tz="UTC")),
                        ("expires_at", pa.timestamp("us", tz="UTC")),
                    ]
                )
                arrays[name] = pa.array(
                    [[dict(zip(entry.names, e, strict=True)) for e in row] for row in values],
                    type=pa.list_(entry),
                )
            else:
                arrays[name] = pa.array(list(values), type=pa.string())
        return pa.table(arrays)

    def to_polars(self) -> Any:
        """A polars DataFrame (via Arrow). Requires the ``dataframes`` extra."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())
