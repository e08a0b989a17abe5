"""The analytics port: what a store offers the analytics services.

A store's :meth:`~crmcore.ports.Store.metrics_source` returns a :class:`MetricsSource`.
:class:`RuleSelector` and :class:`RfmScorer` are optional capabilities a source may add
(SQL stores do) so that rule members and RFM scores are computed where the data lives, and
:class:`SavedRules` lets a refresh read the saved segments' rules without a unit of work;
:class:`~crmcore.services.Analytics` uses them when present, and the contract in
:mod:`crmcore.testing.contract` checks that they agree with the numpy path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any, Protocol, runtime_checkable

from crmcore.analytics._metrics import CustomerMetrics
from crmcore.analytics._rfm import RfmPolicy, RfmResult
from crmcore.analytics._rules import Rule
from crmcore.domain import CrmNumber

__all__ = ["MetricsSource", "RfmScorer", "RuleSelector", "SavedRules"]


@runtime_checkable
class MetricsSource(Protocol):
    """What analytics need from a store: snapshots and single current rows.

    Implemented by each adapter (``crmcore.adapters.memory`` / ``crmcore.adapters.sqlalchemy``)
    and used by the services.
    """

    def snapshot(
        self, as_of: dt.datetime, fields: Collection[str] | None = None
    ) -> CustomerMetrics:
        """The metrics of every existing customer as of ``as_of``.

        Args:
            as_of: aware instant; transactions and interactions after it do not count.
            fields: the fields to compute (``None``: all). Asking for fewer is faster.

        Returns:
            The snapshot.
        """
        ...

    def customer_row(
        self, number: CrmNumber, as_of: dt.datetime, fields: Collection[str] | None = None
    ) -> dict[str, Any]:
        """One customer's metrics as Python values, computed from that customer alone.

        Args:
            number: the customer.
            as_of: aware instant at or after the customer's latest event.
            fields: the fields to compute (``None``: all).

        Returns:
            Field name -> value (``None`` when missing; instants as aware datetimes).

        Raises:
            NotFound: no such customer.
        """
        ...


@runtime_checkable
class RuleSelector(Protocol):
    """Optional capability of a :class:`MetricsSource`: select rule members itself.

    SQL stores implement it so a segment's members are chosen by the database (a WHERE
    clause) instead of by a numpy mask over a fetched snapshot; the services use it when
    the source offers it. The members must be exactly those :func:`~crmcore.analytics.evaluate`
    would select on ``snapshot(as_of)``.
    """

    def members(
        self, rules: Mapping[str, Rule | str], as_of: dt.datetime
    ) -> dict[str, frozenset[CrmNumber]]:
        """The customers matching each named rule as of ``as_of``."""
        ...


@runtime_checkable
class RfmScorer(Protocol):
    """Optional capability of a :class:`MetricsSource`: compute RFM scores itself (SQL
    stores: window functions), identical to :func:`~crmcore.analytics.score_rfm` on
    ``snapshot(as_of, RFM_FIELDS)``."""

    def score_rfm(self, as_of: dt.datetime, policy: RfmPolicy | None = None) -> RfmResult:
        """Scores, segments and cut points of every customer as of ``as_of``."""
        ...


@runtime_checkable
class SavedRules(Protocol):
    """Optional capability of a :class:`MetricsSource`: the saved segments' rules in one read.

    :meth:`~crmcore.services.Analytics.refresh` tests every saved segment on each call; a
    SQL store answers this with one statement outside a transaction, where reading the
    segments through a unit of work costs a ``BEGIN`` and a ``ROLLBACK`` round trip more
    on PostgreSQL. The answer must be what the store's
    :meth:`~crmcore.ports.SegmentRepository.list` holds: ``(name, effective_rule)`` of every
    saved segment (its rule and the consent it requires), in the same order.
    """

    def saved_rules(self) -> list[tuple[str, str]]:
        """``(name, effective rule text)`` of every saved segment, ordered by name."""
        ...
