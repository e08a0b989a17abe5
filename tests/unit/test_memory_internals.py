"""White-box tests of the in-memory adapter's internal modules (state, guard, history)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from crmcore import Crm, FixedClock, InMemoryStore, Money, Transaction, TransactionKind
from crmcore.adapters.memory import _hashing as hashing
from crmcore.adapters.memory._columns import STORE_COLUMNS
from crmcore.adapters.memory._history import HistoryTable
from crmcore.adapters.memory._state import MemoryState, StateGuard
from crmcore.analytics.columns import AGGREGATE_COLUMNS, COLUMN_DEFAULTS
from crmcore.errors import ConfigurationError

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def test_every_internal_module_imports_first_in_a_fresh_interpreter() -> None:
    # No import circle: each module can be the first one imported.
    for module in (
        "_metrics",
        "_state",
        "_uow",
        "_records",
        "_customers",
        "_store",
        "_history",
        "_selection",
        "_hashing",
        "_text",
        "_listing",
        "_encoders",
    ):
        code = f"import crmcore.adapters.memory.{module}"
        subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - fixed arguments


def test_the_aggregate_table_is_the_shared_columns_plus_alive() -> None:
    state = MemoryState()
    assert (*AGGREGATE_COLUMNS, "alive") == STORE_COLUMNS
    assert state.aggregates.defaults == {**COLUMN_DEFAULTS, "alive": 0}


def test_the_guard_refuses_reentry_from_its_thread_and_is_released_after_it() -> None:
    guard = StateGuard(MemoryState())
    with guard as state:
        assert state is guard.state
        with pytest.raises(ConfigurationError, match="nesting"):
            guard.__enter__()
    with pytest.raises(RuntimeError), guard:
        raise RuntimeError("boom")
    with guard:  # not left held by the refusal or the error
        pass


def test_a_rolled_back_transaction_leaves_no_history_object_or_log_row() -> None:
    store = InMemoryStore(reporting_currency="USD")
    crm = Crm(store, clock=FixedClock(T0))
    number = crm.register("Ann").number
    tx = crm.with_reporting_total(
        Transaction(
            number,
            T0,
            TransactionKind.PURCHASE,
            Money("3.00", "USD"),
            source="erp",
            external_ref="1",
        )
    )
    with store.unit_of_work() as uow:
        assert uow.transactions.add(tx)
        assert uow.transactions.get(tx.id) == tx
    with store._read_state() as state:
        history = state.transactions
        assert (history.ids.live, history.refs.live, history.extras) == (0, 0, {})
        assert history.log.size == 0
        assert history.text.size == 0
        assert not history.text.data.any()
        assert uow_free_of(history, tx)
        assert state.aggregates.row(state.row_of[number])["purchase_count"] == 0


def uow_free_of(history: HistoryTable[Transaction], tx: Transaction) -> bool:
    """Neither key of ``tx`` is found any more."""
    return (
        history.ids.find_one(
            hashing.id_hash(tx.id.int >> 64, tx.id.int & hashing.MASK), lambda _row: True
        )
        < 0
    )


def test_the_metrics_source_repr_names_its_store() -> None:
    store = InMemoryStore(reporting_currency="USD")
    assert repr(store.metrics_source()) == f"MemoryMetrics({store!r})"
