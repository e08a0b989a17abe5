"""What every command shares: the store it works on, error reporting, consoles, progress."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from crmcore.errors import (
    ConfigurationError,
    CrmError,
    NotFound,
    RuleSyntaxError,
    ValidationError,
)
from crmcore.ports import CurrencyConverter, Store

__all__ = [
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "CliConfig",
    "CliError",
    "db_option",
    "err_console",
    "open_store",
    "out_console",
    "parse_instant",
    "progress",
    "translate_errors",
]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILURE = 1
"""The command ran but did not fully succeed (rows rejected, database unreachable, not found)."""
EXIT_USAGE = 2
"""The command was asked something it cannot do (bad option, bad rule, malformed file)."""

DB_ENVVAR = "CRMCORE_DB"


class CliError(click.ClickException):
    """A user-facing error: printed as ``Error: message`` on stderr, never as a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click's class-level default


@attrs.frozen
class CliConfig:
    """What a host application hands to crmcore's commands through the click context.

    Put one in ``ctx.obj`` (or anywhere :meth:`click.Context.find_object` finds it) before
    the commands run.

    Attributes:
        open_store: returns the store for a ``--db`` value (``None`` when the option was not
            given). The default opens a SQL store from the URL.
        converter: currency converter used when importing transactions in a currency other
            than the store's reporting currency (without one such rows are rejected).
    """

    open_store: Callable[[str | None], Store] | None = None
    converter: CurrencyConverter | None = None


def _config() -> CliConfig:
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(CliConfig) if ctx is not None else None
    return found if found is not None else CliConfig()


def current_config() -> CliConfig:
    """The :class:`CliConfig` of the running command (a default one if the host gave none)."""
    return _config()


def db_option(func: F) -> F:
    """The ``--db URL`` option (also read from ``$CRMCORE_DB``)."""
    return click.option(
        "--db",
        "db",
        envvar=DB_ENVVAR,
        metavar="URL",
        help=(
            "Database URL (sqlite:///crm.sqlite, postgresql+psycopg://..., "
            "mysql+pymysql://...) or a path to a SQLite file. "
            f"Default: ${DB_ENVVAR}."
        ),
    )(func)


def sqlite_url(value: str) -> str:
    """A database URL for ``value``: URLs pass through, anything else is a SQLite file path."""
    if "://" in value:
        return value
    return f"sqlite:///{value}"


def safe_url(url: str) -> str:
    """The URL with any password masked, fit for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


def check_url(url: str) -> None:
    """Reject a malformed URL or an unknown database dialect as a usage error."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    try:
        make_url(url).get_dialect()
    except sa_exc.ArgumentError:
        raise CliError(f"--db: {safe_url(url)!r} is not a database URL", EXIT_USAGE) from None
    except ValueError:  # make_url's int() of the port
        raise CliError(f"--db: the port of {safe_url(url)!r} is not a number", EXIT_USAGE) from None
    except sa_exc.NoSuchModuleError:
        raise CliError(
            f"--db: unknown database kind in {safe_url(url)!r} "
            "(use sqlite:///FILE, postgresql+psycopg://..., mysql+pymysql://...)",
            EXIT_USAGE,
        ) from None
    except ImportError as exc:
        raise CliError(
            f"--db: the driver for {safe_url(url)!r} is not installed ({exc}); "
            "install crmcore[postgres] or crmcore[mysql]"
        ) from None


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    _, _, path = url.partition(":///")
    if not path or path.startswith((":memory:", "file:")):
        return None
    return Path(path.partition("?")[0])


def env_keyring() -> Any:
    """The key ring in ``$CRMCORE_KEYRING`` (an encrypted store's keys), or ``None``."""
    from crmcore.crypto import DEFAULT_ENV, KeyRing

    return KeyRing.from_env() if os.environ.get(DEFAULT_ENV) else None


def open_sql_store(
    url: str, *, must_exist: bool = True, keyring: Any = None, encrypt_existing: bool = False
) -> Store:
    """Open the SQL store at ``url`` and check that it is reachable and has crmcore's schema.

    An encrypted store's keys come from ``keyring`` or else ``$CRMCORE_KEYRING``.

    Raises:
        CliError: the extra is missing, a SQLite file does not exist (with ``must_exist``),
            the database is unreachable or has no crmcore schema.
    """
    try:
        from crmcore.adapters.sqlalchemy import SqlStore
    except ImportError as exc:
        raise CliError(
            f"the SQL store needs the [sqlalchemy] extra ({exc}); "
            "install it with: pip install 'crmcore[cli]'"
        ) from None
    check_url(url)
    file = sqlite_file(url)
    if must_exist and file is not None and not file.is_file():
        raise CliError(
            f"no database file {file}; create one with: crmcore db upgrade --db {file}",
            EXIT_FAILURE,
        )
    store = SqlStore.from_url(
        url,
        keyring=env_keyring() if keyring is None else keyring,
        encrypt_existing=encrypt_existing,
    )
    try:
        with store.unit_of_work() as uow:
            uow.customers.count()
    except ConfigurationError as exc:
        store.close()
        shown = safe_url(url)
        if "schema" in str(exc):
            raise CliError(
                f"the database {shown} has no crmcore schema, or an outdated one; "
                f"create or upgrade it with: crmcore db upgrade --db {shown}",
                EXIT_FAILURE,
            ) from None
        raise CliError(f"{exc} ({shown})", EXIT_FAILURE) from None
    except BaseException:
        store.close()
        raise
    return store


@contextlib.contextmanager
def open_store(db: str | None) -> Iterator[Store]:
    """The store a command works on: the host's (see :class:`CliConfig`) or ``--db``'s.

    A store this function opened is closed on the way out.
    """
    config = _config()
    if config.open_store is not None:
        yield config.open_store(db)
        return
    if not db:
        raise CliError(f"no database given: pass --db URL or set ${DB_ENVVAR}", EXIT_USAGE)
    url = sqlite_url(db)
    with translate_errors(url):
        store = open_sql_store(url)
    try:
        yield store
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _is_database_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in {"sqlalchemy", "alembic"}


@contextlib.contextmanager
def translate_errors(url: str | None = None) -> Iterator[None]:
    """Turn crmcore and database errors into :class:`CliError` with a clear message."""
    try:
        yield
    except click.ClickException:
        raise
    except RuleSyntaxError as exc:
        raise CliError(f"bad rule: {exc}", EXIT_USAGE) from None
    except NotFound as exc:
        raise CliError(str(exc), EXIT_FAILURE) from None
    except ValidationError as exc:
        raise CliError(f"invalid value: {exc}", EXIT_USAGE) from None
    except ConfigurationError as exc:
        where = f" ({safe_url(url)})" if url else ""
        raise CliError(f"{exc}{where}", EXIT_FAILURE) from None
    except CrmError as exc:
        raise CliError(str(exc), EXIT_FAILURE) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise CliError(f"{where}{exc.strerror or exc}", EXIT_FAILURE) from None
    except Exception as exc:
        if _is_database_error(exc):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = f" at {safe_url(url)}" if url else ""
            raise CliError(f"database error{where}: {first}", EXIT_FAILURE) from None
        raise


def parse_instant(value: str, option: str) -> dt.datetime:
    """Parse an ISO 8601 instant with an offset, or a date (midnight UTC)."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"{option}: {value!r} is not an ISO 8601 date or time "
            "(e.g. 2026-01-01 or 2026-01-01T12:00:00+00:00)",
            EXIT_USAGE,
        ) from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise CliError(
            f"{option}: {value!r} has no UTC offset; add one (e.g. +00:00 or Z)", EXIT_USAGE
        )
    try:
        return instant.astimezone(dt.UTC)
    except OverflowError:
        raise CliError(f"{option}: {value!r} is out of the supported range", EXIT_USAGE) from None


def out_console() -> Console:
    """The console for results (stdout)."""
    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    """The console for progress and summaries (stderr), so stdout stays machine-readable."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


class _RowRate(ProgressColumn):
    """Rows handled and rows per second (a task's ``rows`` field)."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.elapsed or 0.0
        rate = f"{rows / elapsed:,.0f} rows/s" if elapsed > 0 else "- rows/s"
        return Text(f"{rows:,} rows, {rate}")


def progress(console: Console, *, counts: bool = True, rows: bool = False) -> Progress:
    """A progress display on ``console``; silent when it is not a terminal.

    ``counts`` shows "done/total" beside the bar (off for byte-based progress); ``rows``
    shows a task's ``rows`` field with the rate, and the time remaining.
    """
    columns: list[ProgressColumn] = [
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
    ]
    if counts:
        columns.append(MofNCompleteColumn())
    if rows:
        columns += [_RowRate(), TimeRemainingColumn()]
    return Progress(
        *columns,
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal or bool(os.environ.get("CRMCORE_NO_PROGRESS")),
    )
