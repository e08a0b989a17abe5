"""``crmcore keys generate`` and ``crmcore keys rotate``: an encrypted store's keys (see
``docs/privacy-encryption.md``). The key ring is read from ``$CRMCORE_KEYRING``."""

from __future__ import annotations

import click

from crmcore.cli._common import (
    EXIT_FAILURE,
    CliError,
    db_option,
    err_console,
    open_sql_store,
    out_console,
    sqlite_url,
    translate_errors,
)
from crmcore.crypto import DEFAULT_ENV, KeyRing
from crmcore.errors import ConfigurationError

__all__ = ["keys"]


@click.group("keys")
def keys() -> None:
    """Keys of an encrypted store (the ring is read from $CRMCORE_KEYRING)."""


@keys.command("generate")
@click.option("--key-id", default="k1", show_default=True, help="Id of the new data key.")
@click.option("--index-key-id", default="i1", show_default=True, help="Id of the new index key.")
def generate(key_id: str, index_key_id: str) -> None:
    """Print a new key ring (one data key, one index key) in its text form.

    Keep it in a secrets manager and hand it to crmcore as $CRMCORE_KEYRING; never store it
    in the database it protects.
    """
    try:
        ring = KeyRing.generate(key_id, index_key_id)
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    out_console().print(ring.to_text(), soft_wrap=True, highlight=False)


@keys.command("rotate")
@db_option
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows per transaction.",
)
@click.option(
    "--max-batches",
    default=None,
    type=click.IntRange(min=0),
    help="Stop after this many transactions (run again to continue).",
)
@click.option(
    "--encrypt-existing",
    is_flag=True,
    help="Turn encryption on for a store that holds plaintext rows and seal them.",
)
def rotate(
    db: str | None, batch_size: int, max_batches: int | None, encrypt_existing: bool
) -> None:
    """Re-seal every row under the ring's active data key and re-index it under the active
    index key, batch by batch; resumable, and the store stays usable meanwhile."""
    if not db:
        raise CliError("no database given: pass --db URL or set $CRMCORE_DB")
    with translate_errors():
        ring = KeyRing.from_env(DEFAULT_ENV)
    url = sqlite_url(db)
    with translate_errors(url):
        store = open_sql_store(url, keyring=ring, encrypt_existing=encrypt_existing)
        try:
            report = store.rotate_keys(  # type: ignore[attr-defined]
                batch_size=batch_size, max_batches=max_batches
            )
        finally:
            store.close()  # type: ignore[attr-defined]
    state = "complete: old keys retired" if report.complete else "stopped: run it again"
    err_console().print(
        f"re-sealed {report.customers:,} customers and {report.interactions:,} interactions "
        f"in {report.batches:,} batches; {state}"
    )
    if not report.complete and max_batches is None:
        raise CliError("rows under an old key remain (a concurrent writer?)", EXIT_FAILURE)
