"""Segment definitions and membership snapshots."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import attrs

from crmcore.domain import _checks
from crmcore.domain.consent import consent_purpose
from crmcore.domain.interaction import InteractionChannel
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


def _requires_consent(field: str, value: object) -> tuple[str, str | None] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, tuple | list) or len(value) not in (1, 2):
        raise ValidationError(field, value, "must be (purpose,) or (purpose, channel)")
    purpose = consent_purpose(field, value[0])
    channel = _checks.optional_member(
        field, InteractionChannel, value[1] if len(value) == 2 else None
    )
    return (purpose, None if channel is None else channel.value)


@attrs.frozen(field_transformer=_checks.install_converters)
class Segment:
    """A named group of customers defined by a rule over metric and profile fields.

    ``rule`` is rule-language text (see ``crmcore.analytics.rules``); it is parsed when the
    segment is evaluated. ``requires_consent`` (``(purpose, channel)``; channel ``None``: the
    every-channel decision) makes the segment an audience that never holds a customer without
    that consent: its :attr:`effective_rule` is ``rule`` and ``consented(purpose, channel)``.
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
    requires_consent: tuple[str, str | None] | None = attrs.field(
        default=None, metadata=_checks.converts(_requires_consent)
    )

    @property
    def effective_rule(self) -> str:
        """The rule the segment is evaluated with: :attr:`rule`, and the consent it requires."""
        if self.requires_consent is None:
            return self.rule
        purpose, channel = self.requires_consent
        required = (
            f"consented({purpose!r})"
            if channel is None
            else (f"consented({purpose!r}, {channel!r})")
        )
        return f"({self.rule}) and {required}"


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
