"""``SqlConsents``: the consent ledger (append-only rows of the ``consents`` table)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection, delete, func, insert, select

from crmcore._epoch import to_us
from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.adapters.sqlalchemy._lookups import key_of, require_customers, where_in
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.domain import (
    ConsentDecision,
    ConsentRecord,
    ConsentState,
    CrmNumber,
    InteractionChannel,
    LawfulBasis,
    consent_state,
)
from crmcore.domain._checks import trusted
from crmcore.errors import DuplicateError, ValidationError

__all__ = ["SqlConsents", "consent_from_row", "consent_row"]

_CHANNEL: Final = {c.value: c for c in InteractionChannel}
_DECISION: Final = {d.value: d for d in ConsentDecision}
_BASIS: Final = {b.value: b for b in LawfulBasis}


def consent_row(record: ConsentRecord, seq: int) -> dict[str, Any]:
    """The row of ``record``, ``seq``-th in its customer's ledger."""
    return {
        "customer": record.customer.value,
        "id": record.id,
        "seq": seq,
        "purpose": record.purpose,
        "channel": None if record.channel is None else record.channel.value,
        "decision": record.decision.value,
        "lawful_basis": record.lawful_basis.value,
        "text_hash": record.text_hash,
        "source": record.source,
        "evidence": record.evidence,
        "actor": record.actor,
        "at": record.at,
        "expires_at": record.expires_at,
        "at_us": to_us(record.at),
        "expires_us": None if record.expires_at is None else to_us(record.expires_at),
    }


def consent_from_row(row: Mapping[Any, Any]) -> ConsentRecord:
    """The record of a stored row (validated when written: rebuilt without validators)."""
    channel = row["channel"]
    return trusted(
        ConsentRecord,
        customer=CrmNumber(row["customer"]),
        purpose=row["purpose"],
        channel=None if channel is None else _CHANNEL[channel],
        decision=_DECISION[row["decision"]],
        at=row["at"],
        lawful_basis=_BASIS[row["lawful_basis"]],
        text_hash=row["text_hash"],
        source=row["source"],
        evidence=row["evidence"],
        actor=row["actor"],
        expires_at=row["expires_at"],
        id=row["id"],
    )


def history_query(tables: CrmTables) -> Any:
    """Every ledger row in history order: by customer, ``at``, then append order."""
    t = tables.consents
    return select(t).order_by(t.c.customer, t.c.at_us, t.c.seq)


class SqlConsents:
    """The consent ledger of one unit of work (see :class:`~crmcore.ports.ConsentLedger`).

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._ctx = context
        self._t = context.tables

    def append(self, record: ConsentRecord) -> None:
        self.append_many([record])

    def append_many(self, records: Sequence[ConsentRecord]) -> None:
        batch = list(records)
        for index, record in enumerate(batch):
            if not isinstance(record, ConsentRecord):
                raise ValidationError(f"records[{index}]", record, "must be a ConsentRecord")
        if not batch:
            return
        ids = [record.id for record in batch]
        if len(set(ids)) != len(ids):
            seen = set()
            for record_id in ids:
                if record_id in seen:
                    raise DuplicateError("consent record", str(record_id))
                seen.add(record_id)
        conn = self._ctx.write()
        keys = sorted({record.customer.value for record in batch})
        with translated("consent record"):
            self._lock(conn, keys)
            require_customers(self._ctx.dialect, conn, self._t.customers, keys)
            t = self._t.consents
            for where in where_in(self._ctx.dialect, t.c.id, ids):
                taken = conn.execute(select(t.c.id).where(where).limit(1)).scalar()
                if taken is not None:
                    raise DuplicateError("consent record", str(taken))
            next_seq = self._next_seq(conn, keys)
            rows = []
            for record in batch:
                key = record.customer.value
                rows.append(consent_row(record, next_seq[key]))
                next_seq[key] += 1
            conn.execute(insert(t), rows)

    def _lock(self, conn: Connection, keys: Sequence[str]) -> None:
        # The next "seq" of a customer is read, then written: two appenders to one customer
        # must not read the same one. SQLite's single writer already serialises them.
        dialect = self._ctx.dialect
        if dialect == "sqlite":
            return
        c = self._t.customers
        for where in where_in(dialect, c.c.number, keys):
            conn.execute(
                select(c.c.number).where(where).order_by(c.c.number).with_for_update()
            ).all()

    def _next_seq(self, conn: Connection, keys: Sequence[str]) -> dict[str, int]:
        t = self._t.consents
        out = dict.fromkeys(keys, 0)
        for where in where_in(self._ctx.dialect, t.c.customer, keys):
            found = conn.execute(
                select(t.c.customer, func.max(t.c.seq)).where(where).group_by(t.c.customer)
            ).all()
            for key, seq in found:
                out[key] = seq + 1
        return out

    def forget(self, number: CrmNumber) -> int:
        key = key_of(number)
        conn = self._ctx.write()
        t = self._t.consents
        with translated("consent record"):
            return int(conn.execute(delete(t).where(t.c.customer == key)).rowcount or 0)

    def history(self, number: CrmNumber) -> Sequence[ConsentRecord]:
        key = key_of(number)
        conn = self._ctx.read()
        t = self._t.consents
        with translated("consent record"):
            rows = conn.execute(
                select(t).where(t.c.customer == key).order_by(t.c.at_us, t.c.seq)
            ).mappings()
            return [consent_from_row(row) for row in rows]

    def state(self, number: CrmNumber, as_of: dt.datetime) -> ConsentState:
        return consent_state(self.history(number), as_of)
