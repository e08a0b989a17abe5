"""Every stored table holding customer data is covered by the subject access export.

The test walks crmcore's SQL metadata: a table with a customer column (a column naming the
customer, or a foreign key to the customers table) must be listed in
``crmcore.services._subject.EXPORT_COVERAGE`` with a section the export really produces, so a
table added later without export support fails here.
"""

from __future__ import annotations

import sqlalchemy as sa
from tests.subject_data import NOW

from crmcore import InMemoryStore
from crmcore.adapters.sqlalchemy import build_tables
from crmcore.clock import FixedClock
from crmcore.services import Crm
from crmcore.services._subject import EXPORT_COVERAGE

PREFIX = "crm_"
CUSTOMER_COLUMNS = frozenset({"customer", "number", "crm_number", "customer_number"})
"""Column names that identify a customer (the registry's key is ``number``)."""


def _customer_tables(metadata: sa.MetaData, customers: sa.Table) -> set[str]:
    found = set()
    for table in metadata.tables.values():
        named = CUSTOMER_COLUMNS & {c.name for c in table.columns}
        linked = any(fk.column.table is customers for fk in table.foreign_keys)
        if named or linked:
            found.add(table.name.removeprefix(PREFIX))
    return found


def test_every_table_with_a_customer_column_is_covered_by_the_export() -> None:
    tables = build_tables(prefix=PREFIX)
    customer_tables = _customer_tables(tables.metadata, tables.customers)
    # The walk itself must see the tables we know hold customer data.
    assert {"customers", "customer_emails", "transactions", "segment_members"} <= customer_tables
    uncovered = sorted(customer_tables - set(EXPORT_COVERAGE))
    assert uncovered == [], (
        f"tables {uncovered} hold customer data but the subject access export does not cover "
        "them: export them in crmcore.services._subject and list them in EXPORT_COVERAGE"
    )
    # And no stale entry names a table that no longer exists.
    stale = sorted(set(EXPORT_COVERAGE) - {t.removeprefix(PREFIX) for t in tables.metadata.tables})
    assert stale == []


def test_every_covering_section_is_produced_by_the_export() -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"), clock=FixedClock(NOW))
    exported = crm.export_subject(crm.register("Ann").number)
    assert set(EXPORT_COVERAGE.values()) <= set(exported)


def test_a_new_table_with_a_customer_column_is_caught() -> None:
    tables = build_tables(prefix=PREFIX)
    sa.Table(
        f"{PREFIX}loyalty_cards",
        tables.metadata,
        sa.Column("customer", sa.String(32), sa.ForeignKey(tables.customers.c.number)),
    )
    sa.Table(f"{PREFIX}wishlists", tables.metadata, sa.Column("crm_number", sa.String(32)))
    found = _customer_tables(tables.metadata, tables.customers)
    assert {"loyalty_cards", "wishlists"} <= found - set(EXPORT_COVERAGE)
