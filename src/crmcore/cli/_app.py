"""The ``crmcore`` click group and its commands."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
from pathlib import Path
from typing import Any, Final

import click

from crmcore._version import __version__
from crmcore.analytics import DEFAULT_SEGMENT_MAP, RfmPolicy
from crmcore.cli._analysis import report_data, write_rfm_csv
from crmcore.cli._backup import copy_command, dump_command, restore_command
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
    parse_instant,
    progress,
    safe_url,
    sqlite_url,
    translate_errors,
)
from crmcore.cli._importing import ErrorReport, import_csv
from crmcore.cli._keys import keys
from crmcore.cli._predict import lifecycle, predict_command
from crmcore.cli._privacy import export_command, retention
from crmcore.cli._report import render_html, render_text
from crmcore.clock import FixedClock
from crmcore.domain import Segment
from crmcore.errors import DuplicateError, ValidationError
from crmcore.ports import Clock, Store
from crmcore.services import Analytics, Crm
from crmcore.testing.synthetic import DEMO_END, populate

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
    type=click.IntRange(1, 1_000_000),
    default=50_000,
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
    if report_path.resolve() == file.resolve():
        raise CliError(
            f"--errors: {report_path} is the input file; choose another path", EXIT_USAGE
        )
    report = ErrorReport(report_path)
    console = err_console()
    with open_store(db) as store:
        crm = Crm(store, converter=current_config().converter)
        total = max(file.stat().st_size, 1)
        with progress(console, counts=False, rows=True) as bar:
            task = bar.add_task(f"importing {kind}", total=total, rows=0)
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
                    on_progress=lambda done, rows: bar.update(task, completed=done, rows=rows),
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


# -- analytics ----------------------------------------------------------------------------------

_BINS = click.option(
    "--bins",
    "bins",
    type=click.IntRange(2, 100),
    default=5,
    show_default=True,
    help="Score levels K (quantiles 1..K; K is best).",
)
_TIES = click.option(
    "--ties",
    type=click.Choice(["shared", "ordinal"]),
    default="shared",
    show_default=True,
    help="shared: equal values get equal scores; ordinal: equal-size groups, "
    "ties broken by CRM number.",
)


def _analytics(store: Store, clock: Clock | None = None) -> Analytics:
    return Analytics(Crm(store, clock=clock, converter=current_config().converter))


@cli.command("rfm")
@db_option
@click.option("--as-of", "as_of", required=True, metavar="TIME", help="ISO 8601 instant or date.")
@_BINS
@_TIES
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    default="-",
    help="CSV file to write (default: stdout).",
)
def rfm(db: str | None, as_of: str, bins: int, ties: str, out: Path) -> None:
    """RFM scores and named segment of every customer as of TIME, as CSV.

    Columns: crm_number, external_id, recency_days, frequency, monetary (decimal, reporting
    currency), r, f, m, segment. Customers without a purchase as of TIME have empty
    recency, scores and segment.
    """
    when = parse_instant(as_of, "--as-of")
    policy = RfmPolicy(k=bins, ties=ties, segment_map=DEFAULT_SEGMENT_MAP if bins == 5 else None)
    with open_store(db) as store:
        analytics = _analytics(store)
        result = analytics.rfm(when, policy)
        with click.open_file(str(out), "w", encoding="utf-8", lazy=False) as handle:
            rows = write_rfm_csv(result, analytics.crm, handle)
    err_console().print(f"{rows} customers, {result.n} scored, as of {when.isoformat()}")


@cli.command("segment")
@db_option
@click.option(
    "--rule", required=True, help='Segment rule, e.g. "recency_days <= 30 and frequency >= 3".'
)
@click.option("--as-of", "as_of", metavar="TIME", default=None, help="Default: now.")
@click.option(
    "--save",
    "name",
    metavar="NAME",
    default=None,
    help="Save the rule as segment NAME and record this run (reports who entered and left "
    "since the previous run).",
)
@click.option(
    "--requires-consent",
    "consent",
    metavar="PURPOSE[:CHANNEL]",
    default=None,
    help="Only customers whose consent for PURPOSE (on CHANNEL; without one: on every "
    "channel) is in force as of TIME; saved with the segment (an audience).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    default="-",
    help="CSV file of the members (crm_number, external_id; default: stdout).",
)
def segment(
    db: str | None,
    rule: str,
    as_of: str | None,
    name: str | None,
    consent: str | None,
    out: Path,
) -> None:
    """The customers matching a rule, as CSV (crm_number, external_id)."""
    from crmcore.analytics import parse_rule
    from crmcore.domain import Segment

    parse_rule(rule)  # a bad rule is reported before the database is touched
    required: tuple[str, str | None] | None = None
    if consent is not None:
        purpose, _, channel = consent.partition(":")
        required = (purpose, channel or None)
        try:
            # Validated (and the rule with it) before the database is touched.
            rule_in_force = Segment("cli", rule, requires_consent=required).effective_rule
        except ValidationError as exc:
            raise click.BadParameter(str(exc), param_hint="--requires-consent") from None
    else:
        rule_in_force = rule
    with open_store(db) as store:
        analytics = _analytics(store)
        when = parse_instant(as_of, "--as-of") if as_of else analytics.crm.clock.now()
        if name is None:
            members = analytics.evaluate(rule_in_force, when)
            run = None
        else:
            try:
                # Rule and run are saved together: a refused run leaves the old rule as it was.
                run = analytics.define_and_run_segment(name, rule, when, requires_consent=required)
            except DuplicateError:
                raise CliError(
                    f"segment {name!r} already has a run as of {when.isoformat()}"
                ) from None
            members = run.membership.members
        ids = analytics.crm.external_ids()
        with click.open_file(str(out), "w", encoding="utf-8", lazy=False) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("crm_number", "external_id"))
            for number in sorted(members):
                writer.writerow((number.value, ids.get(number, "")))
    console = err_console()
    console.print(f"{len(members)} customers match, as of {when.isoformat()}")
    if required is not None:
        on = f"on {required[1]}" if required[1] else "on every channel"
        console.print(f"requires consent to {required[0]} {on}: {rule_in_force}", markup=False)
    if run is not None:
        since = run.previous_as_of.isoformat() if run.previous_as_of else "(first run)"
        console.print(
            f"since the previous run {since}: {len(run.entered)} entered, {len(run.exited)} left"
        )


@cli.command("report")
@db_option
@click.option(
    "--html",
    "html_path",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="HTML file to write.",
)
@click.option("--as-of", "as_of", metavar="TIME", default=None, help="Default: now.")
@_BINS
@_TIES
def report(db: str | None, html_path: Path, as_of: str | None, bins: int, ties: str) -> None:
    """Write the segmentation report as one self-contained HTML page.

    Segment sizes and value, an RFM heat map, the lifecycle funnel and the latest runs of the
    saved segments. Counts and sums only: no personal data.
    """
    policy = RfmPolicy(k=bins, ties=ties, segment_map=DEFAULT_SEGMENT_MAP if bins == 5 else None)
    with open_store(db) as store:
        analytics = _analytics(store)
        when = parse_instant(as_of, "--as-of") if as_of else analytics.crm.clock.now()
        data = report_data(analytics, when, policy)
    try:
        html_path.write_text(render_html(data), encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {html_path}: {exc.strerror or exc}") from None
    err_console().print(f"report written to {html_path}")


# -- demo ---------------------------------------------------------------------------------------

DEMO_DB: Final = "crmcore-demo.sqlite"
_QUARTER: Final = dt.timedelta(days=91)
DEMO_SEGMENTS: Final = (
    Segment("vip-lapsed", '"vip" in tags and recency_days > 90', "VIPs who stopped buying"),
    Segment("big-spenders", "monetary >= 150000", "net value of 1,500.00 or more"),
    Segment(
        "unhappy-recent",
        "complaints >= 1 and recency_days <= 120",
        "complained and bought recently",
    ),
    Segment(
        "newsletter-regulars",
        '"newsletter" in tags and frequency >= 5 and recency_days <= 180',
        "newsletter readers who buy often",
    ),
)


def _demo_store(db: str | None) -> contextlib.AbstractContextManager[Store]:
    """The demo's store: the host's, a fresh default SQLite file, or an empty ``--db``."""
    if current_config().open_store is not None:
        return open_store(db)
    if db is None:
        path = Path(DEMO_DB)
        for stale in (path, Path(f"{DEMO_DB}-wal"), Path(f"{DEMO_DB}-shm")):
            stale.unlink(missing_ok=True)
        db = str(path)
    url = sqlite_url(db)
    check_url(url)
    from crmcore.adapters.sqlalchemy import upgrade

    with translate_errors(url):
        upgrade(url)
    return open_store(db)


@cli.command("demo")
@click.option(
    "--db",
    "db",
    metavar="URL",
    default=None,
    help=f"Database URL or SQLite file (default: ./{DEMO_DB}, recreated on every run); "
    "it must be empty.",
)
@click.option(
    "--customers",
    type=click.IntRange(1, 1_000_000),
    default=5000,
    show_default=True,
    help="How many synthetic customers to generate.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
def demo(db: str | None, customers: int, seed: int) -> None:
    """Generate a synthetic store, then score, segment and classify it, and print a report.

    The data is made up (names from a short list, e-mail addresses at example.com) and
    spans the three years before 2026-01-01, the demo's "now".
    """
    out = out_console()
    console = err_console()
    with _demo_store(db) as store:
        with store.unit_of_work() as uow:
            existing = uow.customers.count()
        if existing:
            raise CliError(
                f"the demo needs an empty database; this one has {existing} customers "
                "(omit --db to use a fresh ./crmcore-demo.sqlite)"
            )
        analytics = _analytics(store, FixedClock(DEMO_END))
        with progress(console) as bar:
            task = bar.add_task("generating customers", total=customers)
            counts = populate(
                store,
                customers,
                seed=seed,
                end=DEMO_END,
                # As if the store had been classified a quarter ago: today's run then
                # moves only the customers whose history changed since.
                stages_as_of=DEMO_END - _QUARTER,
                on_progress=lambda done: bar.update(task, completed=done),
            )
            steps = bar.add_task("scoring and segmenting", total=3)
            moves = analytics.reclassify(as_of=DEMO_END)
            bar.advance(steps)
            for definition in DEMO_SEGMENTS:
                analytics.define_segment(definition.name, definition.rule, definition.description)
            analytics.run_segments(as_of=DEMO_END - _QUARTER)
            bar.advance(steps)
            analytics.run_segments(as_of=DEMO_END)
            data = report_data(analytics, DEMO_END)
            bar.advance(steps)
        out.print(
            f"[bold]crmcore demo[/bold]: {counts.customers:,} customers, "
            f"{counts.transactions:,} transactions, {counts.interactions:,} interactions "
            f"generated; lifecycle stages reviewed: {len(moves):,} customers moved since the "
            "last quarter"
        )
        render_text(out, data)
    where = f"--db {db}" if db else f"--db {DEMO_DB}"
    out.print(
        "\nNext: [bold]crmcore report "
        f"{where} --html report.html --as-of 2026-01-01[/bold] for the HTML version, "
        f"[bold]crmcore rfm {where} --as-of 2026-01-01[/bold] for every customer's scores."
    )


# -- dump, restore, db copy (crmcore.backup) ----------------------------------------------------

customer.add_command(export_command)
cli.add_command(retention)
cli.add_command(dump_command)
cli.add_command(restore_command)
db.add_command(copy_command)
cli.add_command(keys)

# -- predict, lifecycle reclassify (the predictive models, the lifecycle policy) --------------

cli.add_command(predict_command)
cli.add_command(lifecycle)


def main(argv: list[str] | None = None) -> None:
    """Run the ``crmcore`` command line (the console script's entry point)."""
    cli.main(args=argv, prog_name="crmcore")
