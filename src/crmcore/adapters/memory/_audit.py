"""The in-memory audit log: entries in the order appended (see :class:`~crmcore.ports.AuditLog`)."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence

from crmcore.adapters.memory._context import TransactionContext
from crmcore.domain import AuditAction, AuditEntry, CrmNumber
from crmcore.domain._checks import aware_utc
from crmcore.domain.audit import check_limit
from crmcore.errors import DuplicateError, ValidationError

__all__ = ["AuditTrail"]


class AuditTrail:
    """:class:`~crmcore.ports.AuditLog` of one in-memory unit of work.

    The state keeps the entries sorted by ``(at, sequence)``: appending is a ``bisect``
    insert (entries almost always arrive in time order, so it is an append), and a query
    walks them in the order it returns.

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._context = context
        self._state = context.state

    def append(self, entry: AuditEntry) -> None:
        self.append_many([entry])

    def append_many(self, entries: Sequence[AuditEntry]) -> None:
        self._context.check_active()
        state = self._state
        fresh: set[object] = set()
        for index, entry in enumerate(entries):
            if not isinstance(entry, AuditEntry):
                raise ValidationError(f"entries[{index}]", entry, "must be an AuditEntry")
            if entry.id in state.audit_ids or entry.id in fresh:
                raise DuplicateError("audit entry", entry.id)
            fresh.add(entry.id)
        for entry in entries:
            state.audit_sequence += 1
            key = (entry.at, state.audit_sequence)
            position = bisect.bisect_right(state.audit_keys, key)
            state.audit_keys.insert(position, key)
            state.audit.insert(position, entry)
            state.audit_ids.add(entry.id)

            def undo(entry: AuditEntry = entry, key: tuple[dt.datetime, int] = key) -> None:
                position = bisect.bisect_left(state.audit_keys, key)
                del state.audit_keys[position]
                del state.audit[position]
                state.audit_ids.discard(entry.id)

            self._context.undo.append(undo)

    def query(
        self,
        *,
        number: CrmNumber | None = None,
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        action: AuditAction | None = None,
        limit: int | None = None,
    ) -> Sequence[AuditEntry]:
        self._context.check_active()
        limit = check_limit(limit)
        state = self._state
        start = 0
        if since is not None:
            start = bisect.bisect_left(state.audit_keys, (aware_utc("since", since), -1))
        stop = len(state.audit)
        if until is not None:
            stop = bisect.bisect_left(state.audit_keys, (aware_utc("until", until), -1))
        out: list[AuditEntry] = []
        if limit == 0:
            return out
        for entry in state.audit[start:stop]:
            if number is not None and entry.customer != number:
                continue
            if actor is not None and entry.actor != actor:
                continue
            if action is not None and entry.action is not action:
                continue
            out.append(entry)
            if limit is not None and len(out) == limit:
                break
        return out
