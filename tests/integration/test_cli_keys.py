"""``crmcore keys generate`` and ``crmcore keys rotate`` on SQLite files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.cli import cli
from crmcore.crypto import KeyRing
from crmcore.testing.synthetic import populate

Run = Callable[..., Result]


@pytest.fixture
def run() -> Run:
    runner = CliRunner()

    def invoke(*args: str, ring: KeyRing | None = None) -> Result:
        env = {"CRMCORE_KEYRING": ring.to_text() if ring is not None else ""}
        return runner.invoke(cli, list(args), catch_exceptions=False, env=env)

    return invoke


@pytest.fixture
def url(run: Run, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    assert run("db", "upgrade", "--db", url).exit_code == 0
    store = SqlStore.from_url(url)
    try:
        populate(store, 30, seed=3)
    finally:
        store.close()
    return url


def test_generate_prints_a_ring_from_text_reads(run: Run) -> None:
    result = run("keys", "generate", "--key-id", "k7", "--index-key-id", "x1")
    assert result.exit_code == 0, result.output
    ring = KeyRing.from_text(result.output.strip())
    assert (ring.active_key_id, ring.active_index_key_id) == ("k7", "x1")


def _plaintext_customers(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM crm_customers WHERE number NOT IN "
                        "(SELECT customer FROM crm_customer_sealed)"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_rotate_encrypts_a_plaintext_store_in_resumable_batches(run: Run, url: str) -> None:
    ring = KeyRing.generate()
    refused = run("keys", "rotate", "--db", url, ring=ring)
    assert refused.exit_code != 0 and "encrypt-existing" in refused.output.replace("_", "-")
    first = run(
        "keys",
        "rotate",
        "--db",
        url,
        "--encrypt-existing",
        "--batch-size",
        "10",
        "--max-batches",
        "1",
        ring=ring,
    )
    assert first.exit_code == 0, first.output
    assert "10 customers" in first.output and "run it again" in first.output
    assert _plaintext_customers(url) == 20
    # Without the ring the store no longer opens; with it every command works.
    shown = run("customer", "show", "C000000019", "--db", url)
    assert shown.exit_code != 0 and "encrypted" in shown.output
    rest = run("keys", "rotate", "--db", url, "--batch-size", "10", ring=ring)
    assert rest.exit_code == 0, rest.output
    assert "complete" in rest.output
    assert _plaintext_customers(url) == 0
    store = SqlStore.from_url(url, keyring=ring)
    try:
        with store.unit_of_work() as uow:
            numbers = list(uow.customers.numbers())
        assert len(numbers) == 30
        shown = run("customer", "show", numbers[0].value, "--db", url, ring=ring)
        assert shown.exit_code == 0, shown.output
    finally:
        store.close()


def test_rotate_without_a_ring_says_where_it_is_read(run: Run, url: str) -> None:
    result = run("keys", "rotate", "--db", url)
    assert result.exit_code != 0 and "CRMCORE_KEYRING" in result.output
