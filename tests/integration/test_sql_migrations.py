"""Bundled Alembic migrations: empty -> head == metadata, down and up, host coexistence."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from crmcore import DEFAULT_SCHEME, ConfigurationError, Crm
from crmcore._epoch import to_us
from crmcore.adapters.sqlalchemy import SqlStore, build_tables, upgrade
from crmcore.adapters.sqlalchemy._migrate import alembic_config


@pytest.fixture(params=["sqlite-file", "postgresql", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'crm.sqlite'}"
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("mariadb_url"))


@pytest.fixture
def prefix() -> str:
    return f"mg{uuid.uuid4().hex[:6]}_"


@pytest.fixture
def engine(url: str, prefix: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(url)
    try:
        yield eng
    finally:
        tables = build_tables(prefix=prefix)
        with eng.begin() as conn:
            tables.metadata.drop_all(conn)
            for name in (f"{prefix}version", "host_version"):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}host_orders"))
        eng.dispose()


def schema_diff(engine: sa.Engine, prefix: str) -> list[Any]:
    tables = build_tables(prefix=prefix)
    ours = {t.name for t in tables.all}

    def include(obj: Any, name: Any, type_: str, reflected: bool, other: Any) -> bool:
        if type_ == "table":
            return name in ours
        return getattr(getattr(obj, "table", None), "name", None) in ours or type_ != "index"

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": include, "compare_type": True}
        )
        return list(compare_metadata(context, tables.metadata))


def test_upgrade_from_empty_gives_exactly_the_metadata_schema(
    engine: sa.Engine, prefix: str
) -> None:
    upgrade(engine, currency="EUR", table_prefix=prefix, version_table=f"{prefix}version")
    assert schema_diff(engine, prefix) == []
    store = SqlStore(engine, table_prefix=prefix)
    assert store.reporting_currency == "EUR"
    ann = Crm(store).register("Ann")
    assert Crm(store).get(ann.number) == ann
    # Upgrading again is a no-op; a conflicting currency is refused.
    upgrade(engine, table_prefix=prefix, version_table=f"{prefix}version")
    with pytest.raises(ConfigurationError, match="conflicts"):
        upgrade(engine, currency="GBP", table_prefix=prefix, version_table=f"{prefix}version")


def test_downgrade_to_base_and_upgrade_again(engine: sa.Engine, prefix: str) -> None:
    version = f"{prefix}version"
    upgrade(engine, table_prefix=prefix, version_table=version)
    with engine.begin() as conn:
        config = alembic_config(conn, table_prefix=prefix, version_table=version)
        command.downgrade(config, "crmcore@base")  # type: ignore[arg-type]
    left = {n for n in sa.inspect(engine).get_table_names() if n.startswith(prefix)}
    assert left <= {version}
    upgrade(engine, table_prefix=prefix, version_table=version)
    assert schema_diff(engine, prefix) == []


HOST_ENV = """
from alembic import context
import sqlalchemy as sa

config = context.config
prefix = config.attributes["prefix"]
metadata = sa.MetaData()
sa.Table(f"{prefix}host_orders", metadata, sa.Column("id", sa.Integer, primary_key=True))


def include_object(obj, name, type_, reflected, compare_to):
    # The host leaves crmcore's tables (and anything else not its own) alone.
    if type_ == "table":
        return name in metadata.tables
    return True


context.configure(
    connection=config.attributes["connection"],
    target_metadata=metadata,
    version_table="host_version",
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
"""

HOST_REVISION = """
import sqlalchemy as sa
from alembic import context, op

revision = "host_0001"
down_revision = None
branch_labels = ("host",)
depends_on = None


def upgrade():
    prefix = context.config.attributes["prefix"]
    op.create_table(f"{prefix}host_orders", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table(context.config.attributes["prefix"] + "host_orders")
"""


def test_host_alembic_and_crmcore_migrations_leave_each_other_alone(
    engine: sa.Engine, prefix: str, tmp_path: Path
) -> None:
    env_dir = tmp_path / "host_migrations"
    (env_dir / "versions").mkdir(parents=True)
    (env_dir / "env.py").write_text(HOST_ENV)
    (env_dir / "versions" / "host_0001.py").write_text(HOST_REVISION)

    def host(action: str, target: str) -> list[Any]:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(env_dir))
            config.attributes.update(connection=conn, prefix=prefix)
            getattr(command, action)(config, target)
            # The host's autogenerate sees nothing to do, crmcore's tables included.
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "include_object": lambda o, n, t, r, c: (
                        t != "table" or (n.startswith(prefix) and n == f"{prefix}host_orders")
                    ),
                    "version_table": "host_version",
                },
            )
            meta = sa.MetaData()
            sa.Table(f"{prefix}host_orders", meta, sa.Column("id", sa.Integer, primary_key=True))
            return list(compare_metadata(ctx, meta)) if action == "upgrade" else []

    assert host("upgrade", "head") == []
    upgrade(engine, table_prefix=prefix, version_table=f"{prefix}version")
    names = set(sa.inspect(engine).get_table_names())
    assert {f"{prefix}host_orders", f"{prefix}customers", "host_version"} <= names
    assert host("upgrade", "head") == []  # crmcore's tables do not show up as "drop"
    assert schema_diff(engine, prefix) == []
    # The host rolls its own schema back; crmcore's tables are untouched.
    host("downgrade", "base")
    names = set(sa.inspect(engine).get_table_names())
    assert f"{prefix}host_orders" not in names
    assert f"{prefix}customers" in names
    with engine.connect() as conn:
        versions = conn.execute(sa.text(f"SELECT version_num FROM {prefix}version")).scalars()
        assert list(versions) == [_crmcore_head()]


def _crmcore_head() -> str:
    """The newest bundled revision (each branch of issue 13 adds one; merged they chain)."""
    from alembic.script import ScriptDirectory

    from crmcore.adapters.sqlalchemy._migrate import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def _legacy_customer(number: str, consents: str | None, *, erased: bool = False) -> dict[str, Any]:
    at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    live = {
        "display_name": "Ann",
        "stage": "lead",
        "addresses": "[]",
        "attributes": "{}",
        "stage_history": "[]",
        "created_at": at,
        "updated_at": at,
        "created_us": to_us(at),
    }
    return {
        "number": number,
        "erased": erased,
        "version": 0,
        "consents": consents,
        # An erased row keeps only its number (what erase() leaves).
        **(dict.fromkeys(live) if erased else live),
    }


def test_0006_moves_the_json_consents_into_the_ledger_and_back(
    engine: sa.Engine, prefix: str
) -> None:
    """The data migration, on a store written by crmcore_0001: every JSON decision becomes
    a ledger row in its order (ties keep it), the column goes; the downgrade folds back."""
    version = f"{prefix}version"
    with engine.begin() as conn:
        config = alembic_config(conn, table_prefix=prefix, version_table=version)
        command.upgrade(config, "crmcore_0001")  # type: ignore[arg-type]
    ann, bob, gone = (DEFAULT_SCHEME.format(i).value for i in (1, 2, 3))
    decisions = [
        ["marketing", None, True, "2025-02-01T00:00:00+00:00", "web-form"],
        ["marketing", "email", False, "2025-03-01T00:00:00+00:00", None],
        ["marketing", "email", True, "2025-03-01T00:00:00+00:00", "shop"],
        ["newsletter", "sms", True, "2025-01-15T12:30:00.000001+00:00", None],
    ]
    customers = sa.Table(f"{prefix}customers", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(customers),
            [
                _legacy_customer(ann, json.dumps(decisions)),
                _legacy_customer(bob, "[]"),
                _legacy_customer(gone, None, erased=True),
            ],
        )
    upgrade(engine, table_prefix=prefix, version_table=version)
    assert schema_diff(engine, prefix) == []
    store = SqlStore(engine, table_prefix=prefix)
    crm = Crm(store)
    history = crm.consent_history(ann)
    assert [
        (r.purpose, r.channel and r.channel.value, r.granted, r.at.isoformat(), r.source)
        for r in history
    ] == [
        tuple(decisions[3]),
        tuple(decisions[0]),
        tuple(decisions[1]),
        tuple(decisions[2]),
    ]
    assert {r.actor for r in history} == {"migration:crmcore_0006"}
    assert all(r.lawful_basis.value == "consent" for r in history)
    assert crm.consent_state(ann).granted("marketing", "email")  # the later of the tie
    assert crm.consent_history(bob) == []
    crm.grant_consent(bob, "loyalty.club", at=dt.datetime(2025, 5, 1, tzinfo=dt.UTC))
    with engine.begin() as conn:
        config = alembic_config(conn, table_prefix=prefix, version_table=version)
        command.downgrade(config, "crmcore_0001")  # type: ignore[arg-type]
    with engine.connect() as conn:
        customers = sa.Table(f"{prefix}customers", sa.MetaData(), autoload_with=conn)
        folded = dict(conn.execute(sa.select(customers.c.number, customers.c.consents)).all())
        assert f"{prefix}consents" not in sa.inspect(conn).get_table_names()
    assert json.loads(folded[ann]) == [decisions[3], decisions[0], decisions[1], decisions[2]]
    assert json.loads(folded[bob]) == [
        ["loyalty.club", None, True, "2025-05-01T00:00:00+00:00", None]
    ]
    assert folded[gone] is None
    upgrade(engine, table_prefix=prefix, version_table=version)
    assert len(Crm(SqlStore(engine, table_prefix=prefix)).consent_history(ann)) == 4


def test_migrations_ship_inside_the_package() -> None:
    from crmcore.adapters.sqlalchemy._migrate import MIGRATIONS_DIR

    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert list((MIGRATIONS_DIR / "versions").glob("crmcore_*.py"))
    assert MIGRATIONS_DIR.is_relative_to(Path(__import__("crmcore").__file__).parent)
