"""Small attrs validators and converters that raise crmcore's :class:`ValidationError`.

attrs' own validators raise ``TypeError``/``ValueError``; the domain wants one error type that
names the field and the value, so these wrap the few checks the entities need.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import attrs

from crmcore.errors import ValidationError

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")
A = TypeVar("A", bound=attrs.AttrsInstance)

UTC = dt.UTC


def aware_utc(field: str, value: object) -> dt.datetime:
    """Return ``value`` as a UTC datetime; reject naive datetimes and non-datetimes."""
    if not isinstance(value, dt.datetime):
        raise ValidationError(field, value, "must be a timezone-aware datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(
            field, value, "naive datetime: attach a timezone (crmcore stores UTC instants)"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(field, value, "is out of the representable range") from None


def optional_aware_utc(field: str, value: object) -> dt.datetime | None:
    return None if value is None else aware_utc(field, value)


def text(field: str, value: object, *, max_length: int = 1000, allow_empty: bool = False) -> str:
    """Return stripped text; reject non-strings, empty text and overly long text."""
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be text")
    cleaned = value.strip()
    if not cleaned and not allow_empty:
        raise ValidationError(field, value, "must not be empty")
    if len(cleaned) > max_length:
        raise ValidationError(field, value, f"must be at most {max_length} characters")
    if "\x00" in cleaned:
        raise ValidationError(field, value, "must not contain NUL characters")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be stored by any database driver.
        raise ValidationError(field, value, "is not valid Unicode text") from None
    return cleaned


def lookup_key(field: str, value: object) -> str:
    """A lookup key as given (not stripped: it is compared as stored), refused before any
    query if it is not text or not valid Unicode (a lone surrogate fails in every driver)."""
    if not isinstance(value, str):
        raise ValidationError(field, value, "must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field, value, "is not valid Unicode text") from None
    return value


def optional_text(field: str, value: object, *, max_length: int = 1000) -> str | None:
    """Like :func:`text`, but ``None`` and blank text both mean "absent"."""
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return text(field, value, max_length=max_length)


def member(field: str, enum_type: type[E], value: object) -> E:
    """Coerce ``value`` (an enum member or its value) to ``enum_type``."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except (ValueError, TypeError):
        allowed = ", ".join(str(m.value) for m in enum_type)
        raise ValidationError(field, value, f"must be one of: {allowed}") from None


def optional_member(field: str, enum_type: type[E], value: object) -> E | None:
    return None if value is None else member(field, enum_type, value)


_CONVERT = "crmcore.convert"


def converts(func: Callable[[str, Any], Any]) -> dict[str, Any]:
    """Field metadata asking :func:`install_converters` to convert with ``func(name, value)``.

    The conversion is attached by a field transformer rather than written as
    ``converter=...`` so that mypy's attrs plugin types ``__init__`` by the declared field
    types (the strict, documented API) while run time stays lenient (enum values as text, ...).
    """
    return {_CONVERT: func}


def install_converters(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """attrs ``field_transformer``: turn :func:`converts` metadata into real converters."""
    out = []
    for field in fields:
        func = field.metadata.get(_CONVERT)
        if func is not None:
            field = field.evolve(converter=_named_converter(func))
        out.append(field)
    return out


def _named_converter(func: Callable[[str, Any], Any]) -> Any:
    return attrs.Converter(  # type: ignore[call-overload,misc,unused-ignore]
        lambda value, field: func(field.name, value), takes_field=True
    )


def tuple_of(field: str, values: object, item: Callable[[str, Any], T]) -> tuple[T, ...]:
    """Convert an iterable to a tuple, converting each item (its field is ``field[i]``)."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValidationError(field, values, "must be a sequence")
    return tuple(item(f"{field}[{i}]", v) for i, v in enumerate(values))


def instance_of(field: str, cls: type[T], value: object) -> T:
    if not isinstance(value, cls):
        raise ValidationError(field, value, f"must be a {cls.__name__}")
    return value


def uuid_value(field: str, value: object) -> uuid.UUID:
    """Accept a UUID or its text form."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(field, value, "must be a UUID") from None


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def trusted(cls: type[A], **fields: Any) -> A:
    """Build an attrs instance from values that already passed its converters, skipping them.

    Only for adapters reading back what crmcore itself validated and stored (an e-mail
    address is stored normalised, a phone number in E.164): parsing them again on every read
    is most of the cost of loading a customer and cannot change the result. Never use it for
    input from outside.

    Args:
        cls: an attrs class.
        fields: a value for every field of ``cls``, already in its converted form.

    Raises:
        ValidationError: ``fields`` does not name exactly the fields of ``cls``.
    """
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(a.name for a in attrs.fields(cls))
    if fields.keys() != names:
        raise ValidationError(
            "fields", sorted(fields), f"must be exactly the fields of {cls.__name__}"
        )
    instance = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(instance, name, value)
    return instance


def trusted_factory(cls: type[A], names: tuple[str, ...]) -> Callable[..., A]:
    """:func:`trusted` for many instances: a function taking a value for each of ``names``
    (every field of ``cls``, in that order), positionally, building an instance without the
    converters. The field names are checked once, here, instead of on every instance.

    The same rule as :func:`trusted`: only for values crmcore validated and stored itself.

    Raises:
        ValidationError: ``names`` does not name each field of ``cls`` exactly once.
    """
    fields = frozenset(a.name for a in attrs.fields(cls))
    if len(names) != len(fields) or frozenset(names) != fields:
        raise ValidationError("names", names, f"must be exactly the fields of {cls.__name__}")
    # A slotted class's fields are slot descriptors: setting through them skips the frozen
    # class's __setattr__ (which refuses) and the lookup by name object.__setattr__ makes.
    slots = [getattr(cls, name, None) for name in names]
    setters: list[Callable[[object, Any], None]] = [
        slot.__set__ if slot is not None and hasattr(slot, "__set__") else _setter(name)
        for name, slot in zip(names, slots, strict=True)
    ]
    new = object.__new__

    def build(*values: Any) -> A:
        instance = new(cls)
        for setter, value in zip(setters, values, strict=True):
            setter(instance, value)
        return instance

    return build


def _setter(name: str) -> Callable[[object, Any], None]:
    def set_field(instance: object, value: Any) -> None:
        object.__setattr__(instance, name, value)

    return set_field
