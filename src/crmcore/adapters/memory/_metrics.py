"""Customer metrics snapshots straight from the in-memory store's numpy columns.

When ``as_of`` is at or after the store's latest transaction/interaction (the usual case),
the snapshot is a copy of the maintained aggregate columns: no history is scanned. For an
earlier ``as_of`` the aggregates are recomputed from the append-only logs with grouped numpy
reductions (``bincount``, ``add.at``, ``maximum.at``), counting only events at or before it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Sequence
from typing import Any, Final

import numpy as np

from crmcore._epoch import NONE_MAX, NONE_MIN, to_us
from crmcore.adapters.memory._columns import ALIVE
from crmcore.adapters.memory._encoders import PURCHASE_CODE
from crmcore.adapters.memory._state import MemoryState, StateGuard
from crmcore.analytics._consents import ConsentColumns, entry_of
from crmcore.analytics._derive import (
    AggregateColumns,
    ProfileColumns,
    build_metrics,
    raw_columns_needed,
    resolve_fields,
    row_from_aggregate,
)
from crmcore.analytics._fields import CHANNEL_FIELDS, PROFILE_FIELDS
from crmcore.analytics._metrics import (
    BoolArray,
    Categorical,
    CustomerMetrics,
    Int64Array,
    ObjectArray,
    TagIndex,
)
from crmcore.analytics.columns import (
    CHANNELS,
    COMPLAINT_CODE,
    INTERACTION_COLUMNS,
    TRANSACTION_COLUMNS,
)
from crmcore.domain import ConsentRecord, CrmNumber, Customer
from crmcore.domain._checks import aware_utc
from crmcore.domain.consent import history_order
from crmcore.errors import ErasedError, NotFound

__all__ = ["MemoryMetrics"]

_TX_COLUMNS: Final = frozenset(TRANSACTION_COLUMNS)
_IX_COLUMNS: Final = frozenset(INTERACTION_COLUMNS)
_HISTORY_COLUMNS: Final = _TX_COLUMNS | _IX_COLUMNS
_WALKED_FIELDS: Final = frozenset({"gender", "owner", "country", "birth_year"})
"""Profile fields read from the Customer objects (tags come from the store's tag index)."""


class MemoryMetrics:
    """:class:`~crmcore.analytics.MetricsSource` over an
    :class:`~crmcore.adapters.memory.InMemoryStore`.

    Made by :meth:`InMemoryStore.metrics_source()
    <crmcore.adapters.memory.InMemoryStore.metrics_source>`.

    Args:
        guard: the store's lock around its state (each read holds it).
        store: the store, shown by ``repr``.
    """

    def __init__(self, guard: StateGuard, store: object) -> None:
        self._guard = guard
        self._store = store

    def __repr__(self) -> str:
        return f"MemoryMetrics({self._store!r})"

    def snapshot(
        self, as_of: dt.datetime, fields: Collection[str] | None = None
    ) -> CustomerMetrics:
        """See :meth:`crmcore.analytics.MetricsSource.snapshot`."""
        when = aware_utc("as_of", as_of)
        as_of_us = to_us(when)
        chosen = resolve_fields(fields)
        with self._guard as state:
            total = state.aggregates.size
            alive = state.aggregates.view(ALIVE).astype(np.bool_)
            rows = np.flatnonzero(alive)
            every = len(rows) == total
            raw = raw_columns_needed(chosen)
            current = as_of_us >= state.latest_event_us
            values: dict[str, Int64Array] = {}
            for name in raw:
                if current or name in ("created_us", "stage"):
                    column = state.aggregates.view(name)
                    values[name] = column.copy() if every else column[rows]
            historic = raw - values.keys()
            if historic & _TX_COLUMNS:
                values.update(_from_transactions(state, as_of_us, total, rows, every))
            if historic & _IX_COLUMNS:
                values.update(_from_interactions(state, as_of_us, total, rows, every))
            channels = None
            if chosen & CHANNEL_FIELDS:
                channels = _channel_counts(state, as_of_us, total, rows, every)
            numbers_list = state.row_numbers
            profile = None
            if chosen & (PROFILE_FIELDS - {"crm_number"}):
                walked = chosen & _WALKED_FIELDS
                customers = (
                    [state.customers[numbers_list[r]] for r in rows.tolist()] if walked else []
                )
                tags = (
                    _tag_index(state.by_tag, rows, every) if "tags" in chosen else TagIndex({}, 0)
                )
                profile = _profile(customers, chosen, tags)
            consents = _consents(state, rows, every) if "consents" in chosen else None

        def numbers() -> ObjectArray:
            listed = np.empty(total, dtype=object)
            listed[:] = numbers_list[:total]
            return listed if every else listed[rows]

        return build_metrics(
            when,
            chosen,
            size=len(rows),
            aggregates=AggregateColumns(**{k: v for k, v in values.items() if k in raw}),
            channel_counts=channels,
            profile=profile,
            numbers=numbers,
            consents=consents,
        )

    def customer_row(
        self, number: CrmNumber, as_of: dt.datetime, fields: Collection[str] | None = None
    ) -> dict[str, Any]:
        """See :meth:`crmcore.analytics.MetricsSource.customer_row`.

        O(1) from the maintained aggregates when ``as_of`` is at or after the customer's
        latest event; per-channel counts and earlier instants scan the logs with numpy.
        """
        as_of_us = to_us(aware_utc("as_of", as_of))
        chosen = resolve_fields(fields)
        with self._guard as state:
            customer = state.customers.get(number)
            if customer is None:
                if number in state.tombstones:
                    raise ErasedError("customer", number)
                raise NotFound("customer", number)
            row = state.row_of[number]
            columns = state.aggregates.columns
            raw = _raw_needed(chosen)
            agg = {name: int(columns[name][row]) for name in raw}
            stale = as_of_us < state.latest_event_us
            if stale and raw & _HISTORY_COLUMNS:
                one = np.array([row], dtype=np.int64)
                size = state.aggregates.size
                for name, column in {
                    **_from_transactions(state, as_of_us, size, one, False),
                    **_from_interactions(state, as_of_us, size, one, False),
                }.items():
                    if name in agg:
                        agg[name] = int(column[0])
            extra: dict[str, Any] = {}
            if chosen & CHANNEL_FIELDS:
                one = np.array([row], dtype=np.int64)
                counts = _channel_counts(state, as_of_us, state.aggregates.size, one, False)
                for channel in CHANNELS:
                    extra[f"interactions_{channel.value}"] = int(counts[channel][0])
            if chosen & PROFILE_FIELDS:
                extra.update(_profile_row(customer))
            if "consents" in chosen:
                ledger = history_order(state.consents.get(number, ()))
                extra["consents"] = tuple(entry_of(record) for record in ledger)
        return row_from_aggregate(as_of_us, chosen, agg, extra)


@functools.lru_cache(maxsize=256)
def _raw_needed(fields: frozenset[str]) -> frozenset[str]:
    # customer_row runs once per refreshed customer with the same few field sets.
    return frozenset(raw_columns_needed(fields))


def _from_transactions(
    state: MemoryState, as_of_us: int, total: int, rows: Int64Array, every: bool
) -> dict[str, Int64Array]:
    log = state.transactions.log
    owner = log.view("row")
    when = log.view("occurred_us")
    take = (when <= as_of_us) & (owner >= 0)
    purchase = take & (log.view("kind") == PURCHASE_CODE)
    refund = take & ~purchase
    minor = log.view("reporting_minor")
    out = {
        "purchase_count": np.bincount(owner[purchase], minlength=total).astype(np.int64),
        "refund_count": np.bincount(owner[refund], minlength=total).astype(np.int64),
    }
    for name, mask in (("purchase_minor", purchase), ("refund_minor", refund)):
        sums = np.zeros(total, dtype=np.int64)
        np.add.at(sums, owner[mask], minor[mask])
        out[name] = sums
    first = np.full(total, NONE_MAX, dtype=np.int64)
    np.minimum.at(first, owner[purchase], when[purchase])
    last = np.full(total, NONE_MIN, dtype=np.int64)
    np.maximum.at(last, owner[purchase], when[purchase])
    out["first_purchase_us"], out["last_purchase_us"] = first, last
    return out if every else {name: column[rows] for name, column in out.items()}


def _from_interactions(
    state: MemoryState, as_of_us: int, total: int, rows: Int64Array, every: bool
) -> dict[str, Int64Array]:
    log = state.interactions.log
    owner = log.view("row")
    when = log.view("occurred_us")
    take = (when <= as_of_us) & (owner >= 0)
    complaint = take & (log.view("kind") == COMPLAINT_CODE)
    last = np.full(total, NONE_MIN, dtype=np.int64)
    np.maximum.at(last, owner[take], when[take])
    out = {
        "interaction_count": np.bincount(owner[take], minlength=total).astype(np.int64),
        "complaint_count": np.bincount(owner[complaint], minlength=total).astype(np.int64),
        "last_interaction_us": last,
    }
    return out if every else {name: column[rows] for name, column in out.items()}


def _channel_counts(
    state: MemoryState, as_of_us: int, total: int, rows: Int64Array, every: bool
) -> dict[Any, Int64Array]:
    log = state.interactions.log
    owner = log.view("row")
    take = (log.view("occurred_us") <= as_of_us) & (owner >= 0)
    channel = log.view("channel")
    flat = np.bincount(
        owner[take] * len(CHANNELS) + channel[take], minlength=total * len(CHANNELS)
    ).astype(np.int64)
    grid = flat.reshape(total, len(CHANNELS))
    if not every:
        grid = grid[rows]
    return {c: np.ascontiguousarray(grid[:, i]) for i, c in enumerate(CHANNELS)}


def _country(customer: Customer) -> str | None:
    return customer.addresses[0].country if customer.addresses else None


def _consents(state: MemoryState, rows: Int64Array, every: bool) -> ConsentColumns:
    """The snapshot's ledger columns: every live customer's entries, with its snapshot row
    (its aggregate row's position among the live ``rows``, sorted)."""
    owners: list[int] = []
    records: list[ConsentRecord] = []
    for number, ledger in state.consents.items():
        row = state.row_of[number]
        ordered = history_order(ledger)
        owners.extend([row] * len(ordered))
        records.extend(ordered)
    found = np.asarray(owners, dtype=np.int64)
    positions = found if every else np.searchsorted(rows, found).astype(np.int64)
    return ConsentColumns.from_records(len(rows), positions.tolist(), records)


def _tag_index(by_tag: dict[str, set[int]], rows: Int64Array, every: bool) -> TagIndex:
    """The snapshot's tag index from the store's maintained tag -> aggregate rows map.

    Only live customers are in ``by_tag``, so every held row is one of ``rows`` (sorted);
    its snapshot position is its index there.
    """
    out: dict[str, Int64Array] = {}
    for tag, held in by_tag.items():
        hits = np.fromiter(held, dtype=np.int64, count=len(held))
        hits.sort()
        out[tag] = hits if every else np.searchsorted(rows, hits).astype(np.int64)
    return TagIndex(out, len(rows))


def _profile(
    customers: Sequence[Customer], chosen: frozenset[str], tags: TagIndex
) -> ProfileColumns:
    # Only the requested fields are built, and tags come from the store's tag index: walking
    # a million customers for their gender, owner and country when a rule only asks for tags
    # was most of a rule run's time.
    unused = Categorical.from_values(())
    births = [
        c.birth_date.year if c.birth_date is not None else -1
        for c in (customers if "birth_year" in chosen else ())
    ]
    birth_year = np.asarray(births, dtype=np.int64).reshape(-1)
    missing: BoolArray = birth_year < 0
    return ProfileColumns(
        gender=Categorical.from_values(
            None if c.gender is None else c.gender.value for c in customers
        )
        if "gender" in chosen
        else unused,
        owner=Categorical.from_values(c.owner for c in customers) if "owner" in chosen else unused,
        country=Categorical.from_values(_country(c) for c in customers)
        if "country" in chosen
        else unused,
        birth_year=birth_year,
        birth_year_missing=missing,
        tags=tags,
    )


def _profile_row(customer: Customer) -> dict[str, Any]:
    return {
        "crm_number": customer.number.value,
        "tags": customer.tags,
        "gender": None if customer.gender is None else customer.gender.value,
        "owner": customer.owner,
        "country": _country(customer),
        "birth_year": None if customer.birth_date is None else customer.birth_date.year,
    }
