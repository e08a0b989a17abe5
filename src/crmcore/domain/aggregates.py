"""Per-customer running totals, and the reference fold that defines them.

Every store keeps these totals up to date on every write, so analytics read one row per
customer instead of scanning every transaction. Stores do not call this module to do so: the
in-memory adapter updates numpy columns in place and the SQL adapter folds whole batches with
one upsert, each in its own representation (see :mod:`crmcore.analytics.columns`).
:meth:`CustomerAggregate.with_transaction` and :meth:`~CustomerAggregate.with_interaction`
are the *definition* those folds must agree with: the adapter contract
(:mod:`crmcore.testing.contract`) folds the stored history through them and compares the
result with what each store's aggregate repository returns.
"""

from __future__ import annotations

import datetime as dt

import attrs

from crmcore.domain.interaction import Interaction, InteractionKind
from crmcore.domain.numbers import CrmNumber
from crmcore.domain.transaction import Transaction, TransactionKind

__all__ = ["CustomerAggregate"]


@attrs.frozen
class CustomerAggregate:
    """Running totals for one customer.

    Money is in integer minor units of the store's reporting currency. Refunds are not
    purchases: they count in ``refund_count``/``refund_minor`` and reduce ``net_minor``, and
    they do not move ``first_purchase_at``/``last_purchase_at``.
    """

    customer: CrmNumber
    purchase_count: int = 0
    refund_count: int = 0
    purchase_minor: int = 0
    refund_minor: int = 0
    first_purchase_at: dt.datetime | None = None
    last_purchase_at: dt.datetime | None = None
    interaction_count: int = 0
    complaint_count: int = 0
    last_interaction_at: dt.datetime | None = None

    @property
    def net_minor(self) -> int:
        """Purchases minus refunds, in reporting-currency minor units (the M of RFM)."""
        return self.purchase_minor - self.refund_minor

    def with_transaction(self, tx: Transaction) -> CustomerAggregate:
        """Return the aggregate after folding in ``tx`` (which must have a reporting total)."""
        minor = abs(tx.signed_reporting_minor)
        if tx.kind is TransactionKind.REFUND:
            return attrs.evolve(
                self, refund_count=self.refund_count + 1, refund_minor=self.refund_minor + minor
            )
        first, last = self.first_purchase_at, self.last_purchase_at
        return attrs.evolve(
            self,
            purchase_count=self.purchase_count + 1,
            purchase_minor=self.purchase_minor + minor,
            first_purchase_at=tx.occurred_at if first is None else min(first, tx.occurred_at),
            last_purchase_at=tx.occurred_at if last is None else max(last, tx.occurred_at),
        )

    def with_interaction(self, interaction: Interaction) -> CustomerAggregate:
        """Return the aggregate after folding in ``interaction``."""
        last = self.last_interaction_at
        return attrs.evolve(
            self,
            interaction_count=self.interaction_count + 1,
            complaint_count=self.complaint_count + (interaction.kind is InteractionKind.COMPLAINT),
            last_interaction_at=interaction.occurred_at
            if last is None
            else max(last, interaction.occurred_at),
        )
