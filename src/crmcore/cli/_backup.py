"""``crmcore dump``, ``crmcore restore`` and ``crmcore db copy``: whole stores to Parquet files,
back, and database to database (see :mod:`crmcore.backup`)."""

from __future__ import annotations

from pathlib import Path

import click

from crmcore.backup import copy, dump, restore
from crmcore.cli._common import (
    EXIT_USAGE,
    CliError,
    db_option,
    err_console,
    open_store,
    translate_errors,
)

__all__ = ["copy_command", "dump_command", "restore_command"]


@click.command("dump")
@db_option
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Directory to write the dump into (created if missing; must hold no dump).",
)
def dump_command(db: str | None, to: Path) -> None:
    """Write every crmcore table as Parquet plus manifest.json (counts, checksums)."""
    with open_store(db) as store, translate_errors():
        manifest = dump(store, to)
    customers = manifest.rows("customers.parquet")
    history = manifest.rows("transactions.parquet") + manifest.rows("interactions.parquet")
    err_console().print(
        f"dumped {customers:,} customers, {manifest.rows('tombstones.parquet'):,} retired "
        f"numbers and {history:,} history records to {to}"
    )


@click.command("restore")
@db_option
@click.option(
    "--from",
    "from_",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Directory of a dump written by 'crmcore dump'.",
)
def restore_command(db: str | None, from_: Path) -> None:
    """Load a dump into an EMPTY database (all or nothing; the files are checked first).

    Create the database's tables first with 'crmcore db upgrade' (with the dump's --currency).
    """
    with open_store(db) as store, translate_errors():
        manifest = restore(store, from_)
    err_console().print(
        f"restored {manifest.rows('customers.parquet'):,} customers from {from_}; new "
        f"numbers start after sequence {manifest.allocator_position:,} or the highest restored"
    )


@click.command("copy")
@click.option("--from", "source", required=True, metavar="URL", help="Database to copy from.")
@click.option("--to", "target", required=True, metavar="URL", help="EMPTY database to copy into.")
def copy_command(source: str, target: str) -> None:
    """Copy every crmcore table from one database into an empty one (any two backends)."""
    if source == target:
        raise CliError("--from and --to are the same database", EXIT_USAGE)
    with open_store(source) as origin, open_store(target) as destination, translate_errors():
        position = copy(origin, destination)
    err_console().print(f"copied; new numbers start after sequence {position:,} or higher")
