"""Loading a generated store into crmcore through the columnar import use cases
(``Crm.import_customers``/``import_interactions``/``import_transactions``: one unit of work
per batch, as a host's import job would commit), and building single records for the
incremental workload."""

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
BATCH = 262_144
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


def _arrow_tables(store: Store, nums: list[CrmNumber]) -> dict[str, Any]:
    """The generated columns in crmcore's documented import schema (docs/importing.md), as
    Arrow tables: codes become dictionary-encoded text, cents a decimal column, instants
    timestamps with a time zone. All column-wise; no Python object per row."""
    import numpy as np
    import pyarrow as pa

    def text(codes: Any, values: tuple[Any, ...]) -> Any:
        names = pa.array([v.value for v in values], pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), names)

    def instants(us: Any) -> Any:
        return pa.array(us.astype(np.int64), pa.timestamp("us", "UTC"))

    def cents(minor: Any) -> Any:
        words = np.empty((len(minor), 2), dtype=np.int64)
        words[:, 0] = minor
        words[:, 1] = np.where(minor < 0, -1, 0)
        return pa.Array.from_buffers(
            pa.decimal128(18, 2), len(minor), [None, pa.py_buffer(words.tobytes())]
        )

    number_text = pa.array([n.value for n in nums], pa.string())
    c, t, x = store.customers, store.transactions, store.interactions
    vip, news = c["vip"], c["newsletter"]
    tags = np.full(len(vip), None, dtype=object)
    tags[vip & ~news] = "vip"
    tags[~vip & news] = "newsletter"
    tags[vip & news] = "vip;newsletter"
    customers_table = pa.table(
        {
            "given_name": pa.array(["Customer"] * len(vip), pa.string()),
            "family_name": pa.array(np.arange(len(vip)).astype(str), pa.string()),
            "stage": text(c["stage"], _STAGES),
            "tags": pa.array(tags, pa.string()),
            "registered_at": instants(c["created_us"]),
        }
    )
    transactions_table = pa.table(
        {
            "crm_number": number_text.take(pa.array(t["customer_id"])),
            "occurred_at": instants(t["occurred_us"]),
            "kind": text(t["kind"], _TX_KINDS),
            "amount": cents(t["amount_minor"]),
            "currency": pa.array([CURRENCY]).take(pa.array(np.zeros(len(t), dtype=np.int32))),
            "channel": text(t["channel"], _SALES),
        }
    )
    interactions_table = pa.table(
        {
            "crm_number": number_text.take(pa.array(x["customer_id"])),
            "occurred_at": instants(x["occurred_us"]),
            "channel": text(x["channel"], _CONTACT),
            "direction": text(x["direction"], _DIRECTIONS),
            "kind": text(x["kind"], _KINDS),
        }
    )
    return {
        "customers": customers_table,
        "transactions": transactions_table,
        "interactions": interactions_table,
    }


def ingest(
    crm_store: CrmStore,
    store: Store,
    nums: list[CrmNumber],
    on_phase: Callable[[str], None] = lambda _: None,
) -> None:
    """Store every customer, interaction and transaction through the columnar import use
    cases (``Crm.import_*``, batches of :data:`BATCH`); ``on_phase`` is called after each
    table (the harness measures memory per table there)."""
    from crmcore import Crm

    crm = Crm(crm_store)
    tables = _arrow_tables(store, nums)
    on_phase("arrow")
    for name in ("customers", "interactions", "transactions"):
        importer = getattr(crm, f"import_{name}")
        result = importer(tables.pop(name), batch_size=BATCH)
        if result.rejected or result.duplicates:
            raise RuntimeError(f"{name}: {result.rejected[:3]} {result.duplicates} duplicates")
        on_phase(name)
