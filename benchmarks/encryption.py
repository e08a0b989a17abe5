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
def _stores(url: str | None, ring: Any) -> Iterator[list[Any]]:
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
            yield made
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


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[k : k + size] for k in range(0, len(items), size)]


def run(customers: int = 2000, lookups: int = 500, url: str | None = None) -> dict[str, Any]:
    """Measure both stores; return ``{workload: (plain s, encrypted s)}`` and the load.

    The two stores take turns, a slice of each workload at a time (100 registrations, 50
    look-ups, one RFM run), so a change of the machine's load during the run weighs on both
    alike.
    """
    from crmcore import Analytics, Crm
    from crmcore.crypto import KeyRing
    from crmcore.domain import Money, SalesChannel, Transaction, TransactionKind

    people = _people(customers)
    rng = random.Random(11)
    probes = [rng.choice(people)["emails"][0] for _ in range(lookups)]
    totals = {name: [0.0, 0.0] for name in ("register", "lookup")}
    with _stores(url, KeyRing.generate()) as stores:
        crms = [Crm(store) for store in stores]
        numbers: list[list[Any]] = [[], []]
        for part in _chunks(people, 100):
            for side, crm in enumerate(crms):

                def register(crm: Crm = crm, side: int = side, part: list[Any] = part) -> None:
                    numbers[side].extend(crm.register(**person).number for person in part)

                totals["register"][side] += _timed(register)
        for side, crm in enumerate(crms):
            crm.record_transactions(
                Transaction(
                    customer=number,
                    occurred_at=AS_OF - dt.timedelta(days=1 + (i * 7 + k * 31) % 700),
                    kind=TransactionKind.PURCHASE,
                    total=Money(f"{5 + (i * 13 + k) % 200}.00", "USD"),
                    channel=SalesChannel.ONLINE,
                )
                for i, number in enumerate(numbers[side])
                for k in range(1 + i % 4)
            )
        for part in _chunks(probes, 50):
            for side, crm in enumerate(crms):

                def lookup(crm: Crm = crm, part: list[str] = part) -> None:
                    for email in part:
                        assert len(crm.find_by_email(email)) == 1

                totals["lookup"][side] += _timed(lookup)
        results = {name: (pair[0], pair[1]) for name, pair in totals.items()}
        analytics = [Analytics(crm) for crm in crms]
        for engine in ("sql", "numpy"):
            for a in analytics:  # warm-up: compiled statements, the database's page cache
                a.rfm(AS_OF, engine=engine)
            runs: list[list[float]] = [[], []]
            for _ in range(11):
                for side, a in enumerate(analytics):
                    runs[side].append(_timed(lambda a=a, e=engine: a.rfm(AS_OF, engine=e)))
            results[f"rfm ({engine})"] = (statistics.median(runs[0]), statistics.median(runs[1]))
    return {
        "customers": customers,
        "lookups": lookups,
        "load": os.getloadavg()[0],
        "results": results,
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
