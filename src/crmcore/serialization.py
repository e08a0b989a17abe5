"""JSON-ready (un)structuring of every crmcore entity, with cattrs.

crmcore never touches cattrs' global converter: call :func:`make_converter` for a converter of
your own, or :func:`configure_converter` to teach an existing one crmcore's types. Round trips
are exact: ``Decimal`` travels as text, datetimes as ISO 8601 with offset (always UTC),
enums as their values, CRM numbers as their canonical text.

Example::

    import json
    from crmcore.serialization import make_converter

    converter = make_converter()
    text = json.dumps(converter.unstructure(customer))
    assert converter.structure(json.loads(text), Customer) == customer
"""

from __future__ import annotations

import datetime as dt
import typing
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from crmcore.domain import (
    AttributeValue,
    CrmNumber,
    Customer,
    Money,
)
from crmcore.domain._checks import aware_utc
from crmcore.errors import ValidationError

__all__ = ["configure_converter", "make_converter"]


def _structure_datetime(value: Any, _: type) -> dt.datetime:
    if not isinstance(value, str):
        raise ValidationError("datetime", value, "must be ISO 8601 text")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError("datetime", value, "is not ISO 8601") from None
    return aware_utc("datetime", parsed)


def _structure_date(value: Any, _: type) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValidationError("date", value, "is not an ISO 8601 date") from None


def _structure_decimal(value: Any, _: type) -> Decimal:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationError("decimal", value, "must be decimal text")
    return Decimal(value)


# Custom attributes hold a union JSON cannot tell apart (a date and a str are both text),
# so each value travels tagged with its type.
_ATTRIBUTE_TAGS: dict[type, str] = {
    bool: "bool",
    int: "int",
    str: "str",
    Decimal: "decimal",
    dt.datetime: "datetime",
    dt.date: "date",
}


def _unstructure_attribute(value: AttributeValue) -> dict[str, Any]:
    tag = _ATTRIBUTE_TAGS[type(value)]
    if tag in {"bool", "int", "str"}:
        return {"type": tag, "value": value}
    if tag == "decimal":
        return {"type": tag, "value": str(value)}
    return {"type": tag, "value": value.isoformat()}  # type: ignore[union-attr]


def _structure_attribute(data: Any) -> AttributeValue:
    if not isinstance(data, Mapping) or "type" not in data or "value" not in data:
        raise ValidationError("attributes", data, "must be {'type': ..., 'value': ...}")
    tag, value = data["type"], data["value"]
    if tag == "bool" and isinstance(value, bool):
        return value
    if tag == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tag == "str" and isinstance(value, str):
        return value
    if tag == "decimal":
        return _structure_decimal(value, Decimal)
    if tag == "datetime":
        return _structure_datetime(value, dt.datetime)
    if tag == "date":
        return _structure_date(value, dt.date)
    raise ValidationError("attributes", data, "unknown attribute type or mismatched value")


def _is_frozenset(type_: Any) -> bool:
    return type_ is frozenset or typing.get_origin(type_) is frozenset


def configure_converter(converter: cattrs.Converter) -> cattrs.Converter:
    """Register crmcore's hooks on ``converter`` (returned for chaining).

    Safe to call on a converter that already has hooks of the host's: only crmcore's types
    and the scalar types they use (datetime, date, Decimal, UUID) are registered.
    """
    converter.register_unstructure_hook(dt.datetime, lambda v: v.isoformat())
    converter.register_structure_hook(dt.datetime, _structure_datetime)
    converter.register_unstructure_hook(dt.date, lambda v: v.isoformat())
    converter.register_structure_hook(dt.date, _structure_date)
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, _structure_decimal)
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(v))
    converter.register_unstructure_hook(CrmNumber, lambda v: v.value)
    converter.register_structure_hook(CrmNumber, lambda v, _: CrmNumber(v))
    converter.register_unstructure_hook(
        Money, lambda m: {"amount": str(m.amount), "currency": m.currency}
    )
    converter.register_structure_hook(
        Money, lambda d, _: Money(_structure_decimal(d["amount"], Decimal), d["currency"])
    )
    # Sets become sorted lists: JSON has no set, and a stable order makes diffs readable.
    converter.register_unstructure_hook_func(
        _is_frozenset,
        lambda values: sorted(converter.unstructure(v) for v in values),
    )

    customer_unstructure = make_dict_unstructure_fn(
        Customer,
        converter,
        attributes=override(omit=True),
    )
    customer_structure = make_dict_structure_fn(Customer, converter, attributes=override(omit=True))

    def unstructure_customer(customer: Customer) -> dict[str, Any]:
        data = customer_unstructure(customer)
        data["tags"] = sorted(customer.tags)
        data["attributes"] = {
            key: _unstructure_attribute(value) for key, value in customer.attributes.items()
        }
        return data

    def structure_customer(data: Mapping[str, Any], _: type) -> Customer:
        customer = customer_structure(
            {k: v for k, v in data.items() if k != "attributes"}, Customer
        )
        raw = data.get("attributes", {})
        if not isinstance(raw, Mapping):
            raise ValidationError("attributes", raw, "must be a mapping")
        customer.attributes = {key: _structure_attribute(value) for key, value in raw.items()}
        return customer

    converter.register_unstructure_hook(Customer, unstructure_customer)
    converter.register_structure_hook(Customer, structure_customer)
    return converter


def make_converter() -> cattrs.Converter:
    """A new cattrs converter that round-trips every crmcore entity through JSON types."""
    return configure_converter(cattrs.Converter())
