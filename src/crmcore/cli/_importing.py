"""CSV import of customers, transactions and interactions: streamed, batched, idempotent.

A file is read row by row; each row is validated into a domain object or rejected with a
:class:`RowError` (line, field, value, reason). Valid rows are written in batches through the
bulk repository methods, one unit of work per batch. If a batch fails as a whole (another
writer got there first, a customer vanished meanwhile) its rows are retried one by one, so one
bad row never costs the good ones.

Re-running the same file adds nothing twice: customers are recognised by
``(source, external_id)``, transactions and interactions by ``(source, external_ref)``. Rows
without those keys cannot be recognised and are added again.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Final, Protocol

import attrs

from crmcore.cli._common import EXIT_USAGE, CliError
from crmcore.domain import (
    CrmNumber,
    Customer,
    Interaction,
    LifecycleStage,
    Money,
    PersonName,
    SalesChannel,
    Transaction,
    TransactionKind,
)
from crmcore.domain._checks import member
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
    path: Path, kind: str, on_progress: Callable[[int], None]
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
                on_progress(source.read)
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


@attrs.define
class _Resolver:
    """Finds customers by CRM number or by ``(source, external_id)``, with a bounded cache."""

    crm: Crm
    customer_source: str
    cache: dict[tuple[str, str], CrmNumber | None] = attrs.Factory(dict)

    LIMIT: Final = 200_000

    def parse(self, row: dict[str, str | None]) -> tuple[str, str]:
        number = _cell(row, "crm_number")
        external = _cell(row, "customer_external_id")
        if number is not None and external is not None:
            raise _Rejected(
                "crm_number", number, "give crm_number or customer_external_id, not both"
            )
        if number is not None:
            try:
                return "number", self.crm.store.scheme.parse(number).value
            except ValidationError as exc:
                raise _Rejected("crm_number", number, exc.reason) from None
        if external is not None:
            return "external", external
        raise _Rejected(
            "customer_external_id", None, "crm_number or customer_external_id is required"
        )

    def resolve(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], CrmNumber | None]:
        missing = {k for k in keys if k not in self.cache}
        if missing:
            if len(self.cache) + len(missing) > self.LIMIT:
                self.cache.clear()
            numbers = {CrmNumber(text) for how, text in missing if how == "number"}
            external = {text for how, text in missing if how == "external"}
            found = self.crm.existing_numbers(numbers)
            ids = self.crm.numbers_by_external_id(self.customer_source, external)
            for how, text in missing:
                if how == "number":
                    number = CrmNumber(text)
                    self.cache[(how, text)] = number if number in found else None
                else:
                    self.cache[(how, text)] = ids.get(text)
        return self.cache


def _unknown_customer(key: tuple[str, str]) -> RowError:
    how, text = key
    field = "crm_number" if how == "number" else "customer_external_id"
    return RowError(0, field, text, "no such customer")


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


@attrs.frozen
class _Pending:
    """A history row waiting for its customer to be resolved (built, and validated, then)."""

    key: tuple[str, str]
    build: Callable[[CrmNumber], Any]
    row: dict[str, str | None]


def _rejection_error(
    line: int, exc: ValidationError, row: dict[str, str | None], aliases: dict[str, str]
) -> RowError:
    rejected = _rejection(exc, row, aliases)
    return RowError(line, rejected.field, rejected.value, rejected.reason)


def _history_write(
    resolver: _Resolver,
    items: Sequence[tuple[int, _Pending]],
    report: _Sink,
    convert: Callable[[Any], Any],
    bulk: Callable[[list[Any]], int],
    single: Callable[[Any], bool],
    aliases: dict[str, str],
) -> tuple[int, int]:
    known = resolver.resolve(p.key for _, p in items)
    ready: list[tuple[int, Any]] = []
    for line, pending in items:
        number = known.get(pending.key)
        if number is None:
            report.append(attrs.evolve(_unknown_customer(pending.key), line=line))
            continue
        try:
            ready.append((line, convert(pending.build(number))))
        except _Rejected as exc:
            report.append(RowError(line, exc.field, exc.value, exc.reason))
        except ValidationError as exc:
            report.append(_rejection_error(line, exc, pending.row, aliases))
    if not ready:
        return 0, 0
    try:
        created = bulk([r for _, r in ready])
        return created, len(ready) - created
    except CrmError:
        pass  # e.g. a customer erased meanwhile: retry row by row to keep the good ones
    created = present = 0
    for line, record in ready:
        try:
            if single(record):
                created += 1
            else:
                present += 1
        except CrmError as exc:
            report.append(RowError(line, _ROW, "", str(exc)))
    return created, present


_TX_ALIASES: Final = {"total": "amount", "reporting_total": "currency", "customer": "crm_number"}


@attrs.define
class _Transactions:
    crm: Crm
    resolver: _Resolver
    source: str

    def prepare(self, row: dict[str, str | None]) -> _Pending:
        key = self.resolver.parse(row)
        occurred = _instant(row, "occurred_at")
        kind_text = _need(row, "kind")
        amount_text = _need(row, "amount")
        try:
            amount = Decimal(amount_text)
        except InvalidOperation:
            raise _Rejected("amount", amount_text, "is not a decimal number") from None
        if not amount.is_finite() or amount <= 0:
            raise _Rejected("amount", amount_text, "must be a positive decimal number")
        currency = _need(row, "currency")
        channel_text = _cell(row, "channel") or "other"
        external_ref = _cell(row, "external_ref")
        source = _cell(row, "source") or self.source
        try:
            kind = member("kind", TransactionKind, kind_text)
            channel = member("channel", SalesChannel, channel_text)
            total = Money(amount, currency)
        except ValidationError as exc:
            raise _rejection(exc, row, _TX_ALIASES) from None
        # Same currency: the reporting total is the total, and recording need not convert.
        reporting = total if total.currency == self.crm.store.reporting_currency else None

        def build(number: CrmNumber) -> Transaction:
            return Transaction(
                number,
                occurred,
                kind,
                total,
                channel=channel,
                source=source,
                external_ref=external_ref,
                reporting_total=reporting,
            )

        return _Pending(key, build, row)

    def _convert(self, tx: Transaction) -> Transaction:
        try:
            return self.crm.with_reporting_total(tx)
        except ValidationError as exc:  # CurrencyConversionError is one
            raise _Rejected("currency", tx.total.currency, exc.reason) from None

    def write(self, items: Sequence[tuple[int, _Pending]], report: _Sink) -> tuple[int, int]:
        return _history_write(
            self.resolver,
            items,
            report,
            self._convert,
            lambda txs: self.crm.record_transactions(txs).created,
            lambda tx: self.crm.record_transaction(tx).created,
            _TX_ALIASES,
        )


@attrs.define
class _Interactions:
    crm: Crm
    resolver: _Resolver
    source: str

    def prepare(self, row: dict[str, str | None]) -> _Pending:
        key = self.resolver.parse(row)
        values: dict[str, Any] = {
            "occurred_at": _instant(row, "occurred_at"),
            "channel": _need(row, "channel"),
            "direction": _need(row, "direction"),
            "kind": _need(row, "kind"),
            "subject": _cell(row, "subject"),
            "notes": _cell(row, "notes"),
            "source": _cell(row, "source") or self.source,
            "external_ref": _cell(row, "external_ref"),
        }
        return _Pending(key, lambda number: Interaction(number, **values), row)

    def write(self, items: Sequence[tuple[int, _Pending]], report: _Sink) -> tuple[int, int]:
        return _history_write(
            self.resolver,
            items,
            report,
            lambda i: i,
            lambda ixs: self.crm.record_interactions(ixs).created,
            lambda i: self.crm.record_interaction(i).created,
            {"customer": "crm_number"},
        )


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
    on_progress: Callable[[int], None] = lambda _: None,
) -> ImportResult:
    """Import one CSV file of ``kind`` (customers, transactions, interactions) into ``crm``.

    Raises:
        CliError: the file cannot be read, its header is wrong, or it is not CSV/UTF-8.
    """
    importer: _Importer
    if kind == "customers":
        importer = _Customers(crm, source, phone_region)
    elif kind == "transactions":
        importer = _Transactions(crm, _Resolver(crm, customer_source), source)
    else:
        importer = _Interactions(crm, _Resolver(crm, customer_source), source)
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
