"""CSV import of customers, transactions and interactions: streamed, batched, idempotent.

A file is read row by row (strict CSV, UTF-8, the header checked against :data:`COLUMNS`) and
handed to the import use cases a batch at a time. Transactions and interactions go through
the columnar path (:meth:`crmcore.Crm.import_transactions`, ``import_interactions``): the
batch becomes text columns, validated column by column, and each rejected row comes back as
a :class:`RowError` (line, field, value, reason). Customers go the same
way through :meth:`crmcore.Crm.import_customers` (the ``email`` and ``phone`` columns are its
``emails`` and ``phones``); if a batch fails as a whole because another writer registered
the same keys meanwhile, it is imported again, which recognises those keys.

Re-running the same file adds nothing twice: customers are recognised by
``(source, external_id)``, transactions and interactions by ``(source, external_ref)``. Rows
without those keys cannot be recognised and are added again.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final, Protocol

import attrs

from crmcore.cli._common import EXIT_USAGE, CliError
from crmcore.errors import DuplicateError
from crmcore.services import Crm

__all__ = [
    "COLUMNS",
    "REQUIRED",
    "ErrorReport",
    "ImportResult",
    "RowError",
    "import_csv",
]

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "customers": (
        "external_id",
        "source",
        "given_name",
        "family_name",
        "email",
        "phone",
        "birth_date",
        "tags",
    ),
    "transactions": (
        "customer_external_id",
        "crm_number",
        "occurred_at",
        "kind",
        "amount",
        "currency",
        "channel",
        "source",
        "external_ref",
    ),
    "interactions": (
        "customer_external_id",
        "crm_number",
        "occurred_at",
        "channel",
        "direction",
        "kind",
        "subject",
        "notes",
        "source",
        "external_ref",
    ),
}
"""The columns each kind of file may have (in any order)."""

REQUIRED: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "customers": (("given_name", "family_name"),),
    "transactions": (
        ("customer_external_id", "crm_number"),
        ("occurred_at",),
        ("kind",),
        ("amount",),
        ("currency",),
    ),
    "interactions": (
        ("customer_external_id", "crm_number"),
        ("occurred_at",),
        ("channel",),
        ("direction",),
        ("kind",),
    ),
}
"""Columns the header must have: at least one name of each group."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ROW: Final = "(row)"


@attrs.frozen
class RowError:
    """Why one row of a file was rejected."""

    line: int
    field: str
    value: str
    reason: str


@attrs.frozen
class ImportResult:
    """Counts of one import run."""

    created: int
    already_present: int
    rejected: int


class _Rejected(Exception):
    """A row cannot be imported; carries the row-level error."""

    def __init__(self, field: str, value: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.value = value or ""
        self.reason = reason


class _Sink(Protocol):
    """Where row errors go (a list or an :class:`ErrorReport`)."""

    def append(self, error: RowError) -> None: ...


class ErrorReport:
    """Collects row errors and writes them as CSV (``line,field,value,reason``) on demand.

    The file is created only when the first error arrives, so a clean run leaves no file.
    """

    HEADER: Final = ("line", "field", "value", "reason")

    def __init__(self, path: Path | None, *, keep: int = 10) -> None:
        self.path = path
        self.count = 0
        self.first: list[RowError] = []
        self._keep = keep
        self._file: IO[str] | None = None
        self._writer: Any = None

    def add(self, error: RowError) -> None:
        self.count += 1
        if len(self.first) < self._keep:
            self.first.append(error)
        if self.path is None:
            return
        if self._writer is None:
            self._file = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.HEADER)
        self._writer.writerow((error.line, error.field, error.value, error.reason))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _cell(row: dict[str, str | None], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _field_of(domain_field: str, aliases: dict[str, str]) -> str:
    head = re.split(r"[.\[]", domain_field, maxsplit=1)[0]
    return aliases.get(head, head)


# -- reading ----------------------------------------------------------------------------------


class _Counting:
    """Iterates the lines of a text file, counting the characters read (for progress)."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.read = 0
        self.line = 0

    def __iter__(self) -> Iterator[str]:
        for text in self.handle:
            self.read += len(text)
            self.line += 1
            yield text


def _rows(
    path: Path, kind: str, on_progress: Callable[[int, int], None]
) -> Iterator[tuple[int, dict[str, str | None]] | RowError]:
    """Yield ``(line, row)`` for each data row, or a :class:`RowError` for a malformed one."""
    allowed = COLUMNS[kind]
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    with handle:
        source = _Counting(handle)
        reader = csv.reader(source, strict=True)
        try:
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise CliError(f"{path}: empty file (expected a header row)", EXIT_USAGE)
            names = [cell.strip() for cell in header]
            unknown = [n for n in names if n not in allowed]
            if unknown:
                raise CliError(
                    f"{path}: unknown column(s) {', '.join(repr(u) for u in unknown)} in the "
                    f"header; {kind} files may have: {', '.join(allowed)}",
                    EXIT_USAGE,
                )
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise CliError(
                    f"{path}: column(s) {', '.join(repeated)} appear more than once", EXIT_USAGE
                )
            for group in REQUIRED[kind]:
                if not any(name in names for name in group):
                    raise CliError(
                        f"{path}: the header needs the column {' or '.join(group)}", EXIT_USAGE
                    )
            start = source.line + 1
            for cells in reader:
                line, start = start, source.line + 1
                on_progress(source.read, line - 1)
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if len(cells) != len(names):
                    yield RowError(
                        line,
                        _ROW,
                        "",
                        f"has {len(cells)} cells; the header has {len(names)}",
                    )
                    continue
                yield line, dict(zip(names, cells, strict=True))
        except csv.Error as exc:
            raise CliError(
                f"{path}: malformed CSV near line {source.line}: {exc}", EXIT_USAGE
            ) from None
        except UnicodeDecodeError:
            raise CliError(
                f"{path}: not UTF-8 text (near line {source.line + 1})", EXIT_USAGE
            ) from None


# -- the three kinds --------------------------------------------------------------------------


class _Importer(Protocol):
    def prepare(self, row: dict[str, str | None]) -> Any:
        """Validate a row into something :meth:`write` takes, or raise ``_Rejected``."""
        ...

    def write(self, items: Sequence[tuple[int, Any]], report: _Sink) -> tuple[int, int]:
        """Store a batch; return ``(created, already_present)``; report rows that fail."""
        ...


_CUSTOMER_ALIASES: Final = {
    "emails": "email",
    "address": "email",
    "phones": "phone",
    "e164": "phone",
    "name": "given_name",
    "given": "given_name",
    "family": "family_name",
}


# The import's columns under the CLI's names (one address and one number per cell).
_CUSTOMER_COLUMNS: Final = {"email": "emails", "phone": "phones"}


@attrs.define
class _Customers:
    """Customers: rows go to the columnar customer import a batch at a time (as text
    columns under the import's names), and its rejected rows come back as row errors named
    by the file's columns."""

    crm: Crm
    source: str
    phone_region: str | None

    def prepare(self, row: dict[str, str | None]) -> dict[str, str | None]:
        birth = _cell(row, "birth_date")
        if birth is not None and not _DATE.fullmatch(birth):
            # Python also reads compact ISO dates (19800203); the file format does not.
            raise _Rejected("birth_date", birth, "must be a date as YYYY-MM-DD")
        return row

    def write(
        self, items: Sequence[tuple[int, dict[str, str | None]]], report: _Sink
    ) -> tuple[int, int]:
        import pyarrow as pa

        names = [n for n in COLUMNS["customers"] if any(n in row for _, row in items)]
        columns = {
            _CUSTOMER_COLUMNS.get(name, name): pa.array(
                [_cell(row, name) for _, row in items], pa.string()
            )
            for name in names
        }
        if self.phone_region is not None:
            columns["phone_region"] = pa.array([self.phone_region] * len(items), pa.string())
        table = pa.table(columns)
        for attempt in range(2):
            try:
                result = self.crm.import_customers(
                    table, batch_size=max(len(items), 1), source=self.source
                )
                break
            except DuplicateError:
                # Another writer registered some of the keys meanwhile: the second run
                # recognises them as already present.
                if attempt:
                    raise
        for rejected in result.rejected:
            line, row = items[rejected.row]
            field = _field_of(rejected.field, _CUSTOMER_ALIASES)
            raw = _cell(row, field)
            shown = raw if raw is not None else (rejected.value or "")
            report.append(RowError(line, field, shown, rejected.reason))
        return result.created, result.duplicates


@attrs.define
class _History:
    """Transactions or interactions: rows go to the columnar import use case as text
    columns, a batch at a time, and its rejected rows come back as row errors."""

    crm: Crm
    kind: str
    source: str
    customer_source: str

    def prepare(self, row: dict[str, str | None]) -> dict[str, str | None]:
        return row

    def write(
        self, items: Sequence[tuple[int, dict[str, str | None]]], report: _Sink
    ) -> tuple[int, int]:
        import pyarrow as pa

        names = [n for n in COLUMNS[self.kind] if any(n in row for _, row in items)]
        table = pa.table(
            {
                name: pa.array([row.get(name) or None for _, row in items], pa.string())
                for name in names
            }
        )
        use_case = (
            self.crm.import_transactions
            if self.kind == "transactions"
            else self.crm.import_interactions
        )
        result = use_case(
            table,
            batch_size=max(len(items), 1),
            source=self.source,
            customer_source=self.customer_source,
        )
        for rejected in result.rejected:
            line = items[rejected.row][0]
            report.append(RowError(line, rejected.field, rejected.value or "", rejected.reason))
        return result.created, result.duplicates


def import_csv(
    crm: Crm,
    kind: str,
    path: Path,
    report: ErrorReport,
    *,
    source: str,
    customer_source: str,
    phone_region: str | None = None,
    batch_size: int = 1000,
    on_progress: Callable[[int, int], None] = lambda _bytes, _rows: None,
) -> ImportResult:
    """Import one CSV file of ``kind`` (customers, transactions, interactions) into ``crm``.

    Raises:
        CliError: the file cannot be read, its header is wrong, or it is not CSV/UTF-8.
    """
    importer: _Importer
    if kind == "customers":
        importer = _Customers(crm, source, phone_region)
    else:
        importer = _History(crm, kind, source, customer_source)
    created = present = 0
    batch: list[tuple[int, Any]] = []
    # Errors of the current batch, reported in line order when the batch is written.
    pending: list[RowError] = []

    def flush() -> None:
        nonlocal created, present
        if batch:
            c, p = importer.write(batch, pending)
            created, present = created + c, present + p
            batch.clear()
        for error in sorted(pending, key=lambda e: e.line):
            report.add(error)
        pending.clear()

    try:
        for item in _rows(path, kind, on_progress):
            if isinstance(item, RowError):
                pending.append(item)
                continue
            line, row = item
            try:
                batch.append((line, importer.prepare(row)))
            except _Rejected as exc:
                pending.append(RowError(line, exc.field, exc.value, exc.reason))
            if len(batch) >= batch_size:
                flush()
    except CliError as exc:
        # The file cannot be read past this point. Earlier batches are committed already, so
        # store the rows read before the bad spot too, report their errors, and say so: the
        # import is idempotent, a re-run after fixing the file completes it.
        flush()
        if created or present or report.count:
            raise CliError(
                f"{exc.message}; the import stopped there after {created} added, "
                f"{present} already present and {report.count} rejected rows (those are "
                "stored or reported; rows with an external id/ref are recognised if you "
                "re-run the fixed file, rows without one would be added again)",
                exc.exit_code,
            ) from None
        raise
    flush()
    return ImportResult(created=created, already_present=present, rejected=report.count)
