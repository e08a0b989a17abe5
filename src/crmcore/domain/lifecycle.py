"""Lifecycle stages and the one table of allowed transitions between them."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from crmcore.domain import _checks
from crmcore.errors import InvalidTransition

__all__ = ["TRANSITIONS", "LifecycleStage", "StageChange", "check_transition"]


class LifecycleStage(enum.Enum):
    """Where a customer stands in the relationship.

    ``lead -> prospect -> new -> active -> at_risk -> churned``, and a churned customer who
    buys again is ``reactivated`` (and then ``active`` again).
    """

    LEAD = "lead"
    PROSPECT = "prospect"
    NEW = "new"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    CHURNED = "churned"
    REACTIVATED = "reactivated"


_S = LifecycleStage
TRANSITIONS: Final[Mapping[LifecycleStage, frozenset[LifecycleStage]]] = MappingProxyType(
    {
        # A lead may qualify (prospect) or buy straight away (new); a lost lead is churned.
        _S.LEAD: frozenset({_S.PROSPECT, _S.NEW, _S.CHURNED}),
        _S.PROSPECT: frozenset({_S.LEAD, _S.NEW, _S.CHURNED}),
        _S.NEW: frozenset({_S.ACTIVE, _S.AT_RISK, _S.CHURNED}),
        _S.ACTIVE: frozenset({_S.AT_RISK, _S.CHURNED}),
        _S.AT_RISK: frozenset({_S.ACTIVE, _S.CHURNED}),
        # Only a purchase brings a churned customer back, through "reactivated".
        _S.CHURNED: frozenset({_S.REACTIVATED}),
        _S.REACTIVATED: frozenset({_S.ACTIVE, _S.AT_RISK, _S.CHURNED}),
    }
)
"""Allowed transitions: ``TRANSITIONS[from_stage]`` is the set of stages it may move to.

Read-only (a ``MappingProxyType`` over frozensets): the one table cannot be changed at run
time, by crmcore or by a host."""


def check_transition(from_stage: LifecycleStage, to_stage: LifecycleStage) -> None:
    """Raise :class:`InvalidTransition` unless ``from_stage -> to_stage`` is allowed."""
    if to_stage not in TRANSITIONS[from_stage]:
        raise InvalidTransition(from_stage, to_stage)


@attrs.frozen(field_transformer=_checks.install_converters)
class StageChange:
    """One recorded change of lifecycle stage, kept in the customer's history."""

    from_stage: LifecycleStage = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, LifecycleStage, v))
    )
    to_stage: LifecycleStage = attrs.field(
        metadata=_checks.converts(lambda f, v: _checks.member(f, LifecycleStage, v))
    )
    at: dt.datetime = attrs.field(metadata=_checks.converts(_checks.aware_utc))
    reason: str = attrs.field(
        default="",
        metadata=_checks.converts(
            lambda f, v: _checks.text(f, v, max_length=500, allow_empty=True)
        ),
    )
