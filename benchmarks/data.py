"""A deterministic, seeded generator of realistic CRM stores, numpy-vectorised.

One store is three column tables (plain numpy arrays, also written as Parquet):

* customers: ``id`` (0-based; CRM number sequence ``id + 1``), ``created_us``, ``stage``
  (code of :class:`crmcore.LifecycleStage`), ``vip`` and ``newsletter`` (tags);
* transactions, ordered by time as a real feed would be: ``customer_id``, ``occurred_us``,
  ``kind`` (0 purchase, 1 refund), ``amount_minor`` (positive, cents), ``channel`` (code of
  :class:`crmcore.SalesChannel`);
* interactions, ordered by time: ``customer_id``, ``occurred_us``, ``channel``, ``kind``
  (code of :class:`crmcore.InteractionKind`), ``direction`` (0 inbound, 1 outbound).

Shape: purchases per customer are negative-binomial (heavy tail, mean ~10, ~9% of customers
never buy), amounts lognormal, ~3% of the transactions are refunds of an earlier purchase of the
same customer, timestamps spread over three years before :data:`END`, interactions Poisson(3)
per customer with ~6% complaints. Instants are int64 microseconds since the epoch (UTC).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
Array = npt.NDArray[np.generic]

US_PER_DAY: Final = 86_400_000_000
START: Final = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
END: Final = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
"""No generated event happens at or after END; the benchmarks score as of END."""


def to_us(value: dt.datetime) -> int:
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


START_US: Final = to_us(START)
END_US: Final = to_us(END)

SIZES: Final = {"tiny": 2_000, "S": 100_000, "M": 300_000, "L": 1_000_000}
"""Number of customers per named size (transactions are ~10.3 per customer)."""

# LifecycleStage codes (declaration order): lead 0, prospect 1, new 2, active 3, at_risk 4,
# churned 5, reactivated 6.
_BUYER_STAGES: Final = np.array([2, 3, 4, 5, 6], dtype=np.int8)
_BUYER_STAGE_P: Final = np.array([0.15, 0.45, 0.2, 0.15, 0.05])
# SalesChannel codes: online 0, store 1, phone 2, partner 3, marketplace 4, other 5.
_SALES_P: Final = np.array([0.5, 0.3, 0.08, 0.05, 0.06, 0.01])
# InteractionChannel codes: phone, email, sms, chat, social, visit, web, other.
_CONTACT_P: Final = np.array([0.2, 0.35, 0.05, 0.15, 0.05, 0.05, 0.14, 0.01])
# InteractionKind codes: inquiry 0, complaint 1, feedback 2, support 3, sales 4, care 5.
_KIND_P: Final = np.array([0.3, 0.06, 0.1, 0.3, 0.14, 0.1])


@dataclasses.dataclass(frozen=True)
class Table:
    """Equal-length named numpy columns."""

    columns: dict[str, Array]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, name: str) -> Array:
        return self.columns[name]


@dataclasses.dataclass(frozen=True)
class Store:
    """A generated store: customers, transactions and interactions."""

    customers: Table
    transactions: Table
    interactions: Table

    TABLES: tuple[str, ...] = ("customers", "transactions", "interactions")

    def tables(self) -> dict[str, Table]:
        return {name: getattr(self, name) for name in self.TABLES}


def generate(customers: int, seed: int = 20250101) -> Store:
    """Generate a store of ``customers`` customers; the same arguments give the same store."""
    rng = np.random.default_rng(seed)
    n = customers
    ids = np.arange(n, dtype=np.int64)
    span = END_US - START_US

    # Purchases per customer: 91% buy at least once; 1 + NB(r=0.6) extra purchases gives a
    # heavy tail with an overall mean of about 10.
    buys = rng.random(n) < 0.91
    extra_mean = 10 / 0.91 - 1
    r = 0.6
    extra = rng.negative_binomial(r, r / (r + extra_mean), n)
    purchases = np.where(buys, 1 + extra, 0).astype(np.int64)

    # Customers are created over the three years (earlier more likely); each purchase falls
    # between creation and END, uniformly.
    created = START_US + (span * rng.beta(1.2, 2.0, n)).astype(np.int64)
    created -= created % 1_000_000  # whole seconds, like most source systems
    owner = np.repeat(ids, purchases)
    life = END_US - created[owner]
    p_at = created[owner] + (life * rng.random(len(owner))).astype(np.int64)
    p_amount = np.maximum(1, np.round(rng.lognormal(3.6, 0.9, len(owner)) * 100)).astype(np.int64)
    p_channel = rng.choice(len(_SALES_P), len(owner), p=_SALES_P).astype(np.int8)

    # Refunds: ~3% of all transactions, each of an earlier purchase (part or all of it), a few
    # days later (but before END).
    n_refunds = round(len(owner) * 0.03 / 0.97)
    refunded = rng.choice(len(owner), n_refunds, replace=False)
    delay = (rng.exponential(7.0, n_refunds) * US_PER_DAY).astype(np.int64) + 3_600_000_000
    r_at = np.minimum(p_at[refunded] + delay, END_US - 1)
    share = np.where(rng.random(n_refunds) < 0.7, 1.0, rng.uniform(0.1, 0.9, n_refunds))
    r_amount = np.maximum(1, np.floor(p_amount[refunded] * share)).astype(np.int64)

    tx_customer = np.concatenate([owner, owner[refunded]])
    tx_at = np.concatenate([p_at, r_at])
    order = np.lexsort((tx_customer, tx_at))
    transactions = Table(
        {
            "customer_id": tx_customer[order],
            "occurred_us": tx_at[order],
            "kind": np.concatenate([np.zeros(len(owner), np.int8), np.ones(n_refunds, np.int8)])[
                order
            ],
            "amount_minor": np.concatenate([p_amount, r_amount])[order],
            "channel": np.concatenate([p_channel, p_channel[refunded]])[order],
        }
    )

    # Interactions: Poisson(3) per customer, after creation.
    contacts = rng.poisson(3.0, n).astype(np.int64)
    who = np.repeat(ids, contacts)
    i_at = created[who] + ((END_US - created[who]) * rng.random(len(who))).astype(np.int64)
    order = np.lexsort((who, i_at))
    interactions = Table(
        {
            "customer_id": who[order],
            "occurred_us": i_at[order],
            "channel": rng.choice(len(_CONTACT_P), len(who), p=_CONTACT_P).astype(np.int8),
            "kind": rng.choice(len(_KIND_P), len(who), p=_KIND_P).astype(np.int8),
            "direction": (rng.random(len(who)) < 0.3).astype(np.int8),
        }
    )

    # Profile: stage consistent with having bought; tags.
    stage = np.where(
        purchases > 0,
        rng.choice(_BUYER_STAGES, n, p=_BUYER_STAGE_P),
        rng.choice(np.array([0, 1], dtype=np.int8), n, p=[0.6, 0.4]),
    ).astype(np.int8)
    customers_table = Table(
        {
            "id": ids,
            "created_us": created,
            "stage": stage,
            "vip": rng.random(n) < 0.05,
            "newsletter": rng.random(n) < 0.4,
        }
    )
    return Store(customers_table, transactions, interactions)


STAGES: Final = ("lead", "prospect", "new", "active", "at_risk", "churned", "reactivated")
"""LifecycleStage values by code; Parquet holds the stage as text, as a user's table would."""


def write_parquet(store: Store, directory: Path) -> None:
    """Parquet for the dataframe baselines and DuckDB, plus ``.npz`` copies of the same
    columns, so the workers of crmcore and plain SQL read the data without importing
    pyarrow (whose libraries would otherwise count in their peak memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    for name, table in store.tables().items():
        columns = dict(table.columns)
        if name == "customers":
            columns["stage"] = np.array(STAGES, dtype=object)[columns["stage"]]
        pq.write_table(pa.table(columns), directory / f"{name}.parquet")
        np.savez(directory / f"{name}.npz", **table.columns)


def read_arrays(directory: Path) -> Store:
    """Read a generated store back as numpy columns (stage as its integer code)."""
    tables = {}
    for name in Store.TABLES:
        with np.load(directory / f"{name}.npz") as npz:
            tables[name] = Table({key: npz[key] for key in npz.files})
    return Store(**tables)


def ensure(size: str, root: Path, seed: int = 20250101) -> Path:
    """Generate size ``size`` into ``root/size`` unless already there; return the directory."""
    directory = root / f"{size}-{seed}"
    if not (directory / "interactions.npz").exists():
        write_parquet(generate(SIZES[size], seed), directory)
    return directory


@dataclasses.dataclass(frozen=True)
class Event:
    """One new transaction for workload 3."""

    customer_id: int
    occurred_us: int
    kind: int
    amount_minor: int
    channel: int


def incremental_events(store: Store, count: int, seed: int = 7) -> list[Event]:
    """``count`` new transactions just before END: mostly purchases (some by customers who
    never bought), some refunds; strictly increasing instants."""
    rng = np.random.default_rng(seed)
    n = len(store.customers)
    ids = rng.integers(0, n, count)
    kinds = (rng.random(count) < 0.1).astype(np.int64)
    amounts = np.maximum(1, np.round(rng.lognormal(3.6, 0.9, count) * 100)).astype(np.int64)
    channels = rng.choice(len(_SALES_P), count, p=_SALES_P)
    at = END_US - US_PER_DAY // 2 + np.arange(count, dtype=np.int64) * 1_000
    return [
        Event(int(c), int(t), int(k), int(a), int(ch))
        for c, t, k, a, ch in zip(ids, at, kinds, amounts, channels, strict=True)
    ]
