"""Loading a generated store into crmcore: domain objects built from the columns, stored in
batches through the ports' bulk ``add_many`` (one unit of work per batch, as a host's import
job would commit)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from benchmarks.data import Event, Store
from crmcore import (
    Customer,
    Direction,
    Interaction,
    InteractionChannel,
    InteractionKind,
    LifecycleStage,
    Money,
    PersonName,
    SalesChannel,
    Transaction,
    TransactionKind,
)
from crmcore.domain import CrmNumber, CrmNumberScheme
from crmcore.ports import Store as CrmStore

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
BATCH = 50_000
CURRENCY = "USD"

_STAGES = tuple(LifecycleStage)
_SALES = tuple(SalesChannel)
_CONTACT = tuple(InteractionChannel)
_KINDS = tuple(InteractionKind)
_DIRECTIONS = (Direction.INBOUND, Direction.OUTBOUND)
_TX_KINDS = (TransactionKind.PURCHASE, TransactionKind.REFUND)


def instant(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def numbers(scheme: CrmNumberScheme, count: int) -> list[CrmNumber]:
    """CRM numbers of customer ids 0..count-1 (sequence = id + 1)."""
    return [scheme.format(i + 1) for i in range(count)]


def money(minor: int) -> Money:
    return Money(Decimal(minor).scaleb(-2), CURRENCY)


def customers(store: Store, nums: list[CrmNumber], lo: int, hi: int) -> list[Customer]:
    c = store.customers
    out = []
    for i, created, stage, vip, news in zip(
        range(lo, hi),
        c["created_us"][lo:hi].tolist(),
        c["stage"][lo:hi].tolist(),
        c["vip"][lo:hi].tolist(),
        c["newsletter"][lo:hi].tolist(),
        strict=True,
    ):
        at = instant(created)
        tags = frozenset(t for t, on in (("vip", vip), ("newsletter", news)) if on)
        out.append(
            Customer(
                number=nums[i],
                name=PersonName(given="Customer", family=str(i)),
                created_at=at,
                updated_at=at,
                stage=_STAGES[stage],
                tags=tags,
            )
        )
    return out


def transaction(nums: list[CrmNumber], cid: int, at: int, kind: int, minor: int, ch: int) -> Any:
    total = money(minor)
    return Transaction(
        customer=nums[cid],
        occurred_at=instant(at),
        kind=_TX_KINDS[kind],
        total=total,
        channel=_SALES[ch],
        reporting_total=total,
    )


def transactions(store: Store, nums: list[CrmNumber], lo: int, hi: int) -> list[Transaction]:
    t = store.transactions
    return [
        transaction(nums, *row)
        for row in zip(
            t["customer_id"][lo:hi].tolist(),
            t["occurred_us"][lo:hi].tolist(),
            t["kind"][lo:hi].tolist(),
            t["amount_minor"][lo:hi].tolist(),
            t["channel"][lo:hi].tolist(),
            strict=True,
        )
    ]


def interactions(store: Store, nums: list[CrmNumber], lo: int, hi: int) -> list[Interaction]:
    x = store.interactions
    return [
        Interaction(
            customer=nums[cid],
            occurred_at=instant(at),
            channel=_CONTACT[ch],
            direction=_DIRECTIONS[d],
            kind=_KINDS[k],
        )
        for cid, at, ch, k, d in zip(
            x["customer_id"][lo:hi].tolist(),
            x["occurred_us"][lo:hi].tolist(),
            x["channel"][lo:hi].tolist(),
            x["kind"][lo:hi].tolist(),
            x["direction"][lo:hi].tolist(),
            strict=True,
        )
    ]


def event_transaction(nums: list[CrmNumber], e: Event) -> Transaction:
    return transaction(nums, e.customer_id, e.occurred_us, e.kind, e.amount_minor, e.channel)


def _batches(total: int, size: int = BATCH) -> Iterator[tuple[int, int]]:
    for lo in range(0, total, size):
        yield lo, min(total, lo + size)


def ingest(
    crm_store: CrmStore,
    store: Store,
    nums: list[CrmNumber],
    on_phase: Callable[[str], None] = lambda _: None,
) -> None:
    """Store every customer, interaction and transaction; ``on_phase`` is called after each
    table (the harness measures memory per table there)."""
    for lo, hi in _batches(len(store.customers)):
        with crm_store.unit_of_work() as uow:
            uow.customers.add_many(customers(store, nums, lo, hi))
            uow.commit()
    on_phase("customers")
    for lo, hi in _batches(len(store.interactions)):
        with crm_store.unit_of_work() as uow:
            uow.interactions.add_many(interactions(store, nums, lo, hi))
            uow.commit()
    on_phase("interactions")
    for lo, hi in _batches(len(store.transactions)):
        with crm_store.unit_of_work() as uow:
            uow.transactions.add_many(transactions(store, nums, lo, hi))
            uow.commit()
    on_phase("transactions")
