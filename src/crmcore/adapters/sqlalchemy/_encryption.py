"""What the settings table records about a store's encryption, checked on every open.

Rows of the settings table (no key material, only ids and check values):

* ``encryption``: ``"aead-1"`` once the store is encrypted (absent: a plaintext store);
* ``encryption.keys`` / ``encryption.index_keys``: the data and index key ids rows may be
  sealed or indexed under, comma-separated (the active ones first);
* ``encryption.check.<id>`` / ``encryption.index_check.<id>``: a value only the right key
  reproduces, so a ring holding a *different* key under a known id is refused at open with a
  :class:`~crmcore.errors.ConfigurationError` instead of failing later row by row;
* ``encryption.plaintext_rows``: ``"true"`` while rows written before encryption was turned
  on may remain (cleared by the rotation that seals the last of them).
"""

from __future__ import annotations

from typing import Final

import attrs
from sqlalchemy import Connection, delete, exists, insert, inspect, select, update
from sqlalchemy import exc as sa_exc

from crmcore.adapters.sqlalchemy._binding import Binding
from crmcore.adapters.sqlalchemy._errors import raise_translated
from crmcore.adapters.sqlalchemy._sealing import RowSealer
from crmcore.adapters.sqlalchemy._tables import CrmTables
from crmcore.crypto import FieldCipher, KeyRing
from crmcore.errors import ConfigurationError

__all__ = [
    "EncryptionRecord",
    "finish_rotation",
    "open_encryption",
    "read_record",
    "reconcile",
]

ENCRYPTED: Final = "encryption"
KEYS: Final = "encryption.keys"
INDEX_KEYS: Final = "encryption.index_keys"
PLAINTEXT_ROWS: Final = "encryption.plaintext_rows"
CHECK: Final = "encryption.check."
INDEX_CHECK: Final = "encryption.index_check."
VERSION: Final = "aead-1"


@attrs.frozen
class EncryptionRecord:
    """What a store's settings say about its encryption."""

    encrypted: bool
    keys: tuple[str, ...]
    index_keys: tuple[str, ...]
    plaintext_rows: bool
    checks: dict[str, str]
    index_checks: dict[str, str]


def _ids(text: str | None) -> tuple[str, ...]:
    return tuple(k for k in (text or "").split(",") if k)


def read_record(conn: Connection, tables: CrmTables) -> EncryptionRecord | None:
    """The recorded state (``None``: the settings table does not exist yet)."""
    s = tables.settings
    if not inspect(conn).has_table(s.name, schema=s.schema):
        return None
    query = select(s.c.key, s.c.value).where(s.c.key.like("encryption%"))
    rows: dict[str, str] = {str(row[0]): str(row[1]) for row in conn.execute(query)}
    return EncryptionRecord(
        encrypted=ENCRYPTED in rows,
        keys=_ids(rows.get(KEYS)),
        index_keys=_ids(rows.get(INDEX_KEYS)),
        plaintext_rows=rows.get(PLAINTEXT_ROWS) == "true",
        checks={k[len(CHECK) :]: v for k, v in rows.items() if k.startswith(CHECK)},
        index_checks={
            k[len(INDEX_CHECK) :]: v for k, v in rows.items() if k.startswith(INDEX_CHECK)
        },
    )


def _put(conn: Connection, tables: CrmTables, key: str, value: str) -> None:
    s = tables.settings
    if conn.execute(update(s).where(s.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(s).values(key=key, value=value))


def _holds_rows(conn: Connection, tables: CrmTables) -> bool:
    return any(
        conn.execute(select(exists().select_from(t))).scalar()
        for t in (tables.customers, tables.interactions)
    )


def reconcile(
    conn: Connection,
    tables: CrmTables,
    keyring: KeyRing | None,
    *,
    encrypt_existing: bool,
) -> RowSealer | None:
    """Check the key ring against what the store records; record what is new.

    Returns the store's row sealer (``None`` for a plaintext store opened without keys).

    Raises:
        ConfigurationError: an encrypted store opened without a key ring, a ring lacking a
            key id the store's rows may use, a ring holding another key under a recorded
            id, a plaintext store with rows opened with a ring without ``encrypt_existing``,
            or the ``cryptography`` package missing.
    """
    record = read_record(conn, tables)
    cipher = None if keyring is None else FieldCipher(keyring)
    if record is None:
        # No schema yet: create_schema() reconciles again once the settings table exists.
        return None if cipher is None else RowSealer(cipher, allow_plain=False)
    if not record.encrypted:
        if cipher is None:
            return None
        holds = _holds_rows(conn, tables)
        if holds and not encrypt_existing:
            raise ConfigurationError(
                "this store holds unencrypted data: open it with keyring=... and "
                "encrypt_existing=True, then seal the existing rows with "
                "store.rotate_keys() or 'crmcore keys rotate'"
            )
        _record_keys(conn, tables, cipher, record)
        _put(conn, tables, ENCRYPTED, VERSION)
        if holds:
            _put(conn, tables, PLAINTEXT_ROWS, "true")
        return RowSealer(cipher, allow_plain=holds)
    if cipher is None:
        raise ConfigurationError(
            f"this store is encrypted (data keys {', '.join(record.keys)}): open it with "
            "keyring=KeyRing.from_env() (or the CLI's CRMCORE_KEYRING); needs crmcore[crypto]"
        )
    ring = cipher.ring
    missing = [k for k in record.keys if ring.data_key(k) is None]
    missing += [k for k in record.index_keys if ring.index_key(k) is None]
    if missing:
        raise ConfigurationError(
            f"the key ring lacks key id(s) {', '.join(missing)} that this store's rows may "
            "use; add them to the ring (a rotation retires old keys)"
        )
    for key_id in record.keys:
        check = record.checks.get(key_id)
        if check is not None and not cipher.verify_key(key_id, check):
            raise ConfigurationError(
                f"data key {key_id!r} of the key ring is not the key this store was encrypted with"
            )
    for key_id in record.index_keys:
        check = record.index_checks.get(key_id)
        if check is not None and check != cipher.index_check(key_id):
            raise ConfigurationError(
                f"index key {key_id!r} of the key ring is not the key this store's indexes use"
            )
    _record_keys(conn, tables, cipher, record)
    return RowSealer(cipher, allow_plain=record.plaintext_rows)


def _record_keys(
    conn: Connection, tables: CrmTables, cipher: FieldCipher, record: EncryptionRecord
) -> None:
    """Record the ring's active keys (and their checks) if the store does not know them."""
    active, index = cipher.active_key_id, cipher.active_index_key_id
    if active not in record.keys:
        _put(conn, tables, KEYS, ",".join((active, *record.keys)))
    if active not in record.checks:
        _put(conn, tables, CHECK + active, cipher.key_check(active))
    if index not in record.index_keys:
        _put(conn, tables, INDEX_KEYS, ",".join((index, *record.index_keys)))
    if index not in record.index_checks:
        _put(conn, tables, INDEX_CHECK + index, cipher.index_check(index))


def finish_rotation(conn: Connection, tables: CrmTables, cipher: FieldCipher) -> None:
    """Every row is sealed and indexed under the active keys: retire the others."""
    s = tables.settings
    active, index = cipher.active_key_id, cipher.active_index_key_id
    _put(conn, tables, KEYS, active)
    _put(conn, tables, INDEX_KEYS, index)
    conn.execute(
        delete(s).where(
            (s.c.key == PLAINTEXT_ROWS)
            | (
                s.c.key.like(CHECK.replace("_", "\\_") + "%", escape="\\")
                & (s.c.key != CHECK + active)
            )
            | (
                s.c.key.like(INDEX_CHECK.replace("_", "\\_") + "%", escape="\\")
                & (s.c.key != INDEX_CHECK + index)
            )
        )
    )


def open_encryption(
    binding: Binding, tables: CrmTables, keyring: KeyRing | None, *, encrypt_existing: bool
) -> RowSealer | None:
    """:func:`reconcile` at open, in a transaction of its own (a SAVEPOINT inside a host's
    transaction; on a host's idle connection a transaction begun and ended here)."""
    if keyring is not None and not isinstance(keyring, KeyRing):
        raise ConfigurationError(f"keyring must be a KeyRing, got {type(keyring).__name__}")
    try:
        host = binding.host_connection
        if host is not None and not host.in_transaction():
            with host.begin():
                return reconcile(host, tables, keyring, encrypt_existing=encrypt_existing)
        with binding.admin() as conn:
            return reconcile(conn, tables, keyring, encrypt_existing=encrypt_existing)
    except sa_exc.SQLAlchemyError as exc:
        raise_translated(exc, "settings")
