"""``SqlCustomers``: the customer registry (customers with their e-mails, phones and tags)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, select, update

from crmcore.adapters.sqlalchemy._aggregates import zero_aggregate
from crmcore.adapters.sqlalchemy._context import TransactionContext
from crmcore.adapters.sqlalchemy._errors import translated
from crmcore.adapters.sqlalchemy._keysets import keyed
from crmcore.adapters.sqlalchemy._lookups import (
    alive,
    chunks,
    key_of,
    require_customers,
    where_in,
)
from crmcore.adapters.sqlalchemy._mapping import customer_from_row, customer_rows
from crmcore.adapters.sqlalchemy._sealing import RowSealer
from crmcore.domain import CrmNumber, Customer
from crmcore.domain._checks import aware_utc
from crmcore.domain.contact import email_lookup_key
from crmcore.domain.numbers import trusted_numbers
from crmcore.errors import (
    ConcurrencyError,
    DuplicateError,
    ErasedError,
    NotFound,
    ValidationError,
)
from crmcore.ports.customer_batch import CustomerBatch
from crmcore.ports.retention import page_limit

__all__ = ["SqlCustomers", "open_customer"]

_SEALED = "crmcore_sealed_fields"  # the label of customer_sealed.sealed in a customer query


class SqlCustomers:
    """The customer registry of one unit of work (see :class:`~crmcore.ports.CustomerRepository`).

    Args:
        context: the unit's transaction context.
    """

    def __init__(self, context: TransactionContext) -> None:
        self._ctx = context
        self._t = context.tables

    # -- writes -------------------------------------------------------------------------

    def add(self, customer: Customer) -> None:
        self.add_many([customer])

    def add_many(self, customers: Sequence[Customer]) -> None:
        conn = self._ctx.write()
        batch = list(customers)
        for item in batch:
            if not isinstance(item, Customer):
                raise ValidationError("customer", item, "must be a Customer")
            # Cross-field rules (a customer changed field by field may break them).
            item.validate()
        if not batch:
            return
        t = self._t
        seen_numbers: set[str] = set()
        seen_ext: set[tuple[str, str]] = set()
        for item in batch:
            if item.number.value in seen_numbers:
                raise DuplicateError("crm number", item.number)
            seen_numbers.add(item.number.value)
            if item.external_id is not None:
                assert item.source is not None
                key = (item.source, item.external_id)
                if key in seen_ext:
                    raise DuplicateError("external id", f"{key[0]}/{key[1]}")
                seen_ext.add(key)
        with translated("customer"):
            taken = alive(self._ctx.dialect, conn, self._t.customers, seen_numbers)
            for item in batch:
                if item.number.value in taken:
                    raise DuplicateError("crm number", item.number)
            c = t.customers
            by_source: dict[str, list[str]] = defaultdict(list)
            for source, external_id in seen_ext:
                by_source[source].append(external_id)
            for source in sorted(by_source):
                query = select(c.c.source, c.c.external_id).where(c.c.source == source).limit(1)
                for part in keyed(self._ctx.dialect, query, c.c.external_id, by_source[source]):
                    hit = conn.execute(part).first()
                    if hit is not None:
                        raise DuplicateError("external id", f"{hit[0]}/{hit[1]}")
            rows, emails, phones, tags = [], [], [], []
            sealed: list[dict[str, Any]] = []
            sealer = self._ctx.sealer
            for item in batch:
                row, e, p, tg = customer_rows(item)
                if sealer is not None:
                    sealed.append(sealer.seal_customer(row, e, p))
                rows.append(row)
                emails.extend(e)
                phones.extend(p)
                tags.extend(tg)
            self._ctx.inserts.insert_rows(conn, c, rows)
            self._insert_children(conn, emails, phones, tags)
            self._ctx.inserts.insert_rows(conn, t.customer_sealed, sealed)
            self._ctx.inserts.insert_rows(
                conn, t.aggregates, [zero_aggregate(r["number"]) for r in rows]
            )

    def add_batch(self, batch: CustomerBatch) -> None:
        """A validated column batch, stored as :meth:`add_many` stores the same customers
        (one multi-row insert per table); the objects are built without re-validation."""
        if not isinstance(batch, CustomerBatch):
            raise ValidationError("batch", batch, "must be a CustomerBatch")
        self.add_many(batch.customers())

    def _insert_children(
        self,
        conn: Connection,
        emails: list[dict[str, Any]],
        phones: list[dict[str, Any]],
        tags: list[dict[str, Any]],
    ) -> None:
        t = self._t
        self._ctx.inserts.insert_rows(conn, t.customer_emails, emails)
        self._ctx.inserts.insert_rows(conn, t.customer_phones, phones)
        self._ctx.inserts.insert_rows(conn, t.customer_tags, tags)

    def update(self, customer: Customer) -> None:
        conn = self._ctx.write()
        if not isinstance(customer, Customer):
            raise ValidationError("customer", customer, "must be a Customer")
        customer.validate()
        t = self._t
        c = t.customers
        number = customer.number
        with translated("customer"):
            current = conn.execute(
                select(c.c.version, c.c.erased).where(c.c.number == number.value)
            ).first()
            if current is None:
                raise NotFound("customer", number)
            if current.erased:
                raise ErasedError("customer", number)
            if current.version != customer.version:
                raise _stale(number, current.version, customer.version)
            if customer.external_id is not None:
                holder = conn.execute(
                    select(c.c.number).where(
                        c.c.source == customer.source,
                        c.c.external_id == customer.external_id,
                        c.c.number != number.value,
                    )
                ).first()
                if holder is not None:
                    raise DuplicateError("external id", f"{customer.source}/{customer.external_id}")
            row, emails, phones, tags = customer_rows(customer)
            sealed = []
            if self._ctx.sealer is not None:
                sealed.append(self._ctx.sealer.seal_customer(row, emails, phones))
            row["version"] = customer.version + 1
            del row["number"]
            result = conn.execute(
                update(c)
                .where(
                    c.c.number == number.value,
                    c.c.version == customer.version,
                    c.c.erased.is_(False),
                )
                .values(**row)
            )
            if result.rowcount != 1:
                raise _stale(number, None, customer.version)
            for child in (t.customer_emails, t.customer_phones, t.customer_tags, t.customer_sealed):
                conn.execute(delete(child).where(child.c.customer == number.value))
            self._insert_children(conn, emails, phones, tags)
            self._ctx.inserts.insert_rows(conn, t.customer_sealed, sealed)
        customer.version += 1

    def lock(self, numbers: Collection[CrmNumber]) -> None:
        keys = sorted({key_of(n) for n in numbers})
        conn = self._ctx.write()
        with translated("customer"):
            self._lock(conn, keys)

    def _lock(self, conn: Connection, keys: Sequence[str]) -> None:
        """Row locks on ``keys`` (in number order, so two lockers never deadlock).

        SQLite needs none: the unit's first write (``BEGIN IMMEDIATE``, taken by
        ``write()``) holds the database's only write lock until the unit ends. PostgreSQL and
        MariaDB: ``SELECT ... FOR UPDATE``; a unit that records history takes a shared lock
        on its customer's row (see ``_history``), so the two exclude each other, and reads
        after the lock see what the units before committed.
        """
        dialect = self._ctx.dialect
        if dialect == "sqlite" or not keys:
            return
        c = self._t.customers
        for where in where_in(dialect, c.c.number, keys):
            conn.execute(
                select(c.c.number).where(where).order_by(c.c.number).with_for_update()
            ).all()

    def erase(self, number: CrmNumber) -> None:
        conn = self._ctx.write()
        t = self._t
        with translated("customer"):
            # Lock first: an update or a recording that committed before is then seen (and
            # erased) by the deletes below, one that comes after finds the tombstone.
            self._lock(conn, [key_of(number)])
            require_customers(self._ctx.dialect, conn, self._t.customers, [number.value])
            key = number.value
            for child in (
                t.segment_members,
                t.customer_emails,
                t.customer_phones,
                t.customer_sealed,
                t.customer_tags,
                t.consents,
                t.transactions,
                t.interactions,
                t.aggregates,
            ):
                conn.execute(delete(child).where(child.c.customer == key))
            blank = {
                col.name: None
                for col in t.customers.c
                if col.name not in {"number", "erased", "version"}
            }
            conn.execute(
                update(t.customers)
                .where(t.customers.c.number == key)
                .values(erased=True, version=t.customers.c.version + 1, **blank)
            )

    # -- reads --------------------------------------------------------------------------

    def _load(self, conn: Connection, where: Any, *, limit: int | None = None) -> list[Customer]:
        t = self._t
        c = t.customers
        sealer = self._ctx.sealer
        if sealer is None:
            query = select(c)
        else:
            # The sealed fields in the same statement as the row: a reader outside a
            # transaction (SQLite) or under READ COMMITTED never pairs a live row with the
            # sealed row an erase removed in between.
            s = t.customer_sealed
            query = select(c, s.c.sealed.label(_SEALED)).select_from(
                c.outerjoin(s, s.c.customer == c.c.number)
            )
        query = query.where(where, c.c.erased.is_(False)).order_by(c.c.number)
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query).mappings().all()
        if not rows:
            return []
        numbers = [r["number"] for r in rows]
        emails: dict[str, list[Any]] = defaultdict(list)
        phones: dict[str, list[Any]] = defaultdict(list)
        tags: dict[str, list[str]] = defaultdict(list)
        for chunk in chunks(numbers):
            e, p, g = t.customer_emails, t.customer_phones, t.customer_tags
            for r in conn.execute(
                select(e).where(e.c.customer.in_(chunk)).order_by(e.c.customer, e.c.position)
            ).mappings():
                emails[r["customer"]].append(r)
            for r in conn.execute(
                select(p).where(p.c.customer.in_(chunk)).order_by(p.c.customer, p.c.position)
            ).mappings():
                phones[r["customer"]].append(r)
            for customer, tag in conn.execute(
                select(g.c.customer, g.c.tag).where(g.c.customer.in_(chunk))
            ):
                tags[customer].append(tag)
        if sealer is None:
            return [
                customer_from_row(r, emails[r["number"]], phones[r["number"]], tags[r["number"]])
                for r in rows
            ]
        return [
            open_customer(
                sealer,
                r,
                None if r[_SEALED] is None else {"sealed": r[_SEALED]},
                emails[r["number"]],
                phones[r["number"]],
                tags[r["number"]],
            )
            for r in rows
        ]

    def get(self, number: CrmNumber) -> Customer:
        conn = self._ctx.read()
        with translated("customer"):
            found = self._load(conn, self._t.customers.c.number == key_of(number))
            if not found:
                state = alive(self._ctx.dialect, conn, self._t.customers, [key_of(number)])
                if state:
                    raise ErasedError("customer", number)
                raise NotFound("customer", number)
        return found[0]

    def find(self, number: CrmNumber) -> Customer | None:
        conn = self._ctx.read()
        with translated("customer"):
            found = self._load(conn, self._t.customers.c.number == key_of(number))
        return found[0] if found else None

    def find_by_email(self, email: str) -> Sequence[Customer]:
        conn = self._ctx.read()
        try:
            key = email_lookup_key(email)
        except ValidationError:
            return []
        e = self._t.customer_emails
        sealer = self._ctx.sealer
        with translated("customer"):
            if sealer is None:
                return self._load(
                    conn,
                    self._t.customers.c.number.in_(
                        select(e.c.customer).where(e.c.lookup_key == key)
                    ),
                )
            # Blind indexes are short (see crmcore.crypto.INDEX_BYTES): candidates whose
            # index collides are dropped once decrypted, so the answer stays exact.
            found = self._load(
                conn,
                self._t.customers.c.number.in_(
                    select(e.c.customer).where(e.c.lookup_key.in_(sealer.email_keys(key)))
                ),
            )
            return [c for c in found if any(m.lookup_key == key for m in c.emails)]

    def find_by_phone(self, e164: str) -> Sequence[Customer]:
        conn = self._ctx.read()
        p = self._t.customer_phones
        sealer = self._ctx.sealer
        with translated("customer"):
            if sealer is None:
                return self._load(
                    conn,
                    self._t.customers.c.number.in_(select(p.c.customer).where(p.c.e164 == e164)),
                )
            found = self._load(
                conn,
                self._t.customers.c.number.in_(
                    select(p.c.customer).where(p.c.e164.in_(sealer.phone_keys(e164)))
                ),
            )
            return [c for c in found if any(m.e164 == e164 for m in c.phones)]

    def find_by_external_id(self, source: str, external_id: str) -> Customer | None:
        conn = self._ctx.read()
        c = self._t.customers
        with translated("customer"):
            found = self._load(conn, and_(c.c.source == source, c.c.external_id == external_id))
        return found[0] if found else None

    def numbers_by_external_id(
        self, source: str, external_ids: Collection[str]
    ) -> dict[str, CrmNumber]:
        conn = self._ctx.read()
        c = self._t.customers.c
        out: dict[str, CrmNumber] = {}
        with translated("customer"):
            query = select(c.external_id, c.number).where(
                and_(c.source == source, c.erased.is_(False))
            )
            for part in keyed(self._ctx.dialect, query, c.external_id, external_ids):
                for external_id, number in conn.execute(part).all():
                    out[external_id] = CrmNumber(number)
        return out

    def existing(self, numbers: Collection[CrmNumber]) -> set[CrmNumber]:
        return {CrmNumber(text) for text in self.existing_texts([n.value for n in numbers])}

    def existing_texts(self, texts: Collection[str]) -> set[str]:
        conn = self._ctx.read()
        c = self._t.customers.c
        out: set[str] = set()
        with translated("customer"):
            query = select(c.number).where(c.erased.is_(False))
            for part in keyed(self._ctx.dialect, query, c.number, texts):
                out.update(conn.execute(part).scalars().all())
        return out

    def external_ids(self) -> dict[CrmNumber, str]:
        conn = self._ctx.read()
        c = self._t.customers.c
        query = select(c.number, c.external_id).where(
            and_(c.external_id.is_not(None), c.erased.is_(False))
        )
        with translated("customer"):
            return {CrmNumber(number): external for number, external in conn.execute(query)}

    def count(self) -> int:
        conn = self._ctx.read()
        c = self._t.customers
        with translated("customer"):
            return int(
                conn.execute(
                    select(func.count()).select_from(c).where(c.c.erased.is_(False))
                ).scalar_one()
            )

    def numbers(self) -> Sequence[CrmNumber]:
        conn = self._ctx.read()
        c = self._t.customers
        with translated("customer"):
            rows = conn.execute(
                select(c.c.number).where(c.c.erased.is_(False)).order_by(c.c.number)
            ).scalars()
            return [CrmNumber(n) for n in rows]

    def inactive(
        self,
        cutoff: dt.datetime,
        *,
        include_anonymised: bool = False,
        after: CrmNumber | None = None,
        limit: int = 1000,
    ) -> Sequence[CrmNumber]:
        conn = self._ctx.read()
        when = aware_utc("cutoff", cutoff)
        limit = page_limit(limit)
        t = self._t
        c = t.customers
        conditions = [c.c.erased.is_(False), c.c.created_at < when]
        if not include_anonymised:
            conditions.append(c.c.anonymised_at.is_(None))
        if after is not None:
            conditions.append(c.c.number > key_of(after))
        for history in (t.transactions, t.interactions):
            # (customer, occurred_at) is indexed: one index probe per candidate.
            conditions.append(
                ~exists().where(history.c.customer == c.c.number, history.c.occurred_at >= when)
            )
        query = select(c.c.number).where(*conditions).order_by(c.c.number).limit(limit)
        with translated("customer"):
            return trusted_numbers(conn.execute(query).scalars().all())

    def iter_all(self, batch_size: int = 1000) -> Iterator[Customer]:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be a positive integer")
        c = self._t.customers
        after = ""
        while True:
            conn = self._ctx.read()
            with translated("customer"):
                batch = self._load(conn, c.c.number > after, limit=batch_size)
            yield from batch
            if len(batch) < batch_size:
                return
            after = batch[-1].number.value


def open_customer(
    sealer: RowSealer,
    row: Any,
    sealed_row: Any,
    emails: Sequence[Any],
    phones: Sequence[Any],
    tags: Sequence[str],
) -> Customer:
    """A customer of an encrypted store from its rows (sealed fields opened)."""
    opened = sealer.open_customer(row, sealed_row)
    number = opened["number"]
    sealed = sealed_row is not None
    return customer_from_row(
        opened,
        [
            {"address": sealer.open_email(number, e, sealed_parent=sealed), "label": e["label"]}
            for e in emails
        ],
        [
            {"e164": sealer.open_phone(number, p, sealed_parent=sealed), "label": p["label"]}
            for p in phones
        ],
        tags,
    )


def _stale(number: CrmNumber, stored: int | None, yours: int) -> ConcurrencyError:
    told = "" if stored is None else f"stored version {stored}, "
    return ConcurrencyError(
        f"customer {number} was changed by someone else ({told}yours {yours}); reload and retry"
    )
