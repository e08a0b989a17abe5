"""Reading every live customer back in chunks, built without re-running the validators.

What a copy out of a SQL store needs: at S, building customers through their validating
constructors was two fifths of a warm start. Each row was validated when crmcore stored it
(every write goes through :class:`~crmcore.Customer`, whose fields are checked on
construction and assignment), so the plain fields are set directly, as
:func:`crmcore.domain._checks.trusted` does for e-mail addresses on every read. The rare
customer with addresses, attributes or stage history (JSON columns) is rebuilt by
:func:`~crmcore.adapters.sqlalchemy._mapping.customer_from_row`, validators and all.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy import Connection, select

from crmcore.adapters.sqlalchemy._customers import open_customer
from crmcore.adapters.sqlalchemy._mapping import customer_from_row
from crmcore.adapters.sqlalchemy._sealing import RowSealer
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.domain import (
    ContactLabel,
    Customer,
    EmailAddress,
    Gender,
    InteractionChannel,
    LifecycleStage,
    PersonName,
    PhoneNumber,
)
from crmcore.domain.numbers import trusted_numbers

__all__ = ["read_customer_chunks"]

_GENDER: Final = {g.value: g for g in Gender}
_CHANNEL: Final = {c.value: c for c in InteractionChannel}
_STAGE: Final = {s.value: s for s in LifecycleStage}
_LABEL: Final = {label.value: label for label in ContactLabel}
_NO_ATTRIBUTES: Final[MappingProxyType[str, Any]] = MappingProxyType({})
_EMPTY: Final = ("[]", "{}")  # what customer_rows() stores for no items
_COLUMNS: Final = (
    "number",
    "given_name",
    "family_name",
    "display_name",
    "gender",
    "birth_date",
    "title",
    "job_title",
    "organisation",
    "preferred_channel",
    "stage",
    "owner",
    "source",
    "external_id",
    "addresses",
    "attributes",
    "stage_history",
    "created_at",
    "updated_at",
    "version",
    "anonymised_at",
)


def read_customer_chunks(
    conn: Connection, tables: CrmTables, size: int, sealer: RowSealer | None = None
) -> Iterator[list[Customer]]:
    """Every live customer of ``conn``'s store, ascending by number, ``size`` at a time.

    One keyset-paged query per chunk for the customers, one range query per child table.
    An encrypted store's (``sealer``) customers are opened and built with their validators
    (:func:`~crmcore.adapters.sqlalchemy._customers.open_customer`).
    """
    if sealer is not None:
        yield from _read_sealed(conn, tables, size, sealer)
        return
    c = tables.customers
    after = ""
    while True:
        rows = conn.execute(
            select(*(c.c[name] for name in _COLUMNS))
            .where(c.c.number > after, c.c.erased.is_(False))
            .order_by(c.c.number)
            .limit(size)
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        # The loop allocates only acyclic objects: collector passes are pure overhead.
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield _build(rows, *_children(conn, tables, after, last))
        finally:
            if collecting:
                gc.enable()
        if len(rows) < size:
            return
        after = last


def _read_sealed(
    conn: Connection, tables: CrmTables, size: int, sealer: RowSealer
) -> Iterator[list[Customer]]:
    c, s = tables.customers, tables.customer_sealed
    e, p, g = tables.customer_emails, tables.customer_phones, tables.customer_tags
    after = ""
    while True:
        rows = (
            conn.execute(
                select(c, s.c.sealed.label("crmcore_sealed_fields"))
                .select_from(c.outerjoin(s, s.c.customer == c.c.number))
                .where(c.c.number > after, c.c.erased.is_(False))
                .order_by(c.c.number)
                .limit(size)
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        last = rows[-1]["number"]
        emails: dict[str, list[Any]] = defaultdict(list)
        phones: dict[str, list[Any]] = defaultdict(list)
        tags: dict[str, list[str]] = defaultdict(list)
        for child, into in ((e, emails), (p, phones)):
            for r in conn.execute(
                select(child)
                .where(child.c.customer > after, child.c.customer <= last)
                .order_by(child.c.customer, child.c.position)
            ).mappings():
                into[r["customer"]].append(r)
        for customer, tag in conn.execute(
            select(g.c.customer, g.c.tag).where(g.c.customer > after, g.c.customer <= last)
        ):
            tags[customer].append(tag)
        yield [
            open_customer(
                sealer,
                r,
                None
                if r["crmcore_sealed_fields"] is None
                else {"sealed": r["crmcore_sealed_fields"]},
                emails[r["number"]],
                phones[r["number"]],
                tags[r["number"]],
            )
            for r in rows
        ]
        if len(rows) < size:
            return
        after = last


def _children(
    conn: Connection, tables: CrmTables, after: str, last: str
) -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, list[str]]]:
    """The email, phone and tag rows of the customers numbered in (``after``, ``last``]."""
    e, p, g = tables.customer_emails, tables.customer_phones, tables.customer_tags
    emails: dict[str, list[Any]] = defaultdict(list)
    phones: dict[str, list[Any]] = defaultdict(list)
    tags: dict[str, list[str]] = defaultdict(list)
    for customer, address, label in conn.execute(
        select(e.c.customer, e.c.address, e.c.label)
        .where(e.c.customer > after, e.c.customer <= last)
        .order_by(e.c.customer, e.c.position)
    ):
        emails[customer].append((address, label))
    for customer, e164, label in conn.execute(
        select(p.c.customer, p.c.e164, p.c.label)
        .where(p.c.customer > after, p.c.customer <= last)
        .order_by(p.c.customer, p.c.position)
    ):
        phones[customer].append((e164, label))
    for customer, tag in conn.execute(
        select(g.c.customer, g.c.tag).where(g.c.customer > after, g.c.customer <= last)
    ):
        tags[customer].append(tag)
    return emails, phones, tags


def _build(
    rows: Any,
    emails: dict[str, list[Any]],
    phones: dict[str, list[Any]],
    tags: dict[str, list[str]],
) -> list[Customer]:
    new, put = object.__new__, object.__setattr__
    empty: tuple[()] = ()
    no_tags: frozenset[str] = frozenset()
    out: list[Customer] = []
    numbers = trusted_numbers([row[0] for row in rows])
    for number, row in zip(numbers, rows, strict=True):
        (
            text,
            given,
            family,
            display,
            gender,
            birth,
            title,
            job,
            organisation,
            channel,
            stage,
            owner,
            source,
            external_id,
            addresses,
            attributes,
            history,
            created,
            updated,
            version,
            anonymised_at,
        ) = row
        mails = emails.get(text, empty)
        calls = phones.get(text, empty)
        if addresses not in _EMPTY or attributes not in _EMPTY or history not in _EMPTY:
            out.append(
                customer_from_row(
                    dict(zip(_COLUMNS, row, strict=True)),
                    [{"address": a, "label": label} for a, label in mails],
                    [{"e164": n, "label": label} for n, label in calls],
                    tags.get(text, []),
                )
            )
            continue
        name = new(PersonName)
        put(name, "given", given)
        put(name, "family", family)
        put(name, "display", display or "")
        customer = new(Customer)
        put(customer, "number", number)
        put(customer, "name", name)
        put(customer, "created_at", created)
        put(customer, "updated_at", updated)
        put(customer, "gender", None if gender is None else _GENDER[gender])
        put(customer, "birth_date", birth)
        put(customer, "title", title)
        put(customer, "job_title", job)
        put(customer, "organisation", organisation)
        put(customer, "emails", tuple(_email(a, label) for a, label in mails) if mails else empty)
        put(customer, "phones", tuple(_phone(n, label) for n, label in calls) if calls else empty)
        put(customer, "addresses", empty)
        put(customer, "preferred_channel", None if channel is None else _CHANNEL[channel])
        tagged = tags.get(text)
        put(customer, "tags", frozenset(tagged) if tagged else no_tags)
        put(customer, "attributes", _NO_ATTRIBUTES)
        put(customer, "stage", _STAGE[stage])
        put(customer, "stage_history", empty)
        put(customer, "owner", owner)
        put(customer, "source", source)
        put(customer, "external_id", external_id)
        put(customer, "version", version)
        put(customer, "anonymised_at", anonymised_at)
        put(customer, "masked", False)
        out.append(customer)
    return out


def _email(address: str, label: str) -> EmailAddress:
    email = object.__new__(EmailAddress)
    object.__setattr__(email, "address", address)
    object.__setattr__(email, "label", _LABEL[label])
    return email


def _phone(e164: str, label: str) -> PhoneNumber:
    phone = object.__new__(PhoneNumber)
    object.__setattr__(phone, "e164", e164)
    object.__setattr__(phone, "label", _LABEL[label])
    return phone
