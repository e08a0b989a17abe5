"""Key rotation: re-seal every row under the active data key and re-index it under the
active index key, in batches, each batch its own transaction.

Rows are recognised by the key ids stored beside them (``customer_sealed.key_id`` and
``index_key_id``, ``interactions.key_id``; no sealed row or ``NULL`` for a row written
before encryption was turned on), so an interrupted rotation resumes by being run again:
whatever a finished batch re-sealed is no longer selected. While it runs the store stays
usable: every batch locks only its own customers, and readers (whose ring holds the old and
the new keys) open rows of either key. When no row is left under an old key the settings
retire the old key ids (a ring without them then opens the store)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection, and_, bindparam, delete, exists, or_, select, update

from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._customers import SqlCustomers
from crmcore.adapters.sqlalchemy._encryption import finish_rotation
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.adapters.sqlalchemy._mapping import customer_rows
from crmcore.adapters.sqlalchemy._sealing import (
    CUSTOMER_FIELDS,
    INTERACTION_FIELDS,
    RowSealer,
    record_hex,
)
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.errors import ConfigurationError, ValidationError

if TYPE_CHECKING:
    from crmcore.adapters.sqlalchemy._store import SqlStore

__all__ = ["RotationReport", "rotate_keys"]


@attrs.frozen
class RotationReport:
    """What one run of :func:`rotate_keys` did.

    Attributes:
        customers: customers re-sealed and re-indexed (with their e-mails and phones).
        interactions: interactions re-sealed.
        batches: transactions committed.
        complete: no row is left under an old key (or in plaintext); the old key ids are
            retired. ``False``: stopped by ``max_batches``; run it again to continue.
    """

    customers: int
    interactions: int
    batches: int
    complete: bool


def _sealer(ctx: TransactionContext) -> RowSealer:
    sealer = ctx.sealer
    if sealer is None:
        raise ConfigurationError("rotating keys needs the store opened with keyring=...")
    return sealer


def _customer_batch(ctx: TransactionContext, after: str, size: int) -> list[str]:
    """Re-seal the next ``size`` customers (numbers above ``after``) not under the active
    keys; return their numbers."""
    conn = ctx.write()
    sealer = _sealer(ctx)
    t = ctx.tables
    c = t.customers
    numbers = list(
        conn.execute(
            select(c.c.number)
            .where(c.c.number > after, c.c.erased.is_(False), _stale_customer(t, sealer))
            .order_by(c.c.number)
            .limit(size)
            .with_for_update()
        ).scalars()
    )
    if not numbers:
        return []
    customers = SqlCustomers(ctx)._load(conn, c.c.number.in_(numbers))
    for customer in customers:
        row, emails, phones, _ = customer_rows(customer)
        sealed = sealer.seal_customer(row, emails, phones)
        key = customer.number.value
        conn.execute(update(c).where(c.c.number == key).values(dict.fromkeys(CUSTOMER_FIELDS)))
        for child, rows in (
            (t.customer_emails, emails),
            (t.customer_phones, phones),
            (t.customer_sealed, [sealed]),
        ):
            conn.execute(delete(child).where(child.c.customer == key))
            ctx.inserts.insert_rows(conn, child, rows)
    return numbers


def _stale_customer(t: CrmTables, sealer: RowSealer) -> Any:
    """Customers not sealed under the active data key and indexed under the active index
    key (no ``customer_sealed`` row: a plaintext customer)."""
    s = t.customer_sealed
    return ~exists().where(
        s.c.customer == t.customers.c.number,
        s.c.key_id == sealer.cipher.active_key_id,
        s.c.index_key_id == sealer.cipher.active_index_key_id,
    )


def _interaction_batch(ctx: TransactionContext, after: Any, size: int) -> list[Any]:
    """Re-seal the next ``size`` interactions (ids above ``after``) not under the active
    key; return their ids."""
    conn = ctx.write()
    sealer = _sealer(ctx)
    t = ctx.tables.interactions
    active = sealer.cipher.active_key_id
    query = (
        select(t.c.id, t.c.customer, t.c.key_id, t.c.sealed, *(t.c[f] for f in INTERACTION_FIELDS))
        .where(or_(t.c.key_id.is_(None), t.c.key_id != active))
        .order_by(t.c.id)
        .limit(size)
        .with_for_update()
    )
    if after is not None:
        query = query.where(t.c.id > after)
    rows = conn.execute(query).all()
    if not rows:
        return []
    updates = []
    for rid, number, key_id, sealed, *plain in rows:
        hex_id = record_hex(rid)
        values = sealer.open_interaction_fields(number, hex_id, key_id, sealed, plain)
        updates.append(
            {
                "b_id": rid,
                "b_sealed": sealer.seal_interaction_fields(number, hex_id, values),
                "b_key_id": active,
            }
        )
    conn.execute(
        update(t)
        .where(and_(t.c.id == bindparam("b_id")))
        .values(
            sealed=bindparam("b_sealed"),
            key_id=bindparam("b_key_id"),
            **dict.fromkeys(INTERACTION_FIELDS),
        ),
        updates,
    )
    return [r[0] for r in rows]


def rotate_keys(
    store: SqlStore, *, batch_size: int = 500, max_batches: int | None = None
) -> RotationReport:
    """Re-seal and re-index every row not under the store's active keys.

    Args:
        store: an encrypted store, opened with a ring holding the new active keys and the
            old ones (and, to encrypt a plaintext store in place, ``encrypt_existing=True``).
        batch_size: rows per transaction.
        max_batches: stop after this many transactions (``None``: until done).

    Raises:
        ConfigurationError: the store was opened without a key ring.
        ValidationError: a bad ``batch_size`` or ``max_batches``.
        DecryptionError: a row does not authenticate (nothing of its batch is written).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("batch_size", batch_size, "must be a positive integer")
    if max_batches is not None and (
        isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 0
    ):
        raise ValidationError("max_batches", max_batches, "must be a non-negative integer")
    customers = interactions = batches = 0

    def allowed() -> bool:
        return max_batches is None or batches < max_batches

    after = ""
    while allowed():
        with store.unit_of_work() as uow, translated("customer"):
            done = _customer_batch(uow.context, after, batch_size)
            uow.commit()
        if not done:
            break
        batches += 1
        customers += len(done)
        after = done[-1]
        if len(done) < batch_size:
            break
    last: Any = None
    while allowed():
        with store.unit_of_work() as uow, translated("interaction"):
            ids = _interaction_batch(uow.context, last, batch_size)
            uow.commit()
        if not ids:
            break
        batches += 1
        interactions += len(ids)
        last = ids[-1]
        if len(ids) < batch_size:
            break
    if not allowed():
        return RotationReport(customers, interactions, batches, complete=False)
    with store.unit_of_work() as uow, translated("settings"):
        complete = _finish(uow.context)
        uow.commit()
    if complete:
        store._rotation_finished()
    return RotationReport(customers, interactions, batches, complete=complete)


def _finish(ctx: TransactionContext) -> bool:
    """Retire the old keys if no row is left under them (a concurrent writer with an old
    ring may have added one: then the next run re-seals it)."""
    conn: Connection = ctx.write()
    sealer = _sealer(ctx)
    c, i = ctx.tables.customers, ctx.tables.interactions
    active = sealer.cipher.active_key_id
    left = conn.execute(
        select(c.c.number)
        .where(c.c.erased.is_(False), _stale_customer(ctx.tables, sealer))
        .limit(1)
    ).first()
    left = (
        left
        or conn.execute(
            select(i.c.id).where(or_(i.c.key_id.is_(None), i.c.key_id != active)).limit(1)
        ).first()
    )
    if left is not None:
        return False
    finish_rotation(conn, ctx.tables, sealer.cipher)
    return True
