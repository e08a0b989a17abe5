"""A small JSON Schema validator for the keywords crmcore's shipped schemas use (not a public
API): ``type``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``enum``,
``const``, ``pattern``, ``minimum``, ``maximum``, ``anyOf`` and local ``$ref``. An unknown
keyword is an error, so a schema cannot silently say more than this checks."""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}
_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description"}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def errors(
    schema: dict[str, Any], value: Any, root: dict[str, Any] | None = None, at: str = "$"
) -> list[str]:
    """Every violation of ``schema`` by ``value``, as ``path: reason`` lines."""
    root = schema if root is None else root
    out: list[str] = []
    for key, rule in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "$ref":
            assert rule.startswith("#/$defs/"), rule
            out += errors(root["$defs"][rule.removeprefix("#/$defs/")], value, root, at)
        elif key == "type":
            kinds = [rule] if isinstance(rule, str) else rule
            if not any(_is(value, k) for k in kinds):
                out.append(f"{at}: {value!r} is not of type {rule}")
        elif key == "properties":
            if isinstance(value, dict):
                for name, sub in rule.items():
                    if name in value:
                        out += errors(sub, value[name], root, f"{at}.{name}")
        elif key == "required":
            if isinstance(value, dict):
                out += [f"{at}: missing {name!r}" for name in rule if name not in value]
        elif key == "additionalProperties":
            if isinstance(value, dict):
                extra = [k for k in value if k not in schema.get("properties", {})]
                for name in extra:
                    if rule is False:
                        out.append(f"{at}: unexpected {name!r}")
                    elif isinstance(rule, dict):
                        out += errors(rule, value[name], root, f"{at}.{name}")
        elif key == "items":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    out += errors(rule, item, root, f"{at}[{i}]")
        elif key == "enum":
            if not any(value == v and type(value) is type(v) for v in rule):
                out.append(f"{at}: {value!r} not one of {rule}")
        elif key == "const":
            if value != rule or type(value) is not type(rule):
                out.append(f"{at}: {value!r} is not {rule!r}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                out.append(f"{at}: {value!r} does not match {rule}")
        elif key == "minimum":
            if _is(value, "number") and value < rule:
                out.append(f"{at}: {value!r} < {rule}")
        elif key == "maximum":
            if _is(value, "number") and value > rule:
                out.append(f"{at}: {value!r} > {rule}")
        elif key == "anyOf":
            if all(errors(sub, value, root, at) for sub in rule):
                out.append(f"{at}: {value!r} matches none of anyOf")
        else:
            raise AssertionError(f"schema keyword {key!r} is not supported by this validator")
    return out
