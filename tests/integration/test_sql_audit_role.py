"""PostgreSQL: under the role that ``audit_append_only_grants`` sets up, every use case runs
and the audit log can be appended to and read, but never updated, deleted or truncated.

The statements executed here are the ones ``docs/privacy-audit.md`` prints, from the same
function, so the documentation and this test cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.helpers import unique_prefix

from crmcore import Crm
from crmcore.domain import AuditAction
from crmcore.errors import ConfigurationError
from crmcore.testing.contract._support import make_transaction

sqlalchemy = pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg")
from crmcore.adapters.sqlalchemy import SqlStore, audit_append_only_grants  # noqa: E402

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def setup(postgres_url: str) -> Iterator[tuple[SqlStore, str, Any]]:
    """The owner's store (tables created), a role with the grants, and an engine acting as
    that role."""
    prefix = unique_prefix("aud")
    owner = SqlStore.from_url(postgres_url, create_schema=True, table_prefix=prefix)
    role = f"crm_app_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} NOLOGIN")
        for statement in audit_append_only_grants(owner.tables, role):
            conn.exec_driver_sql(statement)
    app = sqlalchemy.create_engine(postgres_url)

    @sqlalchemy.event.listens_for(app, "connect")
    def _as_role(dbapi_connection: Any, record: Any) -> None:
        # Connected as the superuser; SET ROLE makes every check use the role's privileges.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {role}")
        dbapi_connection.commit()

    try:
        yield owner, role, app
    finally:
        app.dispose()
        try:
            owner.drop_schema()
        finally:
            owner.close()
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
                conn.exec_driver_sql(f"DROP ROLE {role}")
            admin.dispose()


def test_the_application_role_runs_every_use_case_but_cannot_rewrite_the_trail(
    setup: tuple[SqlStore, str, Any],
) -> None:
    owner, role, app = setup
    store = SqlStore(app, table_prefix=owner.tables.prefix)
    with app.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar() == role
    crm = Crm(store, actor="user:1")
    ann = crm.register("Ann Lee", emails=["ann@example.com"]).number
    bob = crm.register("Bob Roe").number
    customer = crm.get(ann)
    customer.title = "Dr"
    crm.update(customer)
    crm.record_transaction(make_transaction(store, ann, T0))
    crm.record_transactions([make_transaction(store, bob, T0)])
    crm.customer_360(ann)
    crm.merge(ann, bob)
    crm.erase(ann)
    actions = [e.action for e in crm.audit()]
    assert actions[0] is AuditAction.REGISTER and actions[-1] is AuditAction.ERASE
    log = owner.tables.audit_log
    forbidden = [
        sqlalchemy.update(log).values(actor="user:forged"),
        sqlalchemy.delete(log),
        sqlalchemy.text(f"TRUNCATE {log.name}"),
    ]
    for statement in forbidden:
        denied = pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied")
        with denied, app.begin() as conn:
            conn.execute(statement)
    assert [e.action for e in crm.audit()] == actions
    # The owner (migrations, the DBA) keeps every privilege: only the role is restricted.
    with owner.engine.begin() as conn:  # type: ignore[union-attr]
        conn.execute(sqlalchemy.update(log).values(actor="user:dba").where(log.c.seq < 0))


def test_the_grants_quote_the_schema_and_refuse_odd_role_names() -> None:
    from crmcore.adapters.sqlalchemy import build_tables

    tables = build_tables(prefix="crm_", schema="crm")
    statements = audit_append_only_grants(tables, "crm_app")
    assert statements[0] == "GRANT USAGE ON SCHEMA crm TO crm_app"
    assert (
        statements[-1] == "REVOKE UPDATE, DELETE, TRUNCATE ON TABLE crm.crm_audit_log FROM crm_app"
    )
    assert "GRANT USAGE ON SEQUENCE crm.crm_audit_log_seq_seq TO crm_app" in statements
    for bad in ("App", "crm app", "x; DROP TABLE crm_customers", ""):
        with pytest.raises(ConfigurationError):
            audit_append_only_grants(tables, bad)
