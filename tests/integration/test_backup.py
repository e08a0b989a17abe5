"""Dump and restore refuse what they must: tampered, truncated or inconsistent dumps (naming
the file), non-empty or incompatible targets; a failed restore leaves the target empty."""

from __future__ import annotations

import builtins
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmcore import InMemoryStore
from crmcore.domain import CrmNumberScheme
from crmcore.errors import BackupError, ConfigurationError
from crmcore.ports import Store
from crmcore.services import Crm
from crmcore.testing.synthetic import populate

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
sqlalchemy_adapter = pytest.importorskip("crmcore.adapters.sqlalchemy")

from crmcore.backup import FILES, FORMAT_VERSION, MANIFEST, Manifest, copy, dump, restore  # noqa: E402

TARGETS = ("memory", "sqlite")


def _source() -> InMemoryStore:
    store = InMemoryStore()
    populate(store, 40, seed=11)
    crm = Crm(store)
    numbers = crm.store.allocator  # keep the allocator busy: a gap above the last number
    numbers.allocate_many(3)
    with store.unit_of_work() as uow:
        first, second, third = list(uow.customers.numbers())[:3]
    crm.erase(first)
    crm.merge(second, third)
    return store


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dump") / "d"
    dump(_source(), directory)
    return directory


@pytest.fixture
def copy_of(dumped: Path, tmp_path: Path) -> Path:
    """A private copy of the dump a test may damage."""
    target = tmp_path / "copy"
    target.mkdir()
    for name in (*FILES, MANIFEST):
        (target / name).write_bytes((dumped / name).read_bytes())
    return target


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    store = sqlalchemy_adapter.SqlStore.from_url("sqlite://", create_schema=True)
    try:
        yield store
    finally:
        store.close()


def _is_empty(store: Store) -> bool:
    with store.unit_of_work() as uow:
        return bool(uow.transfer.is_empty())  # type: ignore[attr-defined]


def _rewrite_manifest(directory: Path, change: Any) -> None:
    path = directory / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _reseal(directory: Path, name: str) -> None:
    """Make the manifest's size and checksum match a rewritten file (a consistent forgery)."""
    import hashlib

    raw = (directory / name).read_bytes()

    def change(data: dict[str, Any]) -> None:
        data["files"][name]["bytes"] = len(raw)
        data["files"][name]["sha256"] = hashlib.sha256(raw).hexdigest()

    _rewrite_manifest(directory, change)


def test_a_restored_store_matches_the_manifest(dumped: Path, target: Store) -> None:
    manifest = restore(target, dumped)
    assert manifest.format_version == FORMAT_VERSION
    with target.unit_of_work() as uow:
        assert uow.customers.count() == manifest.rows("customers.parquet") == 38
        assert len(uow.transfer.tombstones()) == manifest.rows("tombstones.parquet") == 2  # type: ignore[attr-defined]
    assert target.allocator.allocate() > manifest.allocator_position >= 43


@pytest.mark.parametrize("name", FILES)
def test_a_changed_byte_is_refused_naming_the_file(copy_of: Path, target: Store, name: str) -> None:
    path = copy_of / name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(BackupError, match="checksum") as caught:
        restore(target, copy_of)
    assert caught.value.file == name
    assert _is_empty(target)


def test_a_truncated_file_is_refused_naming_the_file(copy_of: Path, target: Store) -> None:
    path = copy_of / "transactions.parquet"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BackupError, match="truncated") as caught:
        restore(target, copy_of)
    assert caught.value.file == "transactions.parquet"
    assert _is_empty(target)


def test_a_missing_file_is_refused(copy_of: Path, target: Store) -> None:
    (copy_of / "interactions.parquet").unlink()
    with pytest.raises(BackupError, match="missing") as caught:
        restore(target, copy_of)
    assert caught.value.file == "interactions.parquet"


def test_a_file_with_fewer_rows_than_the_manifest_says_is_refused(
    copy_of: Path, target: Store
) -> None:
    path = copy_of / "interactions.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 5), path)
    _reseal(copy_of, "interactions.parquet")
    with pytest.raises(BackupError, match="rows") as caught:
        restore(target, copy_of)
    assert caught.value.file == "interactions.parquet"
    assert _is_empty(target)


def test_a_consistent_forgery_of_aggregates_fails_late_and_leaves_the_target_empty(
    copy_of: Path, target: Store
) -> None:
    """Everything is loaded before the aggregates are compared: the rollback undoes it all."""
    path = copy_of / "aggregates.parquet"
    table = pq.read_table(path)
    counts = table.column("purchase_count").to_pylist()
    counts[0] += 1
    table = table.set_column(
        table.schema.get_field_index("purchase_count"), "purchase_count", pa.array(counts)
    )
    pq.write_table(table, path)
    _reseal(copy_of, "aggregates.parquet")
    with pytest.raises(BackupError, match="purchase_count") as caught:
        restore(target, copy_of)
    assert caught.value.file == "aggregates.parquet"
    assert _is_empty(target)


def test_a_duplicated_history_row_is_refused_and_rolled_back(copy_of: Path, target: Store) -> None:
    path = copy_of / "transactions.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)
    _reseal(copy_of, "transactions.parquet")
    _rewrite_manifest(
        copy_of,
        lambda d: d["files"]["transactions.parquet"].update(rows=table.num_rows + 1),
    )
    with pytest.raises(BackupError) as caught:
        restore(target, copy_of)
    assert caught.value.file == "transactions.parquet"
    assert _is_empty(target)


def test_another_format_version_is_refused(copy_of: Path, target: Store) -> None:
    _rewrite_manifest(copy_of, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(BackupError, match="format version") as caught:
        restore(target, copy_of)
    assert caught.value.file == MANIFEST


def test_the_audit_trail_round_trips_and_a_version_1_dump_restores_without_it(
    dumped: Path, copy_of: Path, target: Store
) -> None:
    with _source().unit_of_work() as uow:
        expected = [(e.actor, e.action, e.customer) for e in uow.audit.query()]
    assert expected  # the source's erase and merge were audited
    restore(target, dumped)
    with target.unit_of_work() as uow:
        assert [(e.actor, e.action, e.customer) for e in uow.audit.query()] == expected

    def version_1(data: dict[str, Any]) -> None:
        data.update(format_version=1)
        del data["files"]["audit_log.parquet"]

    (copy_of / "audit_log.parquet").unlink()
    _rewrite_manifest(copy_of, version_1)
    older = InMemoryStore()
    restore(older, copy_of)
    with older.unit_of_work() as uow:
        assert list(uow.audit.query()) == []
        assert uow.customers.count() == 38


def test_a_directory_without_a_dump_is_refused(tmp_path: Path, target: Store) -> None:
    with pytest.raises(BackupError, match="no dump") as caught:
        restore(target, tmp_path)
    assert caught.value.file == MANIFEST


def test_a_malformed_manifest_is_refused(copy_of: Path, target: Store) -> None:
    _rewrite_manifest(copy_of, lambda d: d.pop("allocator_position"))
    with pytest.raises(BackupError, match="malformed"):
        restore(target, copy_of)
    (copy_of / MANIFEST).write_text("{not json")
    with pytest.raises(BackupError, match="unreadable"):
        restore(target, copy_of)


def test_a_non_empty_target_is_refused_and_left_alone(dumped: Path, target: Store) -> None:
    Crm(target).register("Existing Person")
    with pytest.raises(BackupError, match="not empty"):
        restore(target, dumped)
    with pytest.raises(BackupError, match="not empty"):
        copy(InMemoryStore(), target)
    with target.unit_of_work() as uow:
        assert uow.customers.count() == 1


def test_a_target_with_another_scheme_or_currency_is_refused(dumped: Path) -> None:
    with pytest.raises(BackupError, match="CRM numbers"):
        restore(InMemoryStore(scheme=CrmNumberScheme(prefix="X", width=6)), dumped)
    with pytest.raises(BackupError, match="EUR"):
        restore(InMemoryStore(reporting_currency="EUR"), dumped)
    with pytest.raises(BackupError, match="EUR"):
        copy(InMemoryStore(), InMemoryStore(reporting_currency="EUR"))


def test_dump_refuses_a_directory_that_holds_a_dump(dumped: Path) -> None:
    with pytest.raises(BackupError, match="already holds a dump"):
        dump(InMemoryStore(), dumped)
    assert Manifest.read(dumped).rows("customers.parquet") == 38  # untouched


def test_copy_refuses_a_store_into_itself() -> None:
    store = InMemoryStore()
    with pytest.raises(ConfigurationError, match="source is target"):
        copy(store, store)


def test_a_store_without_the_transfer_port_is_refused(tmp_path: Path) -> None:
    class Bare:
        def __init__(self) -> None:
            self.inner = InMemoryStore()
            self.scheme = self.inner.scheme
            self.reporting_currency = "USD"

        def unit_of_work(self) -> Any:
            return object()

    with pytest.raises(ConfigurationError, match="transfer"):
        dump(Bare(), tmp_path / "d")  # type: ignore[arg-type]
    assert not (tmp_path / "d" / MANIFEST).exists()


def test_without_pyarrow_dump_and_restore_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyarrow" or name.startswith(("pyarrow.", "crmcore.backup._arrow")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m.startswith("crmcore.backup._arrow")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ConfigurationError, match=r"\[arrow\] extra"):
        dump(InMemoryStore(), tmp_path / "d")
    with pytest.raises(ConfigurationError, match=r"\[arrow\] extra"):
        restore(InMemoryStore(), tmp_path / "d")
    copy(InMemoryStore(), InMemoryStore())  # copy needs no pyarrow
