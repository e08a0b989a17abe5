"""Arrow batches of customers -> validated columns, with exactly the per-row API's rules.

The checks run in the order :meth:`crmcore.Crm.new_customer` meets them (the name, the text
dates, the phone numbers, then the customer's fields in declaration order, then its
cross-field rule), so a row's first bad field is the one the per-row API reports.

Text is judged without a Python call per cell where that provably changes nothing: a cell of
printable ASCII with no blank at either end is what every text converter of the domain
returns unchanged, so only its length is checked, column-wise. Every other cell (blanks to
strip, non-ASCII, control characters) goes through the domain's own converter. Enumerations
are matched column-wise; tags, dates given as text, e-mail addresses and phone numbers go
through the domain's converters once per distinct value (or per row that has them).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from typing import Any, Final, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmcore.bulk._columns import BoolArray, ObjectArray, Verdicts, instants
from crmcore.bulk._history import _column
from crmcore.domain import Gender, InteractionChannel, LifecycleStage, _checks
from crmcore.domain.contact import email_addresses, phone_numbers
from crmcore.domain.customer import _tags
from crmcore.errors import ValidationError

__all__ = ["customer_columns"]

E = TypeVar("E", bound=enum.Enum)

_PLAIN: Final = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"
"""Printable ASCII without a blank at either end: what ``str.strip()`` leaves as it is and
what holds no NUL and encodes to UTF-8 one byte per character."""
_NAME_REQUIRED: Final = "a customer needs a given_name, family_name or display_name"
_EPOCH_DAY: Final = dt.date(1970, 1, 1)
_DAYS_1900: Final = (dt.date(1900, 1, 1) - _EPOCH_DAY).days


def customer_columns(
    batch: pa.RecordBatch, verdicts: Verdicts, *, now_us: int, default_source: str | None
) -> dict[str, Any]:
    """Validate every row of ``batch``; the values of each field as the per-row API stores
    them (rows rejected in ``verdicts`` hold placeholders).

    Returns:
        numpy arrays keyed by the field names of
        :class:`~crmcore.ports.customer_batch.CustomerBatch` (all but ``number``).

    Raises:
        ValidationError: a column of a type no cell of which the per-row API would accept as
            that field (numbers as names, a float date, naive timestamps).
    """
    size = batch.num_rows
    given_col = _column(batch, "given_name")
    family_col = _column(batch, "family_name")
    display_col = _column(batch, "display_name")
    nameless = np.ones(size, dtype=np.bool_)
    for column in (given_col, family_col, display_col):
        if column is not None:
            nameless &= np.asarray(pc.is_null(column))
    verdicts.reject(nameless, "given_name", None, _NAME_REQUIRED)
    given = _texts(given_col, size, "given_name", 200, verdicts, _optional(200))
    family = _texts(family_col, size, "family_name", 200, verdicts, _optional(200))
    display = _texts(display_col, size, "display_name", 400, verdicts, _display, missing="")
    display = _display_names(given, family, display)
    verdicts.reject(display == "", "given_name", None, _NAME_REQUIRED)
    birth = _birth_dates(_column(batch, "birth_date"), size, verdicts)
    created = instants(
        _column(batch, "registered_at"), size, "registered_at", verdicts, required=False
    )
    created[created == np.iinfo(np.int64).min] = now_us
    phones = _contacts(
        _column(batch, "phones"),
        size,
        "phones",
        verdicts,
        _phone_checker(_column(batch, "phone_region"), size),
    )
    gender = _members(_column(batch, "gender"), size, "gender", Gender, verdicts, None)
    verdicts.reject(_before_1900(birth), "birth_date", birth, "must be in 1900 or later")
    out: dict[str, Any] = {"given": given, "family": family, "display": display}
    for name, longest in (("title", 100), ("job_title", 200), ("organisation", 200)):
        out[name] = _texts(_column(batch, name), size, name, longest, verdicts, _optional(longest))
    emails = _contacts(
        _column(batch, "emails"),
        size,
        "emails",
        verdicts,
        lambda values, _row: email_addresses(values, "emails"),
    )
    channel = _members(
        _column(batch, "preferred_channel"),
        size,
        "preferred_channel",
        InteractionChannel,
        verdicts,
        None,
    )
    tags = _tag_sets(_column(batch, "tags"), size, verdicts)
    stage = _members(
        _column(batch, "stage"), size, "stage", LifecycleStage, verdicts, LifecycleStage.LEAD
    )
    owner = _texts(_column(batch, "owner"), size, "owner", 200, verdicts, _optional(200))
    source_col = _column(batch, "source")
    source = _texts(source_col, size, "source", 100, verdicts, _optional(100))
    if default_source is not None:
        # The default applies where the cell is missing, as new_customer's keyword would.
        absent = (
            np.ones(size, dtype=np.bool_)
            if source_col is None
            else np.asarray(pc.is_null(source_col))
        )
        source[absent] = _checks.optional_text("source", default_source, max_length=100)
    external_id = _texts(
        _column(batch, "external_id"), size, "external_id", 200, verdicts, _optional(200)
    )
    verdicts.reject(
        (external_id != None) & (source == None),  # noqa: E711 - element-wise
        "source",
        None,
        "is required when external_id is set",
    )
    out |= {
        "created_us": created,
        "gender": gender,
        "birth_date": birth,
        "emails": emails,
        "phones": phones,
        "preferred_channel": channel,
        "tags": tags,
        "stage": stage,
        "owner": owner,
        "source": source,
        "external_id": external_id,
    }
    return out


Check = Callable[[str, Any], Any]


def _optional(longest: int) -> Check:
    return lambda field, value: _checks.optional_text(field, value, max_length=longest)


def _display(field: str, value: object) -> str:
    return _checks.text(field, value, max_length=400, allow_empty=True)


def _texts(
    column: pa.Array | None,
    size: int,
    field: str,
    longest: int,
    verdicts: Verdicts,
    check: Check,
    missing: str | None = None,
) -> ObjectArray:
    """A text field's values as ``check`` (the domain's converter) makes them; missing cells
    are ``missing``. See the module docstring for which cells skip the Python call."""
    out = np.full(size, missing, dtype=object)
    if column is None:
        return out
    text = _as_text(column, field)
    values = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
    present = ~np.asarray(pc.is_null(text))
    plain = np.asarray(pc.fill_null(pc.match_substring_regex(text, _PLAIN), False))
    lengths = np.asarray(pc.fill_null(pc.utf8_length(text), 0))
    verdicts.reject(
        plain & (lengths > longest), field, values, f"must be at most {longest} characters"
    )
    out[plain] = values[plain]
    for i in np.flatnonzero(present & ~plain & verdicts.ok).tolist():
        try:
            out[i] = check(field, values[i])
        except ValidationError as exc:
            verdicts.reject_row(i, field, exc.value, exc.reason)
    return out


def _as_text(column: pa.Array, field: str) -> pa.Array:
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or _is_view(kind)):
        raise ValidationError(field, str(column.type), "must be a text (string) column")
    return column.cast(pa.large_string()) if column.type != pa.large_string() else column


def _is_view(kind: pa.DataType) -> bool:
    return bool(getattr(pa.types, "is_string_view", lambda _: False)(kind))


def _display_names(given: ObjectArray, family: ObjectArray, display: ObjectArray) -> ObjectArray:
    """``PersonName``'s default display name: "given family", or whichever is present."""
    out = display.copy()
    need = out == ""
    has_given = given != None  # noqa: E711 - element-wise
    has_family = family != None  # noqa: E711
    both = need & has_given & has_family
    out[both] = given[both] + " " + family[both]
    only_given = need & has_given & ~has_family
    out[only_given] = given[only_given]
    only_family = need & ~has_given & has_family
    out[only_family] = family[only_family]
    return out


def _members(
    column: pa.Array | None,
    size: int,
    field: str,
    kind: type[E],
    verdicts: Verdicts,
    default: E | None,
) -> ObjectArray:
    """Enumeration members from their exact value text (as ``kind(value)``); missing cells
    take ``default``."""
    choices = list(kind)
    table = np.empty(len(choices) + 1, dtype=object)
    table[:] = [*choices, default]
    if column is None:
        return np.full(size, default, dtype=object)
    text = _as_text(column, field)
    values = pa.array([str(m.value) for m in choices], pa.large_string())
    found = np.asarray(pc.fill_null(pc.index_in(text, value_set=values), -1), dtype=np.int64)
    missing = np.asarray(pc.is_null(text))
    allowed = ", ".join(str(m.value) for m in choices)
    verdicts.reject((found < 0) & ~missing, field, text, f"must be one of: {allowed}")
    result: ObjectArray = table[np.where(found < 0, len(choices), found)]
    return result


def _birth_dates(column: pa.Array | None, size: int, verdicts: Verdicts) -> ObjectArray:
    """Dates from date columns or ``YYYY-MM-DD`` text (parsed as the import parses a text
    cell: surrounding blanks forgiven); the 1900 rule is checked later, in field order."""
    out = np.full(size, None, dtype=object)
    if column is None:
        return out
    kind = column.type
    if pa.types.is_date(kind):
        out[:] = column.to_pylist()
        return out
    text = _as_text(column, "birth_date")
    encoded = pc.dictionary_encode(text)
    indices = np.asarray(pc.fill_null(encoded.indices, -1), dtype=np.int64)
    parsed: list[dt.date | None] = []
    bad: list[bool] = []
    for value in encoded.dictionary.to_pylist():
        try:
            parsed.append(dt.date.fromisoformat(value.strip()))
            bad.append(False)
        except ValueError:
            parsed.append(None)
            bad.append(True)
    table = np.empty(len(parsed) + 1, dtype=object)
    table[:] = [*parsed, None]
    wrong = np.array([*bad, False], dtype=np.bool_)[indices]
    verdicts.reject(wrong, "birth_date", text, "must be a date as YYYY-MM-DD")
    result: ObjectArray = table[indices]
    return result


def _before_1900(dates: ObjectArray) -> BoolArray:
    present = dates != None  # noqa: E711 - element-wise
    out = np.zeros(len(dates), dtype=np.bool_)
    if present.any():
        days = np.array([(d - _EPOCH_DAY).days for d in dates[present].tolist()], dtype=np.int64)
        out[present] = days < _DAYS_1900
    return out


def _cells(column: pa.Array, field: str) -> list[Any]:
    """A list column's cells as lists, or a text column's cells split at ``;`` (a CSV
    file's way of holding several values), blank parts dropped."""
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        cells: list[Any] = column.to_pylist()
        return cells
    text = _as_text(column, field)
    return [
        None if cell is None else [part for part in cell.split(";") if part.strip()]
        for cell in text.to_pylist()
    ]


def _contacts(
    column: pa.Array | None,
    size: int,
    field: str,
    verdicts: Verdicts,
    convert: Callable[[list[Any], int], tuple[Any, ...]],
) -> ObjectArray:
    """E-mail addresses or phone numbers, converted per row that has any."""
    out = np.empty(size, dtype=object)
    out.fill(())
    if column is None:
        return out
    present = np.flatnonzero(~np.asarray(pc.is_null(column)) & verdicts.ok)
    if not present.size:
        return out
    cells = _cells(column.take(pa.array(present)), field)
    for i, cell in zip(present.tolist(), cells, strict=True):
        try:
            out[i] = convert(cell, i)
        except ValidationError as exc:
            verdicts.reject_row(i, exc.field, exc.value, exc.reason)
    return out


def _phone_checker(
    region_column: pa.Array | None, size: int
) -> Callable[[list[Any], int], tuple[Any, ...]]:
    regions: list[Any] = (
        [None] * size
        if region_column is None
        else _as_text(region_column, "phone_region").to_pylist()
    )
    return lambda values, row: phone_numbers(values, regions[row])


def _tag_sets(column: pa.Array | None, size: int, verdicts: Verdicts) -> ObjectArray:
    """Tag sets, each distinct cell converted once by the domain's tag rule."""
    out = np.empty(size, dtype=object)
    out.fill(frozenset())
    if column is None:
        return out
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        done: dict[tuple[Any, ...], frozenset[str] | ValidationError] = {}
        present = np.flatnonzero(~np.asarray(pc.is_null(column)))
        for i, cell in zip(
            present.tolist(), column.take(pa.array(present)).to_pylist(), strict=True
        ):
            key = tuple(cell)
            if key not in done:
                done[key] = _tag_set(cell)
            _put_tags(out, i, done[key], verdicts)
        return out
    text = _as_text(column, "tags")
    encoded = pc.dictionary_encode(text)
    indices = np.asarray(pc.fill_null(encoded.indices, -1), dtype=np.int64)
    sets = [
        _tag_set([part for part in cell.split(";") if part.strip()])
        for cell in encoded.dictionary.to_pylist()
    ]
    for code, result in enumerate(sets):
        rows = indices == code
        if isinstance(result, ValidationError):
            # The offending tag is shown, not the whole cell, as the per-row API reports it.
            verdicts.reject(rows, "tags", np.full(size, result.value, dtype=object), result.reason)
        else:
            out[rows] = result
    return out


def _tag_set(parts: list[Any]) -> frozenset[str] | ValidationError:
    try:
        return _tags("tags", parts)
    except ValidationError as exc:
        return exc


def _put_tags(
    out: ObjectArray, row: int, result: frozenset[str] | ValidationError, verdicts: Verdicts
) -> None:
    if isinstance(result, ValidationError):
        verdicts.reject_row(row, "tags", result.value, result.reason)
    else:
        out[row] = result
