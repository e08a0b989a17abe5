"""CSV import of customers, transactions and interactions: streamed, batched, idempotent.

A file is read row by row (strict CSV, UTF-8, the header checked against :data:`COLUMNS`) and
handed to the import use cases a batch at a time. Transactions and interactions go through
the columnar path (:meth:`crmcore.Crm.import_transactions`, ``import_interactions``): the
batch becomes text columns, validated column by column, and each rejected row comes back as
a :class:`RowError` (line, field, value, reason). Customers are built with
:meth:`crmcore.Crm.new_customer` and registered with ``register_many``; if a batch fails as a
whole (another writer registered the same keys meanwhile) its rows are retried one by one,
so one bad row never costs the good ones.

Re-running the same file adds nothing twice: customers are recognised by
``(source, external_id)``, transactions and interactions by ``(source, external_ref)``. Rows
without those keys cannot be recognised and are added again.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final, Protocol

import attrs

from crmcore.cli._common import EXIT_USAGE, CliError
from crmcore.domain import (
    Customer,
    LifecycleStage,
    PersonName,
)
from crmcore.errors import CrmError, DuplicateError, ValidationError
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


def _need(row: dict[str, str | None], name: str) -> str:
    value = _cell(row, name)
    if value is None:
        raise _Rejected(name, None, "is required")
    return value


def _instant(row: dict[str, str | None], name: str) -> dt.datetime:
    text = _need(row, name)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _Rejected(name, text, "is not an ISO 8601 date-time") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Rejected(name, text, "has no UTC offset (e.g. +00:00 or Z)")
    return value


def _field_of(domain_field: str, aliases: dict[str, str]) -> str:
    head = re.split(r"[.\[]", domain_field, maxsplit=1)[0]
    return aliases.get(head, head)


def _rejection(
    exc: ValidationError, row: dict[str, str | None], aliases: dict[str, str]
) -> _Rejected:
    field = _field_of(exc.field, aliases)
    raw = _cell(row, field)
    return _Rejected(field, raw if raw is not None else str(exc.value), exc.reason)


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


@attrs.define
class _Customers:
    crm: Crm
    source: str
    phone_region: str | None

    def prepare(self, row: dict[str, str | None]) -> Customer:
        given, family = _cell(row, "given_name"), _cell(row, "family_name")
        if given is None and family is None:
            raise _Rejected("given_name", None, "a customer needs a given_name or family_name")
        birth = _cell(row, "birth_date")
        birth_date = None
        if birth is not None:
            if not _DATE.fullmatch(birth):
                raise _Rejected("birth_date", birth, "must be a date as YYYY-MM-DD")
            try:
                birth_date = dt.date.fromisoformat(birth)
            except ValueError:
                raise _Rejected("birth_date", birth, "is not a valid date") from None
        phone = _cell(row, "phone")
        email = _cell(row, "email")
        tags = _cell(row, "tags")
        try:
            return self.crm.new_customer(
                PersonName(given=given, family=family),
                emails=(email,) if email else (),
                phones=(phone,) if phone else (),
                phone_region=self.phone_region,
                birth_date=birth_date,
                tags=frozenset(t for t in (tags or "").split(";") if t.strip()),
                stage=LifecycleStage.LEAD,
                source=_cell(row, "source") or self.source,
                external_id=_cell(row, "external_id"),
            )
        except ValidationError as exc:
            raise _rejection(exc, row, _CUSTOMER_ALIASES) from None

    def write(self, items: Sequence[tuple[int, Customer]], report: _Sink) -> tuple[int, int]:
        try:
            return self._write_batch([c for _, c in items])
        except DuplicateError:
            pass  # another writer registered some of them meanwhile: go row by row
        created = present = 0
        for line, customer in items:
            try:
                c, p = self._write_batch([customer])
            except CrmError as exc:
                report.append(RowError(line, _ROW, "", str(exc)))
                continue
            created, present = created + c, present + p
        return created, present

    def _write_batch(self, customers: Sequence[Customer]) -> tuple[int, int]:
        # A concurrent importer may add the same keys meanwhile: register_many then raises
        # DuplicateError and write() retries row by row.
        done = self.crm.register_many(customers)
        return done.created, done.already_registered


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
