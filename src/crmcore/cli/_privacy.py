"""``crmcore customer export`` (a subject access export as JSON) and ``crmcore retention run``
(apply retention rules from a TOML file)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import click

from crmcore.cli._common import (
    EXIT_USAGE,
    CliError,
    current_config,
    db_option,
    err_console,
    open_store,
    translate_errors,
)
from crmcore.services import Crm

__all__ = ["export_command"]

_PRIVATE = 0o600  # an export is personal data: readable by its owner only


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (refused if it exists, checked by the file system, not before)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
    except FileExistsError:
        raise CliError(f"{path} exists; pass --force to overwrite it", EXIT_USAGE) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        path.unlink(missing_ok=True)  # no half-written export left behind
        raise


def _replace(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file beside it, so a failure keeps the old one."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        os.fchmod(fd, _PRIVATE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@click.command("export")
@click.argument("number")
@db_option
@click.option(
    "--out",
    "out",
    required=True,
    metavar="FILE.json",
    help="Where to write the export ('-': standard output). An existing file is kept "
    "unless --force.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
def export_command(number: str, db: str | None, out: str, force: bool) -> None:
    """Export everything held about customer NUMBER as JSON (a subject access request).

    The document follows the schema crmcore.subject-export version 1 (docs/privacy-subject.md).
    It contains personal data: the file is created readable by its owner only. Exit codes:
    0 written, 1 not found, erased or a database error, 2 bad usage (malformed number,
    existing file without --force).
    """
    target = None if out == "-" else Path(out)
    if target is not None and not force and target.exists():
        raise CliError(f"{target} exists; pass --force to overwrite it", EXIT_USAGE)
    with open_store(db) as store, translate_errors():
        exported = Crm(store, converter=current_config().converter).export_subject(number)
        text = json.dumps(exported, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        if target is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        if force:
            _replace(target, text)
        else:
            _write_new(target, text)
    err_console().print(f"exported customer {exported['crm_number']} to {target}")
