"""The in-memory consent ledger: each customer's decisions in the order they were appended."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from crmcore.adapters.memory._context import TransactionContext
from crmcore.adapters.memory._customers import check_number
from crmcore.domain import ConsentRecord, ConsentState, CrmNumber, consent_state
from crmcore.domain.consent import history_order
from crmcore.errors import DuplicateError, ValidationError

__all__ = ["Consents"]


class Consents:
    """:class:`~crmcore.ports.ConsentLedger` of one in-memory unit of work.

    The ledger is ``state.consents`` (number -> entries in append order) with the set of
    taken ids; appending is the only write, and its undo pops what it appended.

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._context = context
        self._state = context.state

    def append(self, record: ConsentRecord) -> None:
        self.append_many([record])

    def append_many(self, records: Sequence[ConsentRecord]) -> None:
        context = self._context
        context.check_active()
        batch = list(records)
        ids: set[uuid.UUID] = set()
        for index, record in enumerate(batch):
            if not isinstance(record, ConsentRecord):
                raise ValidationError(f"records[{index}]", record, "must be a ConsentRecord")
            context.require_customer(record.customer)
            if record.id in ids or record.id in self._state.consent_ids:
                raise DuplicateError("consent record", str(record.id))
            ids.add(record.id)
        if not batch:
            return
        ledger, taken = self._state.consents, self._state.consent_ids
        for record in batch:
            ledger.setdefault(record.customer, []).append(record)
        taken.update(ids)

        def undo() -> None:
            for record in reversed(batch):
                entries = ledger[record.customer]
                entries.pop()
                if not entries:
                    del ledger[record.customer]
            taken.difference_update(ids)

        context.undo.append(undo)

    def forget(self, number: CrmNumber) -> int:
        context = self._context
        context.check_active()
        check_number(number)
        ledger, taken = self._state.consents, self._state.consent_ids
        removed = ledger.pop(number, [])
        ids = {record.id for record in removed}
        taken.difference_update(ids)

        def undo() -> None:
            if removed:
                ledger[number] = removed
                taken.update(ids)

        context.undo.append(undo)
        return len(removed)

    def history(self, number: CrmNumber) -> Sequence[ConsentRecord]:
        self._context.check_active()
        check_number(number)
        return history_order(self._state.consents.get(number, ()))

    def state(self, number: CrmNumber, as_of: dt.datetime) -> ConsentState:
        return consent_state(self.history(number), as_of)
