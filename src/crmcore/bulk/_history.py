"""Arrow batches of transactions and interactions -> validated column batches.

Each function reads one record batch, applies the per-row API's rules column by column and
returns the accepted rows as a :class:`~crmcore.ports.batches.TransactionBatch` (or
:class:`~crmcore.ports.batches.InteractionBatch`) together with the batch's verdicts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmcore._epoch import from_us
from crmcore.analytics.columns import (
    CHANNEL_CODES,
    INTERACTION_KIND_CODES,
    SALES_CHANNEL_CODES,
    TRANSACTION_KIND_CODES,
)
from crmcore.bulk._columns import (
    BoolArray,
    ObjectArray,
    Verdicts,
    currencies,
    instants,
    members,
    minor_units,
    optional_text,
)
from crmcore.bulk._numbers import parse_numbers
from crmcore.domain import (
    CrmNumber,
    CrmNumberScheme,
    Money,
    SalesChannel,
    TransactionKind,
)
from crmcore.errors import CrmError
from crmcore.ports import CurrencyConverter
from crmcore.ports.batches import DIRECTION_CODES, InteractionBatch, TransactionBatch, new_ids

__all__ = [
    "CUSTOMER_REFERENCE_COLUMNS",
    "INTERACTION_COLUMNS",
    "TRANSACTION_COLUMNS",
    "CustomerLookup",
    "interaction_batch",
    "transaction_batch",
]

CUSTOMER_REFERENCE_COLUMNS: Final = ("crm_number", "customer_source", "customer_external_id")
TRANSACTION_COLUMNS: Final = (
    *CUSTOMER_REFERENCE_COLUMNS,
    "occurred_at",
    "kind",
    "amount",
    "currency",
    "channel",
    "source",
    "external_ref",
)
INTERACTION_COLUMNS: Final = (
    *CUSTOMER_REFERENCE_COLUMNS,
    "occurred_at",
    "channel",
    "direction",
    "kind",
    "subject",
    "notes",
    "outcome",
    "agent",
    "follow_up_due",
    "source",
    "external_ref",
)


class CustomerLookup:
    """Finds the customers an import refers to, a batch at a time.

    Args:
        scheme: the store's CRM number scheme (to parse ``crm_number``).
        existing: which of some canonical number texts are numbers of existing customers.
        by_external_id: ``external_id -> number`` for one source.
        default_source: the ``customer_source`` of rows without one.
    """

    def __init__(
        self,
        scheme: CrmNumberScheme,
        existing: Callable[[Collection[str]], set[str]],
        by_external_id: Callable[[str, Iterable[str]], Mapping[str, CrmNumber]],
        default_source: str | None,
    ) -> None:
        self.scheme = scheme
        self.existing = existing
        self.by_external_id = by_external_id
        self.default_source = default_source

    def resolve(self, batch: pa.RecordBatch, verdicts: Verdicts) -> ObjectArray:
        """Each row's customer as canonical CRM number text (``None`` on rejected rows)."""
        size = batch.num_rows
        out = np.full(size, None, dtype=object)
        numbers = optional_text(_column(batch, "crm_number"), size, "crm_number", 64, verdicts)
        external = optional_text(
            _column(batch, "customer_external_id"), size, "customer_external_id", 200, verdicts
        )
        sources = optional_text(
            _column(batch, "customer_source"), size, "customer_source", 100, verdicts
        )
        if self.default_source is not None:
            sources[sources == None] = self.default_source  # noqa: E711 - element-wise
        has_number = numbers != None  # noqa: E711
        has_external = external != None  # noqa: E711
        verdicts.reject(
            has_number & has_external,
            "crm_number",
            numbers,
            "give crm_number or customer_external_id, not both",
        )
        verdicts.reject(
            ~has_number & ~has_external,
            "crm_number",
            None,
            "crm_number or customer_external_id is required",
        )
        self._by_number(numbers, has_number & verdicts.ok, out, verdicts)
        verdicts.reject(
            has_external & (sources == None),  # noqa: E711
            "customer_source",
            None,
            "is required with customer_external_id (or pass customer_source=)",
        )
        self._by_external_id(sources, external, has_external & verdicts.ok, out, verdicts)
        return out

    def _by_number(
        self, numbers: ObjectArray, rows: BoolArray, out: ObjectArray, verdicts: Verdicts
    ) -> None:
        if not rows.any():
            return
        positions = np.flatnonzero(rows)
        encoded = pc.dictionary_encode(pa.array(numbers[positions], pa.large_string()))
        inverse = np.asarray(encoded.indices, dtype=np.int64)
        canonical, reasons = parse_numbers(self.scheme, encoded.dictionary)
        known = self.existing([c for c in canonical if c is not None])
        resolved = np.array(
            [c if c is not None and c in known else None for c in canonical] + [None],
            dtype=object,
        )[:-1]
        values = resolved[inverse]
        for reason in {r for r in reasons if r is not None}:
            bad = np.array([r == reason for r in reasons], dtype=np.bool_)[inverse]
            mask = np.zeros(len(out), dtype=np.bool_)
            mask[positions[bad]] = True
            verdicts.reject(mask, "crm_number", numbers, reason)
        unknown = np.zeros(len(out), dtype=np.bool_)
        unknown[positions[values == None]] = True  # noqa: E711
        verdicts.reject(unknown, "crm_number", numbers, "no such customer")
        out[positions] = values

    def _by_external_id(
        self,
        sources: ObjectArray,
        external: ObjectArray,
        rows: BoolArray,
        out: ObjectArray,
        verdicts: Verdicts,
    ) -> None:
        if not rows.any():
            return
        for source in set(sources[rows].tolist()):
            chosen = rows & (sources == source)
            found = self.by_external_id(source, set(external[chosen].tolist()))
            lookup = {k: v.value for k, v in found.items()}
            positions = np.flatnonzero(chosen)
            values = np.array([lookup.get(e) for e in external[positions].tolist()], dtype=object)
            unknown = np.zeros(len(out), dtype=np.bool_)
            unknown[positions[values == None]] = True  # noqa: E711
            verdicts.reject(unknown, "customer_external_id", external, "no such customer")
            out[positions] = values


def _column(batch: pa.RecordBatch, name: str) -> pa.Array | None:
    index = batch.schema.get_field_index(name)
    if index < 0:
        return None
    column = batch.column(index)
    if pa.types.is_null(column.type):
        return None
    return column


def _import_keys(
    batch: pa.RecordBatch, size: int, default_source: str | None, verdicts: Verdicts
) -> tuple[ObjectArray, ObjectArray]:
    source = optional_text(_column(batch, "source"), size, "source", 100, verdicts)
    if default_source is not None:
        source[source == None] = default_source  # noqa: E711
    external_ref = optional_text(
        _column(batch, "external_ref"), size, "external_ref", 200, verdicts
    )
    verdicts.reject(
        (external_ref != None) & (source == None),  # noqa: E711
        "source",
        None,
        "is required when external_ref is set",
    )
    return source, external_ref


def transaction_batch(
    batch: pa.RecordBatch,
    verdicts: Verdicts,
    customers: CustomerLookup,
    *,
    reporting_currency: str,
    converter: CurrencyConverter | None,
    default_source: str | None,
) -> TransactionBatch:
    """The valid transactions of ``batch`` (rejected rows are recorded in ``verdicts``)."""
    size = batch.num_rows
    customer = customers.resolve(batch, verdicts)
    occurred = instants(_column(batch, "occurred_at"), size, "occurred_at", verdicts, required=True)
    kind = members(_column(batch, "kind"), size, "kind", TRANSACTION_KIND_CODES, verdicts)
    currency, exponents = currencies(_column(batch, "currency"), size, "currency", verdicts)
    total = minor_units(_column(batch, "amount"), size, "amount", exponents, currency, verdicts)
    # A free purchase is a purchase (it counts for frequency); a refund of nothing is not.
    refund = TRANSACTION_KIND_CODES[TransactionKind.REFUND]
    verdicts.reject((total == 0) & (kind == refund), "amount", None, "a refund must be positive")
    channel = members(
        _column(batch, "channel"),
        size,
        "channel",
        SALES_CHANNEL_CODES,
        verdicts,
        default=SalesChannel.OTHER,
    )
    source, external_ref = _import_keys(batch, size, default_source, verdicts)
    reporting = _reporting(total, currency, occurred, reporting_currency, converter, verdicts)
    keep = verdicts.ok
    high, low = new_ids(int(keep.sum()))
    return TransactionBatch(
        customer=customer[keep],
        occurred_us=occurred[keep],
        kind=kind[keep],
        channel=channel[keep],
        currency=currency[keep],
        total_minor=total[keep],
        reporting_minor=reporting[keep],
        source=source[keep],
        external_ref=external_ref[keep],
        id_high=high,
        id_low=low,
    )


def _reporting(
    total: np.ndarray,
    currency: ObjectArray,
    occurred: np.ndarray,
    target: str,
    converter: CurrencyConverter | None,
    verdicts: Verdicts,
) -> np.ndarray:
    """Totals in the reporting currency: the same amount when the currency is the reporting
    one, else the converter's answer for each row (as ``Crm.record_transaction`` asks it)."""
    out = total.copy()
    foreign = verdicts.ok & (currency != target)
    if not foreign.any():
        return out
    if converter is None:
        verdicts.reject(
            foreign,
            "currency",
            currency,
            f"differs from the reporting currency {target} and no converter is configured",
        )
        return out
    for i in np.flatnonzero(foreign).tolist():
        amount = Money.from_minor_units(int(total[i]), str(currency[i]))
        single = np.zeros(len(total), dtype=np.bool_)
        single[i] = True
        try:
            converted = converter.convert(amount, target, from_us(int(occurred[i])))
        except CrmError as exc:
            verdicts.reject(single, "currency", currency, str(exc))
            continue
        if not isinstance(converted, Money) or converted.currency != target:
            verdicts.reject(single, "currency", currency, f"converter did not return {target}")
        elif converted.amount < 0 or (converted.amount == 0) != (total[i] == 0):
            verdicts.reject(single, "reporting_total", currency, "must be positive")
        else:
            out[i] = converted.minor_units
    return out


def interaction_batch(
    batch: pa.RecordBatch,
    verdicts: Verdicts,
    customers: CustomerLookup,
    *,
    default_source: str | None,
) -> InteractionBatch:
    """The valid interactions of ``batch`` (rejected rows are recorded in ``verdicts``)."""
    size = batch.num_rows
    customer = customers.resolve(batch, verdicts)
    occurred = instants(_column(batch, "occurred_at"), size, "occurred_at", verdicts, required=True)
    channel = members(_column(batch, "channel"), size, "channel", CHANNEL_CODES, verdicts)
    direction = members(_column(batch, "direction"), size, "direction", DIRECTION_CODES, verdicts)
    kind = members(_column(batch, "kind"), size, "kind", INTERACTION_KIND_CODES, verdicts)
    subject = optional_text(_column(batch, "subject"), size, "subject", 500, verdicts)
    notes = optional_text(_column(batch, "notes"), size, "notes", 20_000, verdicts)
    outcome = optional_text(_column(batch, "outcome"), size, "outcome", 500, verdicts)
    agent = optional_text(_column(batch, "agent"), size, "agent", 200, verdicts)
    follow = instants(
        _column(batch, "follow_up_due"), size, "follow_up_due", verdicts, required=False
    )
    source, external_ref = _import_keys(batch, size, default_source, verdicts)
    keep = verdicts.ok
    high, low = new_ids(int(keep.sum()))
    return InteractionBatch(
        customer=customer[keep],
        occurred_us=occurred[keep],
        channel=channel[keep],
        direction=direction[keep],
        kind=kind[keep],
        subject=subject[keep],
        notes=notes[keep],
        outcome=outcome[keep],
        agent=agent[keep],
        follow_up_us=follow[keep],
        source=source[keep],
        external_ref=external_ref[keep],
        id_high=high,
        id_low=low,
    )
