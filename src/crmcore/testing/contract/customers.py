"""The customer repository's part of the contract: the registry and erasure."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore.domain import (
    Customer,
    EmailAddress,
    PersonName,
    PhoneNumber,
    Segment,
    SegmentMembership,
)
from crmcore.errors import (
    ConcurrencyError,
    DuplicateError,
    ErasedError,
    NotFound,
    ValidationError,
)
from crmcore.ports import Store, UnitOfWork
from crmcore.ports.customer_batch import CustomerBatch
from crmcore.testing import strategies as cst
from crmcore.testing.contract._support import (
    ONE_DAY,
    PROPERTY_SETTINGS,
    T0,
    StoreFixture,
    get_customer,
    is_utc,
    make_customer,
    make_interaction,
    make_transaction,
    read,
    register,
    write,
)


class CustomerRepositoryContract(StoreFixture):
    """The customer registry: add, get, find, update, lookups, listings, erasure."""

    # -- customers: add, get, find -----------------------------------------------------------

    @PROPERTY_SETTINGS
    @given(customer=cst.customers())
    def test_a_stored_customer_reads_back_equal(self, store: Store, customer: Customer) -> None:
        customer = attrs.evolve(customer, number=store.scheme.format(store.allocator.allocate()))
        if customer.external_id is not None:
            customer.external_id = f"{customer.external_id}-{customer.number.value}"
        write(store, lambda uow: uow.customers.add(customer))
        loaded = read(store, lambda uow: uow.customers.get(customer.number))
        assert loaded == customer
        assert loaded.version == 0
        assert is_utc(loaded.created_at) and is_utc(loaded.updated_at)

    def test_get_of_an_unknown_number_raises_not_found(self, store: Store) -> None:
        unknown = store.scheme.format(store.allocator.allocate())
        with pytest.raises(NotFound) as caught:
            read(store, lambda uow: uow.customers.get(unknown))
        assert not isinstance(caught.value, ErasedError)
        assert read(store, lambda uow: uow.customers.find(unknown)) is None

    def test_lock_holds_live_customers_and_passes_over_unknown_and_erased_ones(
        self, store: Store
    ) -> None:
        live, gone = register(store), register(store)
        write(store, lambda uow: uow.customers.erase(gone.number))
        unknown = store.scheme.format(store.allocator.allocate())
        with store.unit_of_work() as uow:
            uow.customers.lock([unknown, gone.number, live.number])
            loaded = uow.customers.get(live.number)
            loaded.organisation = "Locked Ltd"
            uow.customers.update(loaded)  # the locking unit itself may write
            uow.commit()
        assert get_customer(store, live.number).organisation == "Locked Ltd"
        with pytest.raises(ValidationError), store.unit_of_work() as uow:
            uow.customers.lock([live.number.value])  # type: ignore[list-item]

    def test_get_of_an_erased_customer_raises_erased_error(self, store: Store) -> None:
        customer = register(store)
        write(store, lambda uow: uow.customers.erase(customer.number))
        with pytest.raises(ErasedError):
            read(store, lambda uow: uow.customers.get(customer.number))
        assert read(store, lambda uow: uow.customers.find(customer.number)) is None

    def test_adding_a_taken_number_raises_duplicate_and_keeps_the_first(self, store: Store) -> None:
        first = register(store, name=PersonName(display="First"))
        second = make_customer(store, number=first.number, name=PersonName(display="Second"))
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.add(second))
        assert read(store, lambda uow: uow.customers.get(first.number)) == first

    def test_adding_a_taken_external_id_raises_duplicate(self, store: Store) -> None:
        register(store, source="erp", external_id="E-1")
        clash = make_customer(store, source="erp", external_id="E-1")
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.add(clash))
        assert read(store, lambda uow: uow.customers.find(clash.number)) is None
        # The same external id from another source is another record.
        other = register(store, source="webshop", external_id="E-1")
        found = read(store, lambda uow: uow.customers.find_by_external_id("webshop", "E-1"))
        assert found == other

    def test_returned_customers_are_copies(self, store: Store) -> None:
        customer = register(store, tags=frozenset({"vip"}))
        loaded = read(store, lambda uow: uow.customers.get(customer.number))
        loaded.tags = frozenset({"changed"})
        loaded.name = PersonName(display="Changed")
        assert read(store, lambda uow: uow.customers.get(customer.number)) == customer

    def test_add_many_stores_every_customer(self, store: Store) -> None:
        batch = [make_customer(store, source="crm", external_id=f"X{i}") for i in range(7)]
        write(store, lambda uow: uow.customers.add_many(batch))
        assert read(store, lambda uow: uow.customers.count()) == 7
        for customer in batch:
            assert get_customer(store, customer.number) == customer

    def test_add_many_rejects_repeats_within_the_batch_and_stores_nothing(
        self, store: Store
    ) -> None:
        one = make_customer(store, source="crm", external_id="same")
        two = make_customer(store, source="crm", external_id="same")
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.add_many([one, two]))
        again = make_customer(store)
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.add_many([again, attrs.evolve(again)]))
        assert read(store, lambda uow: uow.customers.count()) == 0

    @PROPERTY_SETTINGS
    @given(drawn=st.lists(cst.customers(), max_size=5))
    def test_add_batch_stores_customers_as_add_many_would(
        self, store: Store, drawn: list[Customer]
    ) -> None:
        batch = []
        for customer in drawn:
            number = store.scheme.format(store.allocator.allocate())
            external_id = customer.external_id
            batch.append(
                attrs.evolve(
                    customer,
                    number=number,
                    updated_at=customer.created_at,
                    addresses=(),
                    attributes={},
                    stage_history=(),
                    anonymised_at=None,
                    external_id=None if external_id is None else f"{external_id}-{number.value}",
                )
            )
        before = read(store, lambda uow: uow.customers.count())
        write(store, lambda uow: uow.customers.add_batch(CustomerBatch.of(batch)))
        assert read(store, lambda uow: uow.customers.count()) == before + len(batch)

        def check(uow: UnitOfWork) -> None:
            repository = uow.customers
            for customer in batch:
                assert repository.get(customer.number) == customer
                for phone in customer.phones[:1]:
                    assert customer.number in [
                        c.number for c in repository.find_by_phone(phone.e164)
                    ]
                for email in customer.emails[:1]:
                    assert customer.number in [
                        c.number for c in repository.find_by_email(email.address)
                    ]
                if customer.source is not None and customer.external_id is not None:
                    found = repository.find_by_external_id(customer.source, customer.external_id)
                    assert found == customer

        read(store, check)

    def test_existing_texts_answers_as_existing_does(self, store: Store) -> None:
        kept, erased = register(store), register(store)
        batch = make_customer(store)
        write(store, lambda uow: uow.customers.add_batch(CustomerBatch.of([batch])))
        write(store, lambda uow: uow.customers.erase(erased.number))
        never = make_customer(store).number.value
        asked = [kept.number.value, erased.number.value, batch.number.value, never, "junk"]
        found = read(store, lambda uow: uow.customers.existing_texts(asked))
        assert found == {kept.number.value, batch.number.value}
        assert read(store, lambda uow: uow.customers.existing_texts([])) == set()

    def test_add_batch_refuses_taken_keys_and_stores_nothing(self, store: Store) -> None:
        first = register(store, source="crm", external_id="K1")
        taken = make_customer(store, source="crm", external_id="K1")
        fresh = make_customer(store, source="crm", external_id="K2")
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.add_batch(CustomerBatch.of([fresh, taken])))
        repeated = make_customer(store, source="crm", external_id="K3")
        twice = attrs.evolve(repeated, number=store.scheme.format(store.allocator.allocate()))
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.add_batch(CustomerBatch.of([repeated, twice])))
        reused = attrs.evolve(fresh, number=first.number, external_id="K4")
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.add_batch(CustomerBatch.of([reused])))
        assert read(store, lambda uow: uow.customers.numbers()) == [first.number]
        write(store, lambda uow: uow.customers.add_batch(CustomerBatch.of([])))
        with pytest.raises(ValidationError):
            write(store, lambda uow: uow.customers.add_batch([fresh]))  # type: ignore[arg-type]

    def test_a_rolled_back_add_batch_leaves_no_trace(self, store: Store) -> None:
        batch = [
            make_customer(store, source="crm", external_id="R1", tags=frozenset({"vip"})),
            make_customer(store, emails=(EmailAddress("ro@example.com"),)),
        ]

        def fail(uow: UnitOfWork) -> None:
            uow.customers.add_batch(CustomerBatch.of(batch))
            raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            write(store, fail)
        assert read(store, lambda uow: uow.customers.count()) == 0
        assert read(store, lambda uow: uow.customers.find_by_external_id("crm", "R1")) is None
        assert read(store, lambda uow: uow.customers.find_by_email("ro@example.com")) == []
        write(store, lambda uow: uow.customers.add_batch(CustomerBatch.of(batch)))
        assert read(store, lambda uow: uow.customers.count()) == 2

    # -- customers: update -------------------------------------------------------------------

    def test_update_writes_changes_and_bumps_the_version(self, store: Store) -> None:
        customer = register(store)
        loaded = read(store, lambda uow: uow.customers.get(customer.number))
        loaded.organisation = "Acme"
        loaded.emails = (EmailAddress("ann@acme.example"),)
        loaded.updated_at = T0 + dt.timedelta(days=1)
        write(store, lambda uow: uow.customers.update(loaded))
        assert loaded.version == 1
        stored = read(store, lambda uow: uow.customers.get(customer.number))
        assert stored == loaded
        # The same object can be changed and updated again.
        loaded.organisation = "Acme Ltd"
        write(store, lambda uow: uow.customers.update(loaded))
        assert read(store, lambda uow: uow.customers.get(customer.number)).version == 2

    def test_a_stale_update_raises_concurrency_error_and_overwrites_nothing(
        self, store: Store
    ) -> None:
        customer = register(store)
        mine = read(store, lambda uow: uow.customers.get(customer.number))
        theirs = read(store, lambda uow: uow.customers.get(customer.number))
        theirs.organisation = "Theirs"
        write(store, lambda uow: uow.customers.update(theirs))
        mine.organisation = "Mine"
        with pytest.raises(ConcurrencyError):
            write(store, lambda uow: uow.customers.update(mine))
        stored = read(store, lambda uow: uow.customers.get(customer.number))
        assert stored.organisation == "Theirs"
        assert stored.version == 1

    def test_update_of_an_unknown_customer_raises_not_found(self, store: Store) -> None:
        ghost = make_customer(store)
        with pytest.raises(NotFound):
            write(store, lambda uow: uow.customers.update(ghost))
        assert read(store, lambda uow: uow.customers.count()) == 0

    def test_update_to_a_taken_external_id_raises_duplicate(self, store: Store) -> None:
        register(store, source="erp", external_id="A")
        other = register(store, source="erp", external_id="B")
        changed = read(store, lambda uow: uow.customers.get(other.number))
        changed.external_id = "A"
        with pytest.raises(DuplicateError):
            write(store, lambda uow: uow.customers.update(changed))
        assert read(store, lambda uow: uow.customers.get(other.number)) == other

    def test_update_moves_the_lookup_keys(self, store: Store) -> None:
        customer = register(
            store,
            emails=(EmailAddress("old@example.com"),),
            phones=(PhoneNumber("+12025550100"),),
            source="erp",
            external_id="OLD",
        )
        loaded = read(store, lambda uow: uow.customers.get(customer.number))
        loaded.emails = (EmailAddress("new@example.com"),)
        loaded.phones = (PhoneNumber("+12025550199"),)
        loaded.external_id = "NEW"
        write(store, lambda uow: uow.customers.update(loaded))

        def lookups(uow: UnitOfWork) -> tuple[Any, ...]:
            c = uow.customers
            return (
                [x.number for x in c.find_by_email("old@example.com")],
                [x.number for x in c.find_by_email("new@example.com")],
                [x.number for x in c.find_by_phone("+12025550100")],
                [x.number for x in c.find_by_phone("+12025550199")],
                c.find_by_external_id("erp", "OLD"),
                getattr(c.find_by_external_id("erp", "NEW"), "number", None),
            )

        n = customer.number
        assert read(store, lookups) == ([], [n], [], [n], None, n)

    # -- customers: lookups and listings ----------------------------------------------------

    def test_find_by_email_is_case_insensitive_and_ordered_by_number(self, store: Store) -> None:
        first = register(store, emails=(EmailAddress("Ann.Lee@Example.COM"),))
        second = register(
            store, emails=(EmailAddress("x@example.org"), EmailAddress("ann.lee@example.com"))
        )
        register(store, emails=(EmailAddress("someone@example.com"),))
        for text in ("ann.lee@example.com", "ANN.LEE@EXAMPLE.COM", " Ann.Lee@example.com "):
            with store.unit_of_work() as uow:
                found = uow.customers.find_by_email(text)
            assert [c.number for c in found] == sorted([first.number, second.number])
        assert read(store, lambda uow: uow.customers.find_by_email("nobody@example.com")) == []
        assert read(store, lambda uow: uow.customers.find_by_email("not an address")) == []
        found = read(store, lambda uow: uow.customers.find_by_email("ann.lee@example.com"))
        assert found[0] == first

    def test_find_by_phone_and_by_external_id(self, store: Store) -> None:
        one = register(store, phones=(PhoneNumber("+12025550123"),))
        two = register(
            store,
            phones=(PhoneNumber("+4930123456"), PhoneNumber("+12025550123")),
            source="erp",
            external_id="K-9",
        )
        found = read(store, lambda uow: uow.customers.find_by_phone("+12025550123"))
        assert [c.number for c in found] == sorted([one.number, two.number])
        assert read(store, lambda uow: uow.customers.find_by_phone("+4930123456")) == [two]
        assert read(store, lambda uow: uow.customers.find_by_phone("+4930123457")) == []
        assert read(store, lambda uow: uow.customers.find_by_external_id("erp", "K-9")) == two
        assert read(store, lambda uow: uow.customers.find_by_external_id("erp", "k-9")) is None
        assert read(store, lambda uow: uow.customers.find_by_external_id("crm", "K-9")) is None

    def test_bulk_lookups_find_existing_customers_by_number_and_import_key(
        self, store: Store
    ) -> None:
        one = register(store, source="erp", external_id="K-1")
        two = register(store, source="erp", external_id="K-2")
        other = register(store, source="shop", external_id="K-1")
        plain = register(store)
        gone = register(store, source="erp", external_id="K-3")
        write(store, lambda uow: uow.customers.erase(gone.number))
        many = [f"X-{i}" for i in range(1200)]  # more keys than one IN list holds
        found = read(
            store,
            lambda uow: uow.customers.numbers_by_external_id("erp", {"K-1", "K-2", "K-3", *many}),
        )
        assert dict(found) == {"K-1": one.number, "K-2": two.number}
        assert dict(read(store, lambda uow: uow.customers.numbers_by_external_id("erp", []))) == {}
        assert dict(
            read(store, lambda uow: uow.customers.numbers_by_external_id("shop", {"K-1"}))
        ) == {"K-1": other.number}
        unknown = store.scheme.format(store.allocator.allocate())
        asked = {one.number, plain.number, gone.number, unknown}
        assert read(store, lambda uow: uow.customers.existing(asked)) == {
            one.number,
            plain.number,
        }
        assert read(store, lambda uow: uow.customers.existing(set())) == set()
        assert dict(read(store, lambda uow: uow.customers.external_ids())) == {
            one.number: "K-1",
            two.number: "K-2",
            other.number: "K-1",
        }

    def test_bulk_lookups_compare_keys_exactly(self, store: Store) -> None:
        # Keys a set-wise look-up must carry unchanged (quotes, backslashes, JSON and SQL
        # syntax, accents, a character outside the BMP) and near misses it must not match
        # (case, a prefix, a stored key followed by more: the longest key is stored whole).
        longest = "L" * 200
        keys = ['K"1', "K\\2", "K'3", "Kä4", "K\U0001f600 5", "[6]", "%7", longest]
        stored = {key: register(store, source="erp", external_id=key).number for key in keys}
        near = ['k"1', "K", 'K"', longest + "X", longest[:-1], "Ka4", "", "\t"]
        asked = [*keys, *near, *keys]  # repeated keys are answered once
        found = read(store, lambda uow: uow.customers.numbers_by_external_id("erp", asked))
        assert dict(found) == stored
        texts = [n.value for n in stored.values()]
        wrong = [t.lower() for t in texts] + [t[:-1] for t in texts] + [t + "0" for t in texts]
        wanted = [*texts, *wrong, 'x"', "\\"]
        assert read(store, lambda uow: uow.customers.existing_texts(wanted)) == set(texts)
        # Asked alone, a key longer than any stored one must not find the stored key it
        # begins with (a database that cut keys to the column's width would).
        cut = register(store, source="cut", external_id="M" * 200)
        over = read(store, lambda uow: uow.customers.numbers_by_external_id("cut", ["M" * 201]))
        assert dict(over) == {}
        too_long = cut.number.value + "0" * 40
        assert read(store, lambda uow: uow.customers.existing_texts([too_long])) == set()
        again = make_customer(store, source="erp", external_id="Kä4")
        with pytest.raises(DuplicateError), store.unit_of_work() as uow:
            uow.customers.add_many([make_customer(store, source="erp", external_id="new"), again])

    def test_count_numbers_and_iter_all_exclude_erased_and_ascend(self, store: Store) -> None:
        sequences = list(store.allocator.allocate_many(7))
        customers = [make_customer(store, number=store.scheme.format(s)) for s in sequences]
        # Insert out of order: listings must still ascend by number.
        for customer in reversed(customers):
            with store.unit_of_work() as uow:
                uow.customers.add(customer)
                uow.commit()
        write(store, lambda uow: uow.customers.erase(customers[2].number))
        alive = sorted(c.number for c in customers if c is not customers[2])
        assert read(store, lambda uow: uow.customers.count()) == 6
        assert list(read(store, lambda uow: uow.customers.numbers())) == alive
        for batch_size in (1, 2, 4, 1000):
            with store.unit_of_work() as uow:
                listed = list(uow.customers.iter_all(batch_size))
            assert [c.number for c in listed] == alive
        by_number = {c.number: c for c in customers}
        listed = read(store, lambda uow: list(uow.customers.iter_all(3)))
        assert listed == [by_number[n] for n in alive]

    def test_customer_repositories_check_their_input(self, store: Store) -> None:
        customer = register(store)
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError) as info:
                uow.customers.get(customer.number.value)  # type: ignore[arg-type]
            assert info.value.field == "number"
            for bad in (0, -1, True, "10"):
                with pytest.raises(ValidationError) as info:
                    list(uow.customers.iter_all(bad))  # type: ignore[arg-type]
                assert info.value.field == "batch_size"
        # Cross-field rules are checked before storing (single fields on assignment).
        unsourced = make_customer(store)
        unsourced.external_id = "X-1"
        with pytest.raises(ValidationError) as info:
            write(store, lambda uow: uow.customers.add(unsourced))
        assert info.value.field == "source"
        with pytest.raises(ValidationError) as info:
            write(store, lambda uow: uow.customers.add_many([make_customer(store), unsourced]))
        assert info.value.field == "source"
        backdated = get_customer(store, customer.number)
        backdated.updated_at = T0 - ONE_DAY
        with pytest.raises(ValidationError) as info:
            write(store, lambda uow: uow.customers.update(backdated))
        assert info.value.field == "updated_at"
        assert read(store, lambda uow: uow.customers.count()) == 1
        assert get_customer(store, customer.number) == customer

    def test_an_empty_store_lists_nothing(self, store: Store) -> None:
        assert read(store, lambda uow: uow.customers.count()) == 0
        assert list(read(store, lambda uow: uow.customers.numbers())) == []
        assert read(store, lambda uow: list(uow.customers.iter_all())) == []
        assert list(read(store, lambda uow: uow.segments.list())) == []

    # -- erasure -----------------------------------------------------------------------------

    def test_erase_removes_personal_data_history_aggregates_and_memberships(
        self, store: Store
    ) -> None:
        gone = register(
            store,
            emails=(EmailAddress("gone@example.com"),),
            phones=(PhoneNumber("+12025550111"),),
            source="erp",
            external_id="GONE",
        )
        kept = register(store, emails=(EmailAddress("gone@example.com"),))
        ix = make_interaction(gone.number, source="helpdesk", external_ref="H1")
        tx = make_transaction(store, gone.number, source="erp", external_ref="R1")
        kept_tx = make_transaction(store, kept.number, source="erp", external_ref="R2")
        run = SegmentMembership("vip", T0, frozenset({gone.number, kept.number}))

        def setup(uow: UnitOfWork) -> None:
            uow.interactions.add(ix)
            uow.transactions.add(tx)
            uow.transactions.add(kept_tx)
            uow.segments.save(Segment("vip", "frequency >= 1"))
            uow.segments.save_membership(run)

        write(store, setup)
        write(store, lambda uow: uow.customers.erase(gone.number))

        def after(uow: UnitOfWork) -> None:
            c = uow.customers
            assert [x.number for x in c.find_by_email("gone@example.com")] == [kept.number]
            assert c.find_by_phone("+12025550111") == []
            assert c.find_by_external_id("erp", "GONE") is None
            assert list(c.numbers()) == [kept.number]
            assert list(uow.interactions.for_customer(gone.number)) == []
            assert list(uow.transactions.for_customer(gone.number)) == []
            assert uow.interactions.find_by_external_ref("helpdesk", "H1") is None
            assert uow.transactions.find_by_external_ref("erp", "R1") is None
            assert uow.transactions.find_by_external_ref("erp", "R2") == kept_tx
            with pytest.raises(NotFound):
                uow.interactions.get(ix.id)
            with pytest.raises(NotFound):
                uow.transactions.get(tx.id)
            with pytest.raises(NotFound):
                uow.aggregates.get(gone.number)
            latest = uow.segments.latest_membership("vip")
            assert latest is not None
            assert latest.members == frozenset({kept.number})
            assert uow.aggregates.get(kept.number).purchase_count == 1

        read(store, after)

    def test_erasing_twice_or_an_unknown_number_raises_not_found(self, store: Store) -> None:
        customer = register(store)
        write(store, lambda uow: uow.customers.erase(customer.number))
        with pytest.raises(ErasedError):
            write(store, lambda uow: uow.customers.erase(customer.number))
        ghost = store.scheme.format(store.allocator.allocate())
        with pytest.raises(NotFound):
            write(store, lambda uow: uow.customers.erase(ghost))
        with pytest.raises(NotFound):
            write(store, lambda uow: uow.customers.update(customer))
        with pytest.raises(NotFound):
            write(store, lambda uow: uow.interactions.add(make_interaction(customer.number)))
