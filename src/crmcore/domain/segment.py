"""Segment definitions and membership snapshots."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import attrs

from crmcore.domain import _checks
from crmcore.domain.numbers import CrmNumber
from crmcore.errors import ValidationError

__all__ = ["Segment", "SegmentMembership"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,99}")


def _name(field: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(
            field, value, "a segment name is 1-100 lower-case letters, digits, '_' or '-'"
        )
    return value


def _members(field: str, value: object) -> frozenset[CrmNumber]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(field, value, "must be a collection of CRM numbers")
    return frozenset(_checks.instance_of(f"{field}[]", CrmNumber, v) for v in value)


@attrs.frozen(field_transformer=_checks.install_converters)
class Segment:
    """A named group of customers defined by a rule over metric and profile fields.

    ``rule`` is rule-language text (see ``crmcore.analytics.rules``); it is parsed when the
    segment is evaluated.
    """

    name: str = attrs.field(metadata=_checks.converts(_name))
    rule: str = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.text(f, v, max_length=10_000))
    )
    description: str = attrs.field(
        default="",
        metadata=_checks.converts(
            lambda f, v: _checks.text(f, v, max_length=2000, allow_empty=True)
        ),
    )


@attrs.frozen(field_transformer=_checks.install_converters)
class SegmentMembership:
    """Who was in a segment as of an instant: one saved evaluation run."""

    segment: str = attrs.field(metadata=_checks.converts(_name))
    as_of: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    members: frozenset[CrmNumber] = attrs.field(metadata=_checks.converts(_members))

    def diff(
        self, previous: SegmentMembership | None
    ) -> tuple[frozenset[CrmNumber], frozenset[CrmNumber]]:
        """Return ``(entered, exited)`` relative to an earlier run (``None``: everyone entered)."""
        before = previous.members if previous is not None else frozenset()
        return self.members - before, before - self.members
