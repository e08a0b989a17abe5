"""Opening import data as a stream of Arrow record batches of bounded size."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from crmcore.errors import ValidationError

__all__ = ["record_batches"]

_ACCEPTED = (
    "an Arrow Table, RecordBatch or RecordBatchReader, an object with __arrow_c_stream__ "
    "(a polars or pandas DataFrame, a DuckDB result), or the path of a .parquet or .csv file"
)


def record_batches(
    data: Any, batch_size: int, text_columns: frozenset[str] = frozenset()
) -> Iterator[pa.RecordBatch]:
    """Iterate ``data`` as record batches of at most ``batch_size`` rows.

    Files are streamed (a Parquet file by row groups, a CSV file by blocks), so a file
    larger than memory is read with bounded memory. CSV cells are read as text, so money is
    never parsed through a float and every value meets the same checks as text input.

    Args:
        data: see :data:`_ACCEPTED`.
        batch_size: the largest batch handed out.
        text_columns: columns a CSV reader must keep as text (every known column).

    Raises:
        ValidationError: ``data`` is none of the accepted kinds, or a file cannot be read.
    """
    for batch in _batches(data, batch_size, text_columns):
        yield _without_views(batch)


def _without_views(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with its view columns (``string_view``, ``binary_view``: what recent polars
    exports through ``__arrow_c_stream__``) cast to the large offset types, which every
    Arrow compute kernel the checks use accepts (``take`` has no view kernel)."""
    views = {"string_view": pa.large_string(), "binary_view": pa.large_binary()}
    if not any(str(field.type) in views for field in batch.schema):
        return batch
    columns = [
        column.cast(views[str(column.type)]) if str(column.type) in views else column
        for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _batches(data: Any, batch_size: int, text_columns: frozenset[str]) -> Iterator[pa.RecordBatch]:
    if isinstance(data, str | os.PathLike):
        yield from _rechunk(_file_batches(Path(data), batch_size, text_columns), batch_size)
        return
    if isinstance(data, pa.Table):
        yield from data.to_batches(max_chunksize=batch_size)
        return
    if isinstance(data, pa.RecordBatch):
        yield from _rechunk(iter([data]), batch_size)
        return
    if isinstance(data, pa.RecordBatchReader):
        yield from _rechunk(iter(data), batch_size)
        return
    if hasattr(data, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(data)
        yield from _rechunk(iter(reader), batch_size)
        return
    raise ValidationError("data", type(data).__name__, f"must be {_ACCEPTED}")


def _rechunk(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)


def _file_batches(path: Path, batch_size: int, text: frozenset[str]) -> Iterator[pa.RecordBatch]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise ValidationError("data", str(path), f"cannot be read as Parquet: {exc}") from None
        yield from parquet.iter_batches(batch_size=batch_size)
        return
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        try:
            header = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 16))
            names = header.schema.names
        except (OSError, pa.ArrowException) as exc:
            raise ValidationError("data", str(path), f"cannot be read as CSV: {exc}") from None
        types = {name: pa.string() for name in names if name in text}
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=1 << 24),
            convert_options=pcsv.ConvertOptions(
                column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
        try:
            yield from reader
        except pa.ArrowException as exc:
            raise ValidationError("data", str(path), f"cannot be read as CSV: {exc}") from None
        return
    raise ValidationError("data", str(path), f"must be {_ACCEPTED}")
