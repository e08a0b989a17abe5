"""``dump``, ``restore`` and ``copy``: a store to Parquet files, back, and store to store."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from crmcore.backup._manifest import FILES, MANIFEST, FileEntry, Manifest, sha256_of
from crmcore.backup._move import (
    HISTORY_BATCH,
    Loader,
    check_compatible,
    check_target,
    read_store,
    transfer_unit,
)
from crmcore.domain import AuditEntry, CrmNumber, Customer, Segment, SegmentMembership
from crmcore.errors import BackupError, ConfigurationError, CrmError
from crmcore.ports import Store
from crmcore.ports.batches import InteractionBatch
from crmcore.ports.transfer import AggregateColumns, TransactionChunk

__all__ = ["copy", "dump", "restore"]

_PARTS = {
    "customers": "customers.parquet",
    "tombstones": "tombstones.parquet",
    "transactions": "transactions.parquet",
    "interactions": "interactions.parquet",
    "aggregates": "aggregates.parquet",
    "segments": "segments.parquet",
    "runs": "segment_runs.parquet",
    "audit": "audit_log.parquet",
}


def _arrow() -> tuple[ModuleType, ModuleType]:
    """``(crmcore.backup._arrow, pyarrow.parquet)``.

    Raises:
        ConfigurationError: pyarrow is not installed (the ``[arrow]`` extra).
    """
    try:
        import pyarrow.parquet as pq

        from crmcore.backup import _arrow
    except ImportError as exc:
        raise ConfigurationError(
            f"dump and restore write Parquet and need pyarrow ({exc}); install the [arrow] "
            "extra: pip install 'crmcore[arrow]'"
        ) from None
    return _arrow, pq


def _directory(value: str | os.PathLike[str]) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise ConfigurationError(f"directory must be a path, got {value!r}")
    return Path(value)


@attrs.define
class _ParquetSink:
    """A sink writing each part into its file of ``directory``."""

    directory: Path
    arrow: ModuleType
    pq: ModuleType
    writers: dict[str, Any] = attrs.Factory(dict)
    rows: dict[str, int] = attrs.Factory(dict)

    def _write(self, part: str, table: Any) -> None:
        file = _PARTS[part]
        writer = self.writers.get(file)
        if writer is None:
            writer = self.writers[file] = self.pq.ParquetWriter(
                self.directory / file, self.arrow.SCHEMAS[file], compression="zstd"
            )
        if table.num_rows:
            writer.write_table(table)
        self.rows[file] = self.rows.get(file, 0) + table.num_rows

    def customers(self, batch: Sequence[Customer]) -> None:
        self._write("customers", self.arrow.customers_table(batch))

    def tombstones(self, numbers: Sequence[CrmNumber]) -> None:
        self._write("tombstones", self.arrow.tombstones_table(numbers))

    def transactions(self, chunk: TransactionChunk) -> None:
        self._write("transactions", self.arrow.transactions_table(chunk))

    def interactions(self, batch: InteractionBatch) -> None:
        self._write("interactions", self.arrow.interactions_table(batch))

    def aggregates(self, columns: AggregateColumns) -> None:
        self._write("aggregates", self.arrow.aggregates_table(columns))

    def segments(self, segments: Sequence[Segment]) -> None:
        self._write("segments", self.arrow.segments_table(segments))

    def runs(self, runs: Sequence[SegmentMembership]) -> None:
        self._write("runs", self.arrow.runs_table(runs))

    def audit(self, entries: Sequence[AuditEntry]) -> None:
        self._write("audit", self.arrow.audit_table(entries))

    def close(self) -> dict[str, FileEntry]:
        """Close every file (an empty one for a part with no rows) and describe each."""
        entries = {}
        for file in FILES:
            writer = self.writers.pop(file, None)
            if writer is None:
                writer = self.pq.ParquetWriter(self.directory / file, self.arrow.SCHEMAS[file])
            writer.close()
            path = self.directory / file
            entries[file] = FileEntry(
                rows=self.rows.get(file, 0), bytes=path.stat().st_size, sha256=sha256_of(path)
            )
        return entries

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def dump(store: Store, directory: str | os.PathLike[str]) -> Manifest:
    """Write every part of ``store`` as Parquet files and a manifest into ``directory``.

    The dump is read in one unit of work (one consistent state of the store): live
    customers, tombstones of erased and merged-away numbers, transactions with their lines,
    interactions, every customer's aggregates, segment definitions and every saved run, and
    the number allocator's position. ``manifest.json`` is written last: a directory without
    one holds no complete dump.

    Args:
        store: any store whose units of work offer the transfer repository (the in-memory
            and SQL stores do).
        directory: created if missing; must not already hold a dump.

    Returns:
        The manifest written.

    Raises:
        ConfigurationError: pyarrow is missing (the ``[arrow]`` extra), or the store does
            not support transfers.
        BackupError: ``directory`` already holds dump files.
    """
    arrow, pq = _arrow()
    target = _directory(directory)
    target.mkdir(parents=True, exist_ok=True)
    taken = [name for name in (*FILES, MANIFEST) if (target / name).exists()]
    if taken:
        raise BackupError(f"{target} already holds a dump; choose an empty directory", taken[0])
    sink = _ParquetSink(target, arrow, pq)
    created = dt.datetime.now(dt.UTC)
    try:
        with transfer_unit(store) as uow:
            position = read_store(uow, sink)
        files = sink.close()
    except BaseException:
        sink.abort()
        for name in FILES:
            (target / name).unlink(missing_ok=True)
        raise
    manifest = Manifest(
        scheme=store.scheme,
        reporting_currency=store.reporting_currency,
        allocator_position=position,
        files=files,
        created_at=created,
    )
    partial = target / f".{MANIFEST}.partial"
    partial.write_text(manifest.to_json(), encoding="utf-8")
    partial.replace(target / MANIFEST)
    return manifest


def _tables(pq: ModuleType, path: Path, rows: int, file: str) -> Iterator[Any]:
    """The record batches of one dump file as tables, checking the row count."""
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise BackupError(f"not a readable Parquet file ({exc})", file) from None
    if parquet.metadata.num_rows != rows:
        raise BackupError(f"holds {parquet.metadata.num_rows} rows, the manifest says {rows}", file)
    import pyarrow as pa

    seen = 0
    for batch in parquet.iter_batches(batch_size=HISTORY_BATCH):
        seen += batch.num_rows
        yield pa.Table.from_batches([batch])
    if seen != rows:
        raise BackupError(f"{seen} rows read, the manifest says {rows}", file)


def _read(convert: Callable[[Any], Any], tables: Iterator[Any], file: str) -> Iterator[Any]:
    """``convert`` each table, naming ``file`` in any error."""
    for table in tables:
        try:
            yield convert(table)
        except (ValueError, TypeError, KeyError) as exc:
            raise BackupError(f"malformed rows ({exc})", file) from None
        except BackupError:
            raise
        except CrmError as exc:
            raise BackupError(f"invalid rows ({exc})", file) from None


def restore(store: Store, directory: str | os.PathLike[str]) -> Manifest:
    """Load the dump in ``directory`` into the empty ``store`` (of any backend).

    Every file is checked against the manifest (format version, size, SHA-256, row count)
    before anything is written; then everything is loaded in one unit of work, the
    aggregates recomputed from the loaded history are compared with the dumped ones, and the
    allocator is raised above the dumped position and every restored or retired number, so
    the store never issues a number again. Any failure rolls the whole restore back.

    Returns:
        The dump's manifest.

    Raises:
        ConfigurationError: pyarrow is missing (the ``[arrow]`` extra), or the store does not
            support transfers.
        BackupError: no dump, a tampered, truncated or malformed file (named), an
            unsupported format version, a non-empty target, or a target with another number
            scheme or reporting currency.
    """
    arrow, pq = _arrow()
    source = _directory(directory)
    manifest = Manifest.read(source)
    manifest.check_files(source)
    check_compatible(store, manifest.scheme, manifest.reporting_currency, MANIFEST)

    def tables(part: str) -> Iterator[Any]:
        file = _PARTS[part]
        return _tables(pq, source / file, manifest.rows(file), file)

    with transfer_unit(store) as uow:
        check_target(store, uow)
        loader = Loader(
            uow,
            store.scheme,
            store.reporting_currency,
            files=dict(_PARTS),
        )
        steps: list[tuple[str, Callable[[Any], Any], Callable[[Any], None]]] = [
            ("customers", arrow.customers_from, loader.customers),
            ("tombstones", arrow.tombstones_from, loader.tombstones),
            ("transactions", arrow.transactions_from, loader.transactions),
            ("interactions", arrow.interactions_from, loader.interactions),
        ]
        for part, convert, load in steps:
            for item in _read(convert, tables(part), _PARTS[part]):
                _load(load, item, _PARTS[part])
        aggregates = next(
            _read(arrow.aggregates_from, iter([tables("aggregates")]), _PARTS["aggregates"])
        )
        loader.aggregates(aggregates)
        parts: list[tuple[str, Callable[[Any], Any], Callable[[Any], None]]] = [
            ("segments", arrow.segments_from, loader.segments),
            ("runs", arrow.runs_from, loader.runs),
        ]
        if _PARTS["audit"] in manifest.files:  # format version 2 on
            parts.append(("audit", arrow.audit_from, loader.audit))
        for part, convert, load in parts:
            for item in _read(convert, tables(part), _PARTS[part]):
                _load(load, item, _PARTS[part])
        loader.finish(manifest.allocator_position)
    return manifest


def _load(load: Callable[[Any], None], item: Any, file: str) -> None:
    try:
        load(item)
    except BackupError:
        raise
    except CrmError as exc:
        raise BackupError(f"cannot be loaded ({type(exc).__name__}: {exc})", file) from exc


def copy(source: Store, target: Store) -> int:
    """Copy every part of ``source`` into the empty ``target`` (of any backend), no files.

    The same parts, checks and guarantees as :func:`dump` then :func:`restore`: one unit of
    work on each side, aggregates recomputed and compared, the target's allocator raised
    above the source's, all or nothing on the target. Copying a SQL store into a new
    :class:`~crmcore.adapters.memory.InMemoryStore` is the warm start: history moves
    column-wise, without a domain object per record.

    Returns:
        The source's allocator position (what the target's allocator now starts above).

    Raises:
        ConfigurationError: a store does not support transfers, or ``source`` is ``target``.
        BackupError: the target is not empty, or has another number scheme or reporting
            currency.
    """
    if source is target:
        raise ConfigurationError("copy needs two different stores (source is target)")
    check_compatible(target, source.scheme, source.reporting_currency, None)
    with transfer_unit(target) as out:
        check_target(target, out)
        loader = Loader(out, target.scheme, target.reporting_currency)
        with transfer_unit(source) as into:
            position = read_store(into, loader)
        loader.finish(position)
    return position
