"""White-box tests of the in-memory history's column structures: hash index (collisions
forced with a tiny table, growth), listing, batches with duplicates, erasure and rollback."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from crmcore import Crm, FixedClock, InMemoryStore, Money, Transaction, TransactionKind
from crmcore.adapters.memory._hashing import HashIndex, fnv1a, fnv1a_many, id_hash_many
from crmcore.adapters.memory._listing import CustomerListing
from crmcore.errors import DuplicateError

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def test_vectorised_fnv1a_matches_the_scalar_one() -> None:
    words = [b"", b"a", b"erp-000123", "é€".encode()]
    buf = np.frombuffer(b"".join(words), dtype=np.uint8)
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    assert fnv1a_many(buf, starts, lengths).tolist() == [fnv1a(w) for w in words]


def test_hash_index_resolves_collisions_grows_and_deletes() -> None:
    keys = np.arange(200, dtype=np.uint64)
    hashes = np.zeros(200, dtype=np.uint64)  # every key collides
    index = HashIndex(lambda rows: hashes[rows], capacity=2)

    def same(queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return keys[rows] == keys[queries]

    index.insert(hashes[:150], np.arange(150))
    for row in range(150, 200):
        index.insert_one(0, row)
    assert index.capacity >= 400 and index.live == 200
    assert index.find(hashes, same).tolist() == list(range(200))
    index.remove(hashes[:100:2], np.arange(0, 100, 2))
    index.remove_one(0, 199)
    found = index.find(hashes, same)
    assert (found[:100:2] == -1).all() and (found[1:100:2] == np.arange(1, 100, 2)).all()
    assert found[199] == -1
    assert index.find_one(0, lambda row: row == 51) == 51
    index.insert(hashes[:100:2], np.arange(0, 100, 2))
    assert index.find(hashes[:199], same).tolist() == list(range(199))


def test_listing_folds_the_tail_and_follows_blanked_rows() -> None:
    owner = np.array([3, 1, 3, 2, 1, 3] * 100, dtype=np.int64)
    listing = CustomerListing()
    rows = listing.rows_of(owner, 600, 3)
    assert listing.built == 600
    assert rows.tolist() == [i for i in range(600) if owner[i] == 3]
    owner = np.concatenate((owner, [3, 0]))
    assert listing.rows_of(owner, 602, 3).tolist()[-1] == 600
    listing.forget_from(10)
    assert listing.built == 0


def test_batches_skip_stored_and_repeated_refs_and_roll_back_exactly() -> None:
    store = InMemoryStore(reporting_currency="USD")
    crm = Crm(store, clock=FixedClock(T0))
    ann, bob = crm.register("Ann").number, crm.register("Bob").number

    def tx(number: object, ref: str | None, minutes: int) -> Transaction:
        return crm.with_reporting_total(
            Transaction(
                number,  # type: ignore[arg-type]
                T0 + dt.timedelta(minutes=minutes),
                TransactionKind.PURCHASE,
                Money("1.25", "USD"),
                source=None if ref is None else "erp",
                external_ref=ref,
            )
        )

    first = [tx(ann, f"r{i}", i) for i in range(50)] + [tx(bob, None, i) for i in range(50)]
    with store.unit_of_work() as uow:
        assert uow.transactions.add_many(first) == 100
        uow.commit()
    again = [tx(ann, "r3", 1), tx(bob, "new", 2), tx(bob, "new", 3), tx(ann, None, 4)]
    with store.unit_of_work() as uow:
        assert uow.transactions.add_many(again) == 2
        assert uow.transactions.find_by_external_ref("erp", "new") == again[1]
        assert len(uow.transactions.for_customer(bob)) == 51
        with pytest.raises(DuplicateError):
            uow.transactions.add_many([tx(ann, "x", 1), first[60]])
    with store.unit_of_work() as uow:  # rolled back: nothing of the second unit stays
        assert uow.transactions.find_by_external_ref("erp", "new") is None
        assert len(uow.transactions.for_customer(bob)) == 50
        assert uow.transactions.get(first[7].id) == first[7]
        for t in first:
            assert uow.transactions.get(t.id) == t
    with store.unit_of_work() as uow:  # erased, then rolled back: everything comes back
        uow.customers.erase(ann)
        assert uow.transactions.find_by_external_ref("erp", "r3") is None
        assert uow.transactions.for_customer(ann) == []
    with store.unit_of_work() as uow:
        assert uow.transactions.find_by_external_ref("erp", "r3") == first[3]
        assert uow.transactions.for_customer(ann)[0] == first[49]
        uow.customers.erase(ann)
        uow.commit()
    with store._read_state() as state:
        history = state.transactions
        assert b"r3" not in history.text.data.tobytes()
        assert history.ids.live == 50 and history.refs.live == 0


def test_ids_hash_of_equal_halves_is_stable() -> None:
    high = np.array([1, 2**64 - 1], dtype=np.uint64)
    assert id_hash_many(high, high).tolist() == id_hash_many(high, high).tolist()
