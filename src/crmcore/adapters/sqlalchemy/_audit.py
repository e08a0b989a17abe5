"""``SqlAudit``: the audit log table (see :class:`~crmcore.ports.AuditLog`).

Rows are only ever inserted: the repository has no UPDATE or DELETE, and erasure does not
touch the table, so a database role without those privileges on it runs every use case
(``docs/privacy-audit.md``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select

from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.domain import AuditAction, AuditEntry, CrmNumber
from crmcore.domain._checks import aware_utc, trusted
from crmcore.domain.audit import AuditEntity, AuditOutcome, check_limit
from crmcore.errors import ValidationError

__all__ = ["SqlAudit"]


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action.value,
        "entity": entry.entity.value,
        "customer": None if entry.customer is None else entry.customer.value,
        "fields": ",".join(entry.fields),
        "outcome": entry.outcome.value,
        "rows": entry.rows,
    }


def _entry(row: Any) -> AuditEntry:
    # Written by crmcore from a validated entry: read back without running the checks again.
    return trusted(
        AuditEntry,
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=AuditAction(row.action),
        entity=AuditEntity(row.entity),
        customer=None if row.customer is None else CrmNumber(row.customer),
        fields=tuple(row.fields.split(",")) if row.fields else (),
        outcome=AuditOutcome(row.outcome),
        rows=row.rows,
    )


class SqlAudit:
    """The audit log of one unit of work.

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._ctx = context
        self._t = context.tables

    def append(self, entry: AuditEntry) -> None:
        self.append_many([entry])

    def append_many(self, entries: Sequence[AuditEntry]) -> None:
        rows = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, AuditEntry):
                raise ValidationError(f"entries[{index}]", entry, "must be an AuditEntry")
            rows.append(_row(entry))
        if not rows:
            return
        conn = self._ctx.write()
        with translated("audit entry"):
            conn.execute(insert(self._t.audit_log), rows)

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
        limit = check_limit(limit)
        a = self._t.audit_log
        query = select(
            a.c.id,
            a.c.at,
            a.c.actor,
            a.c.action,
            a.c.entity,
            a.c.customer,
            a.c.fields,
            a.c.outcome,
            a.c.rows,
        ).order_by(a.c.at, a.c.seq)
        if number is not None:
            query = query.where(a.c.customer == number.value)
        if actor is not None:
            query = query.where(a.c.actor == actor)
        if since is not None:
            query = query.where(a.c.at >= aware_utc("since", since))
        if until is not None:
            query = query.where(a.c.at < aware_utc("until", until))
        if action is not None:
            query = query.where(a.c.action == action.value)
        if limit is not None:
            query = query.limit(limit)
        conn = self._ctx.read()
        with translated("audit entry"):
            return [_entry(row) for row in conn.execute(query)]
