"""Column-wise validation with the per-row API's rules, and a verdict per row.

Each function reads one Arrow column of a batch, rejects the rows the per-row API would
refuse (recording row, field, value and reason in a :class:`Verdicts`) and returns the
accepted values as a numpy array. A column of the wrong *type* (a float money column, naive
timestamps) is not a row error but a schema error: it raises before anything is stored.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from crmcore._epoch import NONE_MIN, to_us
from crmcore.bulk._result import RejectedRow
from crmcore.domain.money import _MAX_MINOR, CURRENCY_EXPONENTS, Money
from crmcore.errors import ValidationError

__all__ = [
    "Verdicts",
    "currencies",
    "instants",
    "members",
    "minor_units",
    "optional_text",
]

E = TypeVar("E", bound=enum.Enum)
BoolArray = npt.NDArray[np.bool_]
Int64Array = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

_MIN_US: Final = to_us(dt.datetime(1, 1, 2, tzinfo=dt.UTC))
_MAX_US: Final = to_us(dt.datetime(9999, 12, 30, tzinfo=dt.UTC))
# ISO 8601 with a zone: what the per-row API can be given as an aware datetime.
_INSTANT_TEXT: Final = (
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}(:?\d{2})?)$"
)
_DECIMAL_TEXT: Final = r"^-?[0-9]+(\.[0-9]+)?$"
_MAX_EXPONENT: Final = max(CURRENCY_EXPONENTS.values())


class Verdicts:
    """Which rows of one batch are still accepted, and why the others were rejected.

    Args:
        offset: the position of the batch's first row in the whole input.
        size: rows in the batch.
    """

    def __init__(self, offset: int, size: int) -> None:
        self.offset = offset
        self.ok: BoolArray = np.ones(size, dtype=np.bool_)
        self.rejected: list[RejectedRow] = []

    def reject(self, mask: BoolArray, field: str, values: Any, reason: str) -> None:
        """Reject the still-accepted rows of ``mask`` (first reason wins, like the per-row
        API, which stops at the first bad field)."""
        hits = np.flatnonzero(mask & self.ok)
        for i in hits.tolist():
            value = values[i] if values is not None else None
            if isinstance(value, pa.Scalar):
                value = value.as_py()
            self.rejected.append(RejectedRow(self.offset + i, field, _shown(value), reason))
        self.ok[hits] = False

    def reject_row(self, row: int, field: str, value: object, reason: str) -> None:
        """Reject one row (its position in the batch) unless it is rejected already."""
        if self.ok[row]:
            self.rejected.append(RejectedRow(self.offset + row, field, _shown(value), reason))
            self.ok[row] = False

    def in_input_order(self) -> list[RejectedRow]:
        """The rejected rows sorted by position."""
        return sorted(self.rejected, key=lambda r: r.row)


def _shown(value: object) -> str | None:
    return None if value is None else str(value)


def _is_text(column: pa.Array) -> bool:
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or getattr(pa.types, "is_string_view", lambda _: False)(kind)
    )


def _as_text(column: pa.Array, field: str) -> pa.Array:
    """The column as ``large_string`` (polars hands out ``string_view``, pandas may hand out
    dictionaries; the compute kernels below want one plain layout)."""
    if not _is_text(column):
        raise ValidationError(field, str(column.type), "must be a text (string) column")
    if column.type != pa.large_string():
        column = column.cast(pa.large_string())
    return column


def optional_text(
    column: pa.Array | None, size: int, field: str, max_length: int, verdicts: Verdicts
) -> ObjectArray:
    """Optional text as the per-row API keeps it: stripped, blank means absent.

    Rejects text longer than ``max_length`` after stripping and text holding NUL.
    """
    if column is None:
        return np.full(size, None, dtype=object)
    column = _as_text(column, field)
    trimmed = pc.utf8_trim_whitespace(column)
    too_long = pc.fill_null(pc.greater(pc.utf8_length(trimmed), max_length), False)
    verdicts.reject(np.asarray(too_long), field, column, f"must be at most {max_length} characters")
    nul = pc.fill_null(pc.match_substring(trimmed, "\x00"), False)
    verdicts.reject(np.asarray(nul), field, column, "must not contain NUL characters")
    blank = pc.fill_null(pc.equal(pc.utf8_length(trimmed), 0), True)
    out = np.asarray(trimmed.to_numpy(zero_copy_only=False), dtype=object)
    out[np.asarray(blank)] = None
    return out


def members(
    column: pa.Array | None,
    size: int,
    field: str,
    codes: Mapping[E, int],
    verdicts: Verdicts,
    default: E | None = None,
) -> npt.NDArray[np.int8]:
    """Enumeration values (their text, exactly as the enum's values) as column codes.

    Missing values take ``default``; without one they are rejected as required.
    """
    out = np.zeros(size, dtype=np.int8)
    allowed = ", ".join(str(m.value) for m in codes)
    if column is None:
        if default is None:
            verdicts.reject(np.ones(size, dtype=np.bool_), field, None, "is required")
        else:
            out[:] = codes[default]
        return out
    column = _as_text(column, field)
    values = [str(m.value) for m in codes]
    index = pc.index_in(column, value_set=pa.array(values, type=pa.string()))
    found = np.asarray(pc.fill_null(index, -1), dtype=np.int64)
    missing = np.asarray(pc.is_null(column))
    lookup = np.array([codes[m] for m in codes], dtype=np.int8)
    if default is not None:
        found[missing] = list(codes).index(default)
    else:
        verdicts.reject(missing, field, None, "is required")
    verdicts.reject((found < 0) & ~missing, field, column, f"must be one of: {allowed}")
    out[found >= 0] = lookup[found[found >= 0]]
    return out


def instants(
    column: pa.Array | None, size: int, field: str, verdicts: Verdicts, *, required: bool
) -> Int64Array:
    """Aware instants as UTC microseconds; a missing value (allowed when not ``required``) is
    ``NONE_MIN``, the "no instant" sentinel of the stores' columns.

    Accepts timestamp columns with a time zone and ISO 8601 text with a zone offset.

    Raises:
        ValidationError: a timestamp column without a time zone (every row would be a
            naive datetime, which crmcore refuses), or a column of another type.
    """
    out = np.full(size, NONE_MIN, dtype=np.int64)
    if column is None:
        if required:
            verdicts.reject(np.ones(size, dtype=np.bool_), field, None, "is required")
        return out
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            raise ValidationError(
                field,
                str(kind),
                "naive timestamps: the column must carry a time zone (crmcore stores UTC instants)",
            )
        micros, bad = _timestamp_micros(column)
        text = None
    elif _is_text(column):
        text = _as_text(column, field)
        micros, bad = _parse_instants(text)
    else:
        raise ValidationError(field, str(kind), "must be a timestamp column with a time zone")
    missing = np.asarray(pc.is_null(column))
    if required:
        verdicts.reject(missing, field, None, "is required")
    shown = text if text is not None else column
    verdicts.reject(bad & ~missing, field, shown, "must be a timezone-aware ISO 8601 instant")
    out_of_range = ~missing & ~bad & ((micros < _MIN_US) | (micros > _MAX_US))
    verdicts.reject(out_of_range, field, shown, "is out of the representable range")
    good = ~missing & ~bad & ~out_of_range
    out[good] = micros[good]
    return out


def _timestamp_micros(column: pa.Array) -> tuple[Int64Array, BoolArray]:
    unit = column.type.unit
    raw = np.asarray(pc.fill_null(column.cast(pa.int64()), 0), dtype=np.int64)
    bad = np.zeros(len(raw), dtype=np.bool_)
    if unit == "s":
        limit = np.iinfo(np.int64).max // 1_000_000
        bad = np.abs(raw) > limit
        return np.where(bad, 0, raw) * 1_000_000, bad
    if unit == "ms":
        limit = np.iinfo(np.int64).max // 1_000
        bad = np.abs(raw) > limit
        return np.where(bad, 0, raw) * 1_000, bad
    if unit == "ns":
        # A Python datetime holds microseconds: a finer instant cannot be recorded as given.
        bad = raw % 1_000 != 0
        return raw // 1_000, bad
    return raw, bad


def _parse_instants(text: pa.Array) -> tuple[Int64Array, BoolArray]:
    shaped = np.asarray(pc.fill_null(pc.match_substring_regex(text, _INSTANT_TEXT), False))
    out = np.zeros(len(text), dtype=np.int64)
    bad = ~shaped
    if shaped.any():
        chosen = pc.filter(text, pa.array(shaped))
        try:
            parsed = chosen.cast(pa.timestamp("us", tz="UTC"))
            out[shaped] = np.asarray(pc.fill_null(parsed.cast(pa.int64()), 0))
        except pa.ArrowException:
            # Some well-shaped text is no real instant (month 13): find those row by row.
            for i in np.flatnonzero(shaped).tolist():
                try:
                    value = dt.datetime.fromisoformat(str(text[i].as_py()))
                    out[i] = to_us(value)
                except (ValueError, OverflowError):
                    bad[i] = True
    return out, bad


def currencies(
    column: pa.Array | None, size: int, field: str, verdicts: Verdicts
) -> tuple[ObjectArray, Int64Array]:
    """ISO 4217 codes (case and surrounding blanks forgiven, as ``Money`` does) and their
    minor-unit exponents."""
    codes = np.full(size, None, dtype=object)
    exponents = np.zeros(size, dtype=np.int64)
    if column is None:
        verdicts.reject(np.ones(size, dtype=np.bool_), field, None, "is required")
        return codes, exponents
    column = _as_text(column, field)
    cleaned = pc.utf8_upper(pc.utf8_trim_whitespace(column))
    known = sorted(CURRENCY_EXPONENTS)
    index = np.asarray(pc.fill_null(pc.index_in(cleaned, value_set=pa.array(known)), -1))
    missing = np.asarray(pc.is_null(column))
    verdicts.reject(missing, field, None, "is required")
    verdicts.reject((index < 0) & ~missing, field, column, "is not an ISO 4217 currency code")
    good = index >= 0
    names = np.array(known, dtype=object)
    table = np.array([CURRENCY_EXPONENTS[c] for c in known], dtype=np.int64)
    codes[good] = names[index[good]]
    exponents[good] = table[index[good]]
    return codes, exponents


def minor_units(
    column: pa.Array | None,
    size: int,
    field: str,
    exponents: Int64Array,
    currency: ObjectArray,
    verdicts: Verdicts,
) -> Int64Array:
    """Exact, non-negative amounts in minor units of each row's currency.

    Accepts Arrow decimals, integers and decimal text (``"12.50"``: digits, one optional
    point; no exponent, sign or grouping). An amount with more decimal places than its
    currency allows, negative amounts and amounts of 10**17 minor units or more are
    rejected, as ``Money`` and ``Transaction`` reject them.

    Raises:
        ValidationError: a float column (money is never a float) or another type.
    """
    out = np.zeros(size, dtype=np.int64)
    if column is None:
        verdicts.reject(np.ones(size, dtype=np.bool_), field, None, "is required")
        return out
    kind = column.type
    if pa.types.is_floating(kind):
        raise ValidationError(
            field, str(kind), "is a float column: money must be decimal or text, never a float"
        )
    missing = np.asarray(pc.is_null(column))
    verdicts.reject(missing, field, None, "is required")
    if pa.types.is_integer(kind):
        unscaled = np.asarray(pc.fill_null(column.cast(pa.int64()), 0), dtype=np.int64)
        scale: Int64Array | int = 0
        huge = np.zeros(size, dtype=np.bool_)
    elif pa.types.is_decimal(kind):
        if kind.scale > _MAX_EXPONENT:
            # Places beyond every currency's exponent must be zeros: drop them exactly.
            narrow = pc.cast(column, pa.decimal128(38, _MAX_EXPONENT), safe=False)
            exact = np.asarray(pc.fill_null(pc.equal(pc.cast(narrow, kind), column), True))
            _reject_inexact(~exact & ~missing, exponents, currency, field, column, verdicts)
            column = narrow
        unscaled, huge = _decimal_unscaled(column)
        scale = column.type.scale
    elif _is_text(column):
        text = _as_text(column, field)
        shaped = np.asarray(pc.fill_null(pc.match_substring_regex(text, _DECIMAL_TEXT), False))
        verdicts.reject(~shaped & ~missing, field, text, "is not a decimal number")
        unscaled, huge, scale = _text_unscaled(text, shaped)
    else:
        raise ValidationError(field, str(kind), "must be a decimal, integer or text column")
    # Values beyond int64 at the column's scale are rare: judge them one by one with Money.
    exact_minor = _money_row_by_row(
        huge & ~missing & verdicts.ok, column, currency, field, verdicts
    )
    unscaled = np.where(huge, 0, unscaled)
    # Scale each row's unscaled value to its currency's exponent, exactly.
    shift = exponents - scale
    up = shift >= 0
    # 10**19 overflows int64; any shift that large already means "too large" or "inexact".
    factor = np.power(10, np.minimum(np.abs(shift), 18)).astype(np.int64)
    limit = _MAX_MINOR // factor
    too_large = up & (np.abs(unscaled) >= limit)
    verdicts.reject(too_large, field, column, "is too large")
    _reject_inexact(~up & (unscaled % factor != 0), exponents, currency, field, column, verdicts)
    minor = np.where(up, unscaled * np.where(too_large, 0, factor), unscaled // factor)
    for i, value in exact_minor.items():
        minor[i] = value
    too_large_after = np.abs(minor) >= _MAX_MINOR
    verdicts.reject(too_large_after, field, column, "is too large")
    verdicts.reject(minor < 0, field, column, "must not be negative (a refund is a kind)")
    good = verdicts.ok
    out[good] = minor[good]
    return out


def _money_row_by_row(
    rows: BoolArray, column: pa.Array, currency: ObjectArray, field: str, verdicts: Verdicts
) -> dict[int, int]:
    out: dict[int, int] = {}
    for i in np.flatnonzero(rows).tolist():
        value = column[i].as_py()
        try:
            out[i] = Money(
                value.strip() if isinstance(value, str) else value, currency[i]
            ).minor_units
        except ValidationError as exc:
            single = np.zeros(len(rows), dtype=np.bool_)
            single[i] = True
            verdicts.reject(single, field, column, exc.reason)
    return out


def _reject_inexact(
    rows: BoolArray,
    exponents: Int64Array,
    currency: ObjectArray,
    field: str,
    column: pa.Array,
    verdicts: Verdicts,
) -> None:
    for code in {c for c in currency[rows & verdicts.ok] if c is not None}:
        exp = CURRENCY_EXPONENTS[code]
        verdicts.reject(
            rows & (currency == code),
            field,
            column,
            f"has more decimal places than {code} allows ({exp})",
        )


def _decimal_unscaled(column: pa.Array) -> tuple[Int64Array, BoolArray]:
    width = column.type.byte_width
    if column.offset or column.null_count:
        column = pc.fill_null(column, pa.scalar(0, column.type))
        column = pa.concat_arrays([column])  # a fresh buffer starting at offset 0
    words = np.frombuffer(column.buffers()[1], dtype="<u8")
    per = width // 8
    words = words[: len(column) * per].reshape(len(column), per)
    low = words[:, 0].view(np.int64)
    sign = low >> 63  # 0 or -1: what every higher word holds if the value fits in 64 bits
    fits = np.all(words[:, 1:].view(np.int64) == sign[:, None], axis=1)
    return np.where(fits, low, 0), ~fits


def _text_unscaled(text: pa.Array, shaped: BoolArray) -> tuple[Int64Array, BoolArray, Int64Array]:
    """Unscaled integers and per-row scales of well-shaped decimal text (``"12.50"`` is
    1250 at scale 2); trailing zeros of a fraction do not count (``"5.000"`` is 5)."""
    size = len(text)
    unscaled = np.zeros(size, dtype=np.int64)
    huge = np.zeros(size, dtype=np.bool_)
    scale = np.zeros(size, dtype=np.int64)
    if not shaped.any():
        return unscaled, huge, scale
    rows = np.flatnonzero(shaped)
    chosen = pc.take(text, pa.array(rows))
    chosen = pc.replace_substring_regex(chosen, r"(\.[0-9]*?)0+$", r"\1")
    chosen = pc.replace_substring_regex(chosen, r"\.$", "")
    point = np.asarray(pc.find_substring(chosen, "."), dtype=np.int64)
    length = np.asarray(pc.utf8_length(chosen), dtype=np.int64)
    fraction = np.where(point >= 0, length - point - 1, 0)
    digits = pc.replace_substring(chosen, ".", "")
    negative = np.asarray(pc.starts_with(digits, "-"))
    count = np.asarray(pc.utf8_length(digits), dtype=np.int64) - negative
    fits = count <= 18
    small = rows[fits]
    if small.size:
        values = pc.filter(digits, pa.array(fits)).cast(pa.int64())
        unscaled[small] = np.asarray(values, dtype=np.int64)
        scale[small] = fraction[fits]
    for position in np.flatnonzero(~fits).tolist():
        # Rare: more than 18 significant places. Leading zeros may still make it small.
        i = int(rows[position])
        number = int(str(digits[position].as_py()))
        if abs(number) >= 2**63:
            huge[i] = True
        else:
            unscaled[i] = number
            scale[i] = fraction[position]
    return unscaled, huge, scale
