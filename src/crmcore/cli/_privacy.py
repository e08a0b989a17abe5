"""``crmcore customer export`` (a subject access export as JSON) and ``crmcore retention run``
(apply retention rules from a TOML file)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path

import click

from crmcore.cli._common import (
    EXIT_USAGE,
    CliError,
    current_config,
    db_option,
    err_console,
    open_store,
    out_console,
    parse_instant,
    translate_errors,
)
from crmcore.domain.retention import RetentionRule, parse_rules
from crmcore.services import Crm

__all__ = ["export_command", "retention"]

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


def _read_rules(path: Path) -> tuple[RetentionRule, ...]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"--rules: {path} is not valid TOML ({exc})", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"--rules: {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    with translate_errors():
        return parse_rules(data)


@click.group("retention")
def retention() -> None:
    """Storage limitation: blank old notes, anonymise or delete inactive customers."""


@retention.command("run")
@db_option
@click.option(
    "--rules",
    "rules_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE.toml",
    help="The retention rules ([[rule]] tables; see docs/privacy-subject.md).",
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="TIME",
    help="Count the rules' periods back from TIME (ISO 8601 with offset, or a date). Default: now.",
)
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="Records per batch (each batch is one transaction).",
)
def run_command(
    db: str | None, rules_path: Path, as_of: str | None, dry_run: bool, batch_size: int
) -> None:
    """Apply the retention rules of FILE.toml, in order, in batches.

    Prints one line per rule: what it changed (or, with --dry-run, would change) and how
    many customers it touched. Running it again changes nothing. Exit codes: 0 done,
    1 database error (batches committed before it stay; run again to finish), 2 bad usage
    (malformed rules file, bad --as-of).
    """
    rules = _read_rules(rules_path)
    when = None if as_of is None else parse_instant(as_of, "--as-of")
    with open_store(db) as store, translate_errors():
        crm = Crm(store, converter=current_config().converter)
        report = crm.apply_retention(rules, when, dry_run=dry_run, batch_size=batch_size)
    console = out_console()
    verb = "would change" if dry_run else "changed"
    for outcome in report.outcomes:
        console.print(
            f"{outcome.rule}: {verb} {outcome.changed} "
            f"({len(outcome.customers)} customers; cut-off {outcome.cutoff.isoformat()})"
        )
    where = "dry run, nothing changed" if dry_run else f"{report.changed} records changed"
    err_console().print(f"retention as of {report.as_of.isoformat()}: {where}")
