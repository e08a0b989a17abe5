"""The interaction and transaction repositories' part of the contract."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore.domain import (
    Interaction,
    InteractionKind,
    Money,
    SalesChannel,
    Transaction,
    TransactionKind,
    TransactionLine,
)
from crmcore.errors import (
    DuplicateError,
    NotFound,
    ValidationError,
)
from crmcore.ports import Store
from crmcore.testing import strategies as cst
from crmcore.testing.contract._support import (
    ONE_DAY,
    PROPERTY_SETTINGS,
    T0,
    StoreFixture,
    get_customer,
    get_transaction,
    is_utc,
    make_interaction,
    make_transaction,
    read,
    record,
    register,
    with_reporting_total,
    write,
)


class HistoryContract(StoreFixture):
    """Interactions and transactions: round trips, idempotent recording, order, time and money."""

    # -- interactions and transactions -------------------------------------------------------

    @PROPERTY_SETTINGS
    @given(interaction=cst.interactions())
    def test_a_stored_interaction_reads_back_equal(
        self, store: Store, interaction: Interaction
    ) -> None:
        customer = register(store)
        stored = attrs.evolve(interaction, customer=customer.number, id=uuid.uuid4())
        if stored.external_ref is not None:
            stored = attrs.evolve(stored, external_ref=f"{stored.external_ref}-{stored.id}")
        assert write(store, lambda uow: uow.interactions.add(stored)) is True
        loaded = read(store, lambda uow: uow.interactions.get(stored.id))
        assert loaded == stored
        assert is_utc(loaded.occurred_at)
        assert loaded.follow_up_due is None or is_utc(loaded.follow_up_due)
        assert read(store, lambda uow: list(uow.interactions.for_customer(customer.number))) == [
            stored
        ]
        if stored.external_ref is not None:
            assert stored.source is not None
            found = read(
                store,
                lambda uow: uow.interactions.find_by_external_ref(
                    stored.source,  # type: ignore[arg-type]
                    stored.external_ref,  # type: ignore[arg-type]
                ),
            )
            assert found == stored

    @PROPERTY_SETTINGS
    @given(transaction=cst.transactions())
    def test_a_stored_transaction_reads_back_equal(
        self, store: Store, transaction: Transaction
    ) -> None:
        customer = register(store)
        stored = with_reporting_total(
            store, attrs.evolve(transaction, customer=customer.number, id=uuid.uuid4())
        )
        if stored.external_ref is not None:
            stored = attrs.evolve(stored, external_ref=f"{stored.external_ref}-{stored.id}")
        assert write(store, lambda uow: uow.transactions.add(stored)) is True
        loaded = read(store, lambda uow: uow.transactions.get(stored.id))
        assert loaded == stored
        assert loaded.total.minor_units == stored.total.minor_units
        assert loaded.total.currency == stored.total.currency
        assert is_utc(loaded.occurred_at)
        assert read(store, lambda uow: list(uow.transactions.for_customer(customer.number))) == [
            stored
        ]

    def test_history_of_an_unknown_customer_raises_not_found(self, store: Store) -> None:
        ghost = store.scheme.format(store.allocator.allocate())
        with pytest.raises(NotFound):
            write(store, lambda uow: uow.interactions.add(make_interaction(ghost)))
        with pytest.raises(NotFound):
            write(store, lambda uow: uow.transactions.add(make_transaction(store, ghost)))
        with pytest.raises(NotFound):
            read(store, lambda uow: uow.aggregates.get(ghost))

    def test_get_of_unknown_history_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            read(store, lambda uow: uow.interactions.get(uuid.uuid4()))
        with pytest.raises(NotFound):
            read(store, lambda uow: uow.transactions.get(uuid.uuid4()))
        assert read(store, lambda uow: uow.interactions.find_by_external_ref("a", "b")) is None
        assert read(store, lambda uow: uow.transactions.find_by_external_ref("a", "b")) is None

    def test_a_taken_history_id_raises_duplicate(self, store: Store) -> None:
        customer = register(store)
        interaction = make_interaction(customer.number)
        transaction = make_transaction(store, customer.number)
        write(store, lambda uow: uow.interactions.add(interaction))
        write(store, lambda uow: uow.transactions.add(transaction))
        with pytest.raises(DuplicateError):
            write(
                store,
                lambda uow: uow.interactions.add(
                    attrs.evolve(interaction, occurred_at=T0 + dt.timedelta(hours=1))
                ),
            )
        with pytest.raises(DuplicateError):
            write(
                store,
                lambda uow: uow.transactions.add(
                    attrs.evolve(transaction, occurred_at=T0 - ONE_DAY)
                ),
            )
        aggregate = read(store, lambda uow: uow.aggregates.get(customer.number))
        assert (aggregate.interaction_count, aggregate.purchase_count) == (1, 1)

    def test_recording_an_external_ref_twice_writes_nothing_the_second_time(
        self, store: Store
    ) -> None:
        customer = register(store)
        n = customer.number
        first_tx = make_transaction(store, n, source="erp", external_ref="INV-1")
        retry_tx = make_transaction(store, n, T0 + dt.timedelta(days=3), 999_999, source="erp")
        retry_tx = attrs.evolve(retry_tx, external_ref="INV-1")
        first_ix = make_interaction(n, source="helpdesk", external_ref="T-1")
        retry_ix = make_interaction(
            n, T0 + dt.timedelta(days=3), kind=InteractionKind.COMPLAINT, source="helpdesk"
        )
        retry_ix = attrs.evolve(retry_ix, external_ref="T-1")
        assert write(store, lambda uow: uow.transactions.add(first_tx)) is True
        assert write(store, lambda uow: uow.interactions.add(first_ix)) is True
        before = read(store, lambda uow: uow.aggregates.get(n))
        assert write(store, lambda uow: uow.transactions.add(retry_tx)) is False
        assert write(store, lambda uow: uow.interactions.add(retry_ix)) is False
        # Retrying the very same record (same id too) is also "already recorded".
        assert write(store, lambda uow: uow.transactions.add(first_tx)) is False
        assert write(store, lambda uow: uow.interactions.add(first_ix)) is False
        assert read(store, lambda uow: uow.aggregates.get(n)) == before
        assert read(store, lambda uow: list(uow.transactions.for_customer(n))) == [first_tx]
        assert read(store, lambda uow: list(uow.interactions.for_customer(n))) == [first_ix]
        with pytest.raises(NotFound):
            read(store, lambda uow: uow.transactions.get(retry_tx.id))
        found = read(store, lambda uow: uow.transactions.find_by_external_ref("erp", "INV-1"))
        assert found == first_tx
        # The same reference from another source is another record.
        other = make_transaction(store, n, source="webshop", external_ref="INV-1")
        assert write(store, lambda uow: uow.transactions.add(other)) is True

    def test_history_is_newest_first_with_ties_by_id_limit_and_before(self, store: Store) -> None:
        customer = register(store)
        other = register(store)
        n = customer.number
        times = [T0 + dt.timedelta(hours=h) for h in (5, 1, 3, 3, 3, 0)]
        ixs = [make_interaction(n, t) for t in times]
        txs = [make_transaction(store, n, t) for t in times]
        write(store, lambda uow: uow.interactions.add_many(ixs))
        write(store, lambda uow: uow.transactions.add_many(txs))
        write(store, lambda uow: uow.interactions.add(make_interaction(other.number)))
        write(store, lambda uow: uow.transactions.add(make_transaction(store, other.number)))
        cut = T0 + dt.timedelta(hours=3)
        # ``before`` in another offset is the same instant.
        shifted = cut.astimezone(dt.timezone(dt.timedelta(hours=-7)))
        items: list[Interaction] | list[Transaction]
        for items in (ixs, txs):
            expected: list[Any] = sorted(
                items, key=lambda i: (i.occurred_at, i.id.int), reverse=True
            )
            before = [i for i in expected if i.occurred_at < cut]
            with store.unit_of_work() as uow:
                repo: Any = uow.interactions if items is ixs else uow.transactions
                assert list(repo.for_customer(n)) == expected
                assert list(repo.for_customer(n, limit=2)) == expected[:2]
                assert list(repo.for_customer(n, limit=0)) == []
                assert list(repo.for_customer(n, before=cut)) == before
                assert list(repo.for_customer(n, before=shifted, limit=1)) == before[:1]

    def test_any_uuid_is_stored_as_is_and_ties_break_by_its_integer_value(
        self, store: Store
    ) -> None:
        # Ids of every shape: nil and all-ones, time-based (v1, whose groups some databases
        # reorder), version 0 and variant bits a database might reject, random ones.
        ids = [
            uuid.UUID(int=0),
            uuid.UUID(int=2**128 - 1),
            uuid.UUID("0123456789abcdef0123456789abcdef"),
            uuid.UUID("fedcba9876543210fedcba9876543210"),
            uuid.UUID("00000001-0002-1003-8004-000000000005"),
            uuid.UUID("ffffffff-0000-1000-8000-000000000000"),
            uuid.UUID("00000000-ffff-1000-8000-000000000000"),
            uuid.UUID("12345678-1234-7234-f234-123456789abc"),
            uuid.uuid4(),
        ]
        customer = register(store)
        n = customer.number
        ixs = [make_interaction(n, id=i) for i in ids]
        txs = [make_transaction(store, n, id=i) for i in ids]
        assert write(store, lambda uow: uow.interactions.add_many(ixs)) == len(ids)
        assert write(store, lambda uow: uow.transactions.add_many(txs)) == len(ids)
        items: list[Interaction] | list[Transaction]
        for items in (ixs, txs):
            expected: list[Any] = sorted(items, key=lambda i: i.id.int, reverse=True)
            with store.unit_of_work() as uow:
                repo: Any = uow.interactions if items is ixs else uow.transactions
                assert list(repo.for_customer(n)) == expected
                for k in (1, 3, 5):
                    assert list(repo.for_customer(n, limit=k)) == expected[:k]
                assert [repo.get(i).id for i in ids] == ids

    def test_the_longest_texts_and_documents_round_trip_exactly(self, store: Store) -> None:
        # Well past 64 KB each once encoded (a 4-byte character 20,000 times is 80 KB).
        customer = register(
            store,
            attributes={f"a{i}": "😀" * 2000 for i in range(12)},
            tags=frozenset({f"t{i}" for i in range(50)}),
        )
        n = customer.number
        notes = "😀" * 20_000
        ix = make_interaction(n, notes=notes)
        unit = Money.from_minor_units(199, store.reporting_currency)
        lines = tuple(
            TransactionLine(f"SKU-{i:04d}-{'x' * 90}", Decimal("1.5"), unit, "é😀" * 250)
            for i in range(150)
        )
        tx = make_transaction(store, n, lines=lines)
        assert record(store, ix) is True
        assert record(store, tx) is True
        assert get_customer(store, n) == customer
        stored_ix = read(store, lambda uow: uow.interactions.get(ix.id))
        assert stored_ix == ix and stored_ix.notes == notes
        stored_tx = get_transaction(store, tx.id)
        assert stored_tx == tx and stored_tx.lines == lines

    def test_add_many_counts_new_records_and_the_first_of_a_repeat_wins(self, store: Store) -> None:
        customer = register(store)
        n = customer.number
        write(
            store,
            lambda uow: uow.transactions.add(
                make_transaction(store, n, source="erp", external_ref="OLD")
            ),
        )
        first = make_transaction(store, n, T0, 100, source="erp", external_ref="NEW")
        repeat = make_transaction(store, n, T0, 700, source="erp", external_ref="NEW")
        plain = make_transaction(store, n, T0, 50)
        batch = [
            make_transaction(store, n, T0, 1, source="erp", external_ref="OLD"),
            first,
            repeat,
            plain,
        ]
        assert write(store, lambda uow: uow.transactions.add_many(batch)) == 2
        assert write(store, lambda uow: uow.transactions.add_many([])) == 0
        found = read(store, lambda uow: uow.transactions.find_by_external_ref("erp", "NEW"))
        assert found == first
        aggregate = read(store, lambda uow: uow.aggregates.get(n))
        assert aggregate.purchase_count == 3
        assert aggregate.purchase_minor == 1000 + 100 + 50

        ix_first = make_interaction(n, source="helpdesk", external_ref="A")
        ix_repeat = make_interaction(n, kind=InteractionKind.COMPLAINT, source="helpdesk")
        ix_repeat = attrs.evolve(ix_repeat, external_ref="A")
        ix_batch = [ix_first, ix_repeat, make_interaction(n), ix_first]
        assert write(store, lambda uow: uow.interactions.add_many(ix_batch)) == 2
        aggregate = read(store, lambda uow: uow.aggregates.get(n))
        assert (aggregate.interaction_count, aggregate.complaint_count) == (2, 0)

    def test_a_transaction_without_reporting_total_is_rejected(self, store: Store) -> None:
        customer = register(store)
        tx = attrs.evolve(make_transaction(store, customer.number), reporting_total=None)
        with pytest.raises(ValidationError):
            write(store, lambda uow: uow.transactions.add(tx))
        with pytest.raises(ValidationError):
            write(store, lambda uow: uow.transactions.add_many([tx]))
        assert read(store, lambda uow: uow.aggregates.get(customer.number)).purchase_count == 0

    # -- time and money ----------------------------------------------------------------------

    @PROPERTY_SETTINGS
    @given(at=cst.aware_datetimes(), micro=st.integers(0, 999_999))
    def test_timestamps_round_trip_to_the_microsecond_in_utc(
        self, store: Store, at: dt.datetime, micro: int
    ) -> None:
        instant = at.replace(microsecond=micro)
        customer = register(store, created_at=instant, updated_at=instant)
        ix = make_interaction(customer.number, instant, follow_up_due=instant)
        write(store, lambda uow: uow.interactions.add(ix))
        loaded = read(store, lambda uow: uow.customers.get(customer.number))
        loaded_ix = read(store, lambda uow: uow.interactions.get(ix.id))
        for value in (loaded.created_at, loaded_ix.occurred_at, loaded_ix.follow_up_due):
            assert value == instant
            assert value is not None and is_utc(value)
            assert value.microsecond == instant.astimezone(dt.UTC).microsecond
        aggregate = read(store, lambda uow: uow.aggregates.get(customer.number))
        assert aggregate.last_interaction_at == instant

    def test_extreme_offsets_and_microseconds_round_trip(self, store: Store) -> None:
        instants = [
            dt.datetime(
                2031, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.timezone(-dt.timedelta(hours=12))
            ),
            dt.datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))),
            dt.datetime(
                2024,
                2,
                29,
                5,
                45,
                0,
                123_456,
                tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45)),
            ),
        ]
        customer = register(store)
        txs = [make_transaction(store, customer.number, at) for at in instants]
        write(store, lambda uow: uow.transactions.add_many(txs))
        for tx in txs:
            loaded = get_transaction(store, tx.id)
            assert loaded.occurred_at == tx.occurred_at
            assert is_utc(loaded.occurred_at)
        aggregate = read(store, lambda uow: uow.aggregates.get(customer.number))
        assert aggregate.first_purchase_at == min(instants)
        assert aggregate.last_purchase_at == max(instants)

    def test_money_keeps_exact_minor_units_in_every_currency(self, store: Store) -> None:
        customer = register(store)
        amounts = [
            Money(Decimal("123456789"), "JPY"),
            Money(Decimal("1.001"), "KWD"),
            Money(Decimal("0.01"), "EUR"),
            Money(Decimal("99999999.99"), "EUR"),
            Money(Decimal("12.3456"), "CLF"),
            Money(Decimal("0.1"), "USD") + Money(Decimal("0.2"), "USD"),
        ]
        reporting = [Money.from_minor_units(m, store.reporting_currency) for m in (1, 3, 10**12)]
        txs = []
        for i, amount in enumerate(amounts):
            line = TransactionLine(sku="SKU-1", quantity=Decimal("1.5"), unit_price=amount)
            txs.append(
                Transaction(
                    customer=customer.number,
                    occurred_at=T0,
                    kind=TransactionKind.PURCHASE if i % 2 else TransactionKind.REFUND,
                    total=amount,
                    channel=SalesChannel.ONLINE,
                    lines=(line,),
                    reporting_total=reporting[i % len(reporting)],
                )
            )
        write(store, lambda uow: uow.transactions.add_many(txs))
        for tx in txs:
            loaded = get_transaction(store, tx.id)
            assert loaded == tx
            assert str(loaded.total) == str(tx.total)
            assert loaded.lines[0].unit_price.minor_units == tx.total.minor_units
            assert loaded.lines[0].quantity == Decimal("1.5")
        aggregate = read(store, lambda uow: uow.aggregates.get(customer.number))
        purchases = [t.signed_reporting_minor for t in txs if t.kind is TransactionKind.PURCHASE]
        refunds = [-t.signed_reporting_minor for t in txs if t.kind is TransactionKind.REFUND]
        assert aggregate.purchase_minor == sum(purchases)
        assert aggregate.refund_minor == sum(refunds)
