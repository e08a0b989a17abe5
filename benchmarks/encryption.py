"""The cost of encryption at rest: a plaintext and an encrypted SQL store, same data, same run.

usage: ``python -m benchmarks.encryption [--customers N] [--lookups N] [--url URL]``
(from the repository root; needs ``crmcore[crypto]``).

Times, on each store: registering ``N`` customers one by one (``Crm.register``: every
personal field sealed, two blind indexes), ``Crm.find_by_email`` of ``--lookups`` registered
addresses (a blind-index look-up, candidates opened), and an RFM run (``Analytics.rfm``, SQL
and numpy engines: they read only non-personal columns). Prints seconds per workload and the
ratio encrypted / plain, plus the 1-minute load average (the machine is shared). ``--url``: a
database URL (default: two SQLite files in a temporary directory); on a server both stores
get tables of their own under fresh prefixes, dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

AS_OF = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@contextmanager
def _stores(url: str | None, ring: Any) -> Iterator[tuple[Any, Any]]:
    from crmcore.adapters.sqlalchemy import SqlStore

    with tempfile.TemporaryDirectory() as tmp:
        made = []
        for name, keys in (("plain", None), ("encrypted", ring)):
            if url is None:
                target, prefix = f"sqlite:///{Path(tmp) / name}.sqlite", "crm_"
            else:
                target, prefix = url, f"b{uuid.uuid4().hex[:8]}_"
            made.append(
                SqlStore.from_url(target, create_schema=True, table_prefix=prefix, keyring=keys)
            )
        try:
            yield made[0], made[1]
        finally:
            for store in made:
                if url is not None:
                    store.drop_schema()
                store.close()


def _people(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    given = ["Ann", "Bo", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jun"]
    family = ["Lee", "Wang", "Smith", "Garcia", "Kim", "Müller", "Rossi", "Sato", "Li", "Ng"]
    out = []
    for i in range(n):
        g, f = rng.choice(given), rng.choice(family)
        out.append(
            {
                "name": f"{g} {f}",
                "emails": [f"{g}.{f}.{i}@example.com".lower().replace("ü", "u")],
                "phones": [f"+4420794{i % 100000:05d}"],
                "organisation": f"Org {i % 97}",
                "birth_date": dt.date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
            }
        )
    return out


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run(customers: int = 2000, lookups: int = 500, url: str | None = None) -> dict[str, Any]:
    """Measure both stores; return ``{workload: (plain s, encrypted s)}`` and the load."""
    from crmcore import Analytics, Crm
    from crmcore.crypto import KeyRing
    from crmcore.domain import Money, SalesChannel, Transaction, TransactionKind

    people = _people(customers)
    rng = random.Random(11)
    probes = [rng.choice(people)["emails"][0] for _ in range(lookups)]
    results: dict[str, list[float]] = {}
    with _stores(url, KeyRing.generate()) as (plain, encrypted):
        for store in (plain, encrypted):
            crm = Crm(store)
            numbers: list[Any] = []

            def register(crm: Crm = crm, numbers: list[Any] = numbers) -> None:
                for person in people:
                    numbers.append(crm.register(**person).number)

            results.setdefault("register", []).append(_timed(register))
            crm.record_transactions(
                Transaction(
                    customer=number,
                    occurred_at=AS_OF - dt.timedelta(days=1 + (i * 7 + k * 31) % 700),
                    kind=TransactionKind.PURCHASE,
                    total=Money(f"{5 + (i * 13 + k) % 200}.00", "USD"),
                    channel=SalesChannel.ONLINE,
                )
                for i, number in enumerate(numbers)
                for k in range(1 + i % 4)
            )

            def lookup(crm: Crm = crm) -> None:
                for email in probes:
                    assert len(crm.find_by_email(email)) == 1

            results.setdefault("lookup", []).append(_timed(lookup))
            analytics = Analytics(crm)
            for engine in ("sql", "numpy"):
                runs = [_timed(lambda e=engine: analytics.rfm(AS_OF, engine=e)) for _ in range(3)]
                results.setdefault(f"rfm ({engine})", []).append(statistics.median(runs))
    return {
        "customers": customers,
        "lookups": lookups,
        "load": os.getloadavg()[0],
        "results": {name: (pair[0], pair[1]) for name, pair in results.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--lookups", type=int, default=500)
    parser.add_argument("--url", default=None)
    args = parser.parse_args(argv)
    out = run(args.customers, args.lookups, args.url)
    print(
        f"encryption at rest: {out['customers']:,} customers, {out['lookups']:,} look-ups, "
        f"load average {out['load']:.2f}"
    )
    print(f"{'workload':<14}{'plain s':>10}{'encrypted s':>14}{'ratio':>8}")
    for name, (plain, sealed) in out["results"].items():
        print(f"{name:<14}{plain:>10.3f}{sealed:>14.3f}{sealed / plain:>8.2f}")


if __name__ == "__main__":
    main()
