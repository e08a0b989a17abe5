"""Registers crmcore's strategies with hypothesis so ``st.from_type(Customer)`` works.

Loaded by hypothesis through the ``hypothesis`` entry point while hypothesis itself is being
imported, so the strategies module (which imports hypothesis) is only loaded lazily, the first
time ``from_type`` resolves one of these types.
"""

from __future__ import annotations

import importlib
from typing import Any


def _lazy(name: str) -> Any:
    def resolve(_: type) -> Any:
        return getattr(importlib.import_module("crmcore.testing.strategies"), name)()

    return resolve


def _register() -> None:
    from hypothesis import strategies as st

    from crmcore.domain import (
        ConsentRecord,
        CrmNumber,
        Customer,
        Interaction,
        Money,
        Transaction,
    )

    st.register_type_strategy(CrmNumber, _lazy("crm_numbers"))
    st.register_type_strategy(Money, _lazy("money"))
    st.register_type_strategy(Customer, _lazy("customers"))
    st.register_type_strategy(ConsentRecord, _lazy("consent_records"))
    st.register_type_strategy(Interaction, _lazy("interactions"))
    st.register_type_strategy(Transaction, _lazy("transactions"))
