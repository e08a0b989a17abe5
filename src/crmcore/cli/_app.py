"""The ``crmcore`` click group and its commands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from crmcore._version import __version__
from crmcore.cli._common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliConfig,
    CliError,
    check_url,
    current_config,
    db_option,
    err_console,
    open_store,
    out_console,
    progress,
    safe_url,
    sqlite_url,
    translate_errors,
)
from crmcore.cli._importing import ErrorReport, import_csv
from crmcore.services import Crm

__all__ = ["CliConfig", "cli", "main"]


class _Group(click.Group):
    """A group whose commands report crmcore and database errors as messages, not tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        with translate_errors():
            return super().invoke(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crmcore")
def cli() -> None:
    """crmcore: customer registry, history, scoring and segmentation from the command line.

    Every command takes --db URL (or $CRMCORE_DB): a SQLAlchemy URL or a SQLite file path.
    Exit codes: 0 success, 1 failure (rows rejected, database error, not found),
    2 bad usage (options, rules, malformed files).
    """


# -- db -----------------------------------------------------------------------------------------


@cli.group(cls=_Group)
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@db_option
@click.option(
    "--currency",
    metavar="CODE",
    default=None,
    help="Reporting currency of a new database (ISO 4217; default USD). "
    "An existing database keeps its own.",
)
def db_upgrade(db: str | None, currency: str | None) -> None:
    """Create or upgrade crmcore's tables (the packaged Alembic migrations)."""
    if not db:
        raise CliError("no database given: pass --db URL or set $CRMCORE_DB", EXIT_USAGE)
    url = sqlite_url(db)
    check_url(url)
    if currency is not None:
        from crmcore.domain import currency_exponent

        with translate_errors():
            currency_exponent(currency.strip().upper(), "--currency")
        currency = currency.strip().upper()
    try:
        from crmcore.adapters.sqlalchemy import upgrade
    except ImportError as exc:
        raise CliError(
            f"the SQL store needs the [sqlalchemy] extra ({exc}); "
            "install it with: pip install 'crmcore[cli]'"
        ) from None
    with translate_errors(url):
        upgrade(url, currency=currency)
    err_console().print(f"database {safe_url(url)} is up to date")


# -- import -------------------------------------------------------------------------------------


@cli.command("import")
@click.argument("kind", type=click.Choice(["customers", "transactions", "interactions"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the rejected rows (CSV: line,field,value,reason). "
    "Default: FILE's name with .errors.csv, beside it; written only if a row is rejected.",
)
@click.option(
    "--source",
    default="csv",
    show_default=True,
    help="Source system of the rows whose 'source' cell is empty.",
)
@click.option(
    "--customer-source",
    default="csv",
    show_default=True,
    help="Source that 'customer_external_id' refers to (transactions, interactions).",
)
@click.option(
    "--phone-region",
    metavar="REGION",
    default=None,
    help="ISO 3166 region for phone numbers without a leading + (e.g. GB, DE).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Rows written per unit of work.",
)
def import_(
    kind: str,
    file: Path,
    db: str | None,
    errors_path: Path | None,
    source: str,
    customer_source: str,
    phone_region: str | None,
    batch_size: int,
) -> None:
    """Import customers, transactions or interactions from a CSV FILE.

    The header names the columns (any order; unknown columns are an error; an empty cell is
    an absent value). Valid rows are stored in batches; invalid rows are written to the
    error report and the exit code is 1. Re-running a file adds nothing twice: customers are
    matched by (source, external_id), transactions and interactions by (source, external_ref).
    """
    if not file.is_file():
        raise CliError(f"{file}: no such file", EXIT_USAGE)
    report_path = errors_path or file.with_name(f"{file.stem}.errors.csv")
    report = ErrorReport(report_path)
    console = err_console()
    with open_store(db) as store:
        crm = Crm(store, converter=current_config().converter)
        total = max(file.stat().st_size, 1)
        with progress(console, counts=False) as bar:
            task = bar.add_task(f"importing {kind}", total=total)
            try:
                result = import_csv(
                    crm,
                    kind,
                    file,
                    report,
                    source=source,
                    customer_source=customer_source,
                    phone_region=phone_region,
                    batch_size=batch_size,
                    on_progress=lambda done: bar.update(task, completed=done),
                )
            finally:
                report.close()
    console.print(
        f"{kind}: {result.created} added, {result.already_present} already present, "
        f"{result.rejected} rejected"
    )
    if result.rejected:
        for error in report.first:
            console.print(f"  line {error.line}: {error.field}: {error.reason}")
        if result.rejected > len(report.first):
            console.print(f"  ... and {result.rejected - len(report.first)} more")
        console.print(f"rejected rows: {report_path}")
        raise SystemExit(EXIT_FAILURE)


# -- customer -----------------------------------------------------------------------------------


@cli.group(cls=_Group)
def customer() -> None:
    """Look up customers."""


@customer.command("show")
@click.argument("number")
@db_option
@click.option("--recent", type=click.IntRange(0, 1000), default=5, show_default=True)
def customer_show(number: str, db: str | None, recent: int) -> None:
    """Show one customer: profile, totals, recent history (contains personal data)."""
    from crmcore.cli._show import render_customer

    with open_store(db) as store:
        crm = Crm(store)
        view = crm.customer_360(number, recent=recent)
        render_customer(out_console(), view, store.reporting_currency)


def main(argv: list[str] | None = None) -> None:
    """Run the ``crmcore`` command line (the console script's entry point)."""
    cli.main(args=argv, prog_name="crmcore")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
