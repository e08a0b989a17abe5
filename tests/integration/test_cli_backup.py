"""``crmcore dump``, ``crmcore restore`` and ``crmcore db copy`` on SQLite files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crmcore.adapters.sqlalchemy import SqlStore
from crmcore.cli import cli
from crmcore.testing.synthetic import populate

pytest.importorskip("pyarrow")

Run = Callable[..., Result]


@pytest.fixture
def run() -> Run:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def _database(run: Run, path: Path, currency: str = "USD") -> str:
    url = f"sqlite:///{path}"
    result = run("db", "upgrade", "--db", url, "--currency", currency)
    assert result.exit_code == 0, result.output
    return url


def _counts(url: str) -> tuple[int, int]:
    store = SqlStore.from_url(url)
    try:
        with store.unit_of_work() as uow:
            numbers = list(uow.customers.numbers())
            history = sum(len(uow.transactions.for_customer(n)) for n in numbers)
            return len(numbers), history
    finally:
        store.close()


@pytest.fixture
def source(run: Run, tmp_path: Path) -> str:
    url = _database(run, tmp_path / "source.sqlite")
    store = SqlStore.from_url(url)
    try:
        populate(store, 25, seed=5)
    finally:
        store.close()
    return url


def test_dump_then_restore_round_trips(run: Run, source: str, tmp_path: Path) -> None:
    result = run("dump", "--db", source, "--to", str(tmp_path / "dump"))
    assert result.exit_code == 0, result.output
    assert "dumped 25 customers" in result.output
    assert (tmp_path / "dump" / "manifest.json").is_file()
    target = _database(run, tmp_path / "target.sqlite")
    result = run("restore", "--db", target, "--from", str(tmp_path / "dump"))
    assert result.exit_code == 0, result.output
    assert "restored 25 customers" in result.output
    assert _counts(target) == _counts(source)


def test_restore_into_a_non_empty_database_fails_with_a_message(
    run: Run, source: str, tmp_path: Path
) -> None:
    assert run("dump", "--db", source, "--to", str(tmp_path / "dump")).exit_code == 0
    result = run("restore", "--db", source, "--from", str(tmp_path / "dump"))
    assert result.exit_code == 1
    assert "not empty" in result.output


def test_restore_of_a_tampered_dump_names_the_file(run: Run, source: str, tmp_path: Path) -> None:
    assert run("dump", "--db", source, "--to", str(tmp_path / "dump")).exit_code == 0
    victim = tmp_path / "dump" / "customers.parquet"
    victim.write_bytes(victim.read_bytes()[:-10])
    target = _database(run, tmp_path / "target.sqlite")
    result = run("restore", "--db", target, "--from", str(tmp_path / "dump"))
    assert result.exit_code == 1
    assert "customers.parquet" in result.output
    assert _counts(target) == (0, 0)


def test_restore_into_another_currency_is_refused(run: Run, source: str, tmp_path: Path) -> None:
    assert run("dump", "--db", source, "--to", str(tmp_path / "dump")).exit_code == 0
    target = _database(run, tmp_path / "target.sqlite", currency="EUR")
    result = run("restore", "--db", target, "--from", str(tmp_path / "dump"))
    assert result.exit_code == 1
    assert "reports in USD" in result.output


def test_db_copy_copies_into_an_empty_database(run: Run, source: str, tmp_path: Path) -> None:
    target = _database(run, tmp_path / "target.sqlite")
    result = run("db", "copy", "--from", source, "--to", target)
    assert result.exit_code == 0, result.output
    assert _counts(target) == _counts(source)
    again = run("db", "copy", "--from", source, "--to", target)
    assert again.exit_code == 1
    assert "not empty" in again.output
    same = run("db", "copy", "--from", source, "--to", source)
    assert same.exit_code == 2
