"""The number allocator's part of the contract."""

from __future__ import annotations

import pytest

from crmcore.errors import (
    DuplicateError,
)
from crmcore.ports import Store
from crmcore.testing.contract._support import (
    StoreFixture,
    make_customer,
    register,
    write,
)


class AllocatorContract(StoreFixture):
    """Every store's ``NumberAllocator``: unique sequences, never handed out twice."""

    # -- number allocation -------------------------------------------------------------------

    def test_allocated_sequences_are_unique_and_format_under_the_scheme(self, store: Store) -> None:
        singles = [store.allocator.allocate() for _ in range(50)]
        batch = list(store.allocator.allocate_many(100))
        every = singles + batch
        assert len(batch) == 100
        assert len(set(every)) == len(every)
        assert all(isinstance(s, int) and s >= 1 for s in every)
        for sequence in every:
            number = store.scheme.format(sequence)
            assert store.scheme.parse(number.value) == number
        assert list(store.allocator.allocate_many(0)) == []

    def test_numbers_are_never_reused_after_erase(self, store: Store) -> None:
        erased = register(store)
        write(store, lambda uow: uow.customers.erase(erased.number))
        later = {store.scheme.format(s) for s in store.allocator.allocate_many(20)}
        assert erased.number not in later
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.add(make_customer(store, number=erased.number)))

    def test_a_sequence_taken_by_a_rolled_back_unit_is_not_handed_out_again(
        self, store: Store
    ) -> None:
        with store.unit_of_work() as uow:
            taken = store.allocator.allocate()
            uow.customers.add(make_customer(store, number=store.scheme.format(taken)))
        assert store.allocator.allocate() != taken
