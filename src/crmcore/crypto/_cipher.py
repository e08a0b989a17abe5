"""``FieldCipher``: per-field AEAD sealing and blind indexes over a :class:`KeyRing`.

Ciphertext layout (version 1), stored as URL-safe base64 text without padding::

    format (1 byte) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext+tag

``format`` 1 is AES-256-GCM-SIV, 2 is AES-256-GCM (used where the OpenSSL under
``cryptography`` lacks GCM-SIV); both read whichever the store holds. The nonce is 96 random
bits drawn for every value, never static and never derived (GCM-SIV also stays safe if two
random nonces ever collide). The associated data is the header above followed by the
*context* of the value: the CRM number, the table, the field and, for rows of which a
customer has several, the row's id or position (:func:`associated_data`). A ciphertext moved
to another row, customer or field therefore fails to authenticate.

Blind index: ``HMAC-SHA256(index key, "crmcore-blind-index" | kind | normalised value)``,
truncated to :data:`INDEX_BYTES` bytes and stored as ``<index key id>:<hex>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import Any, Final

from crmcore.crypto._keys import KeyRing
from crmcore.errors import ConfigurationError, DecryptionError

__all__ = [
    "FORMAT_GCM",
    "FORMAT_GCM_SIV",
    "INDEX_BYTES",
    "FieldCipher",
    "associated_data",
]

FORMAT_GCM_SIV: Final = 1
"""Format byte: AES-256-GCM-SIV."""
FORMAT_GCM: Final = 2
"""Format byte: AES-256-GCM."""
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
INDEX_BYTES: Final = 4
"""Bytes of HMAC kept in a blind index: 32 bits. With N indexed values a look-up meets
about N / 2**32 unrelated candidates (0.002 at ten million), which crmcore drops after
decrypting them, so results stay exact; a shorter index would hide more (more values share
an index) at the cost of more candidates to decrypt per look-up. See
docs/privacy-encryption.md."""
_INSTALL: Final = "encryption at rest needs the cryptography package: pip install crmcore[crypto]"
_CHECK: Final = b"crmcore key check"


def associated_data(number: str, table: str, field: str, row: str = "") -> bytes:
    """The context a value is sealed in: CRM number, table, field, and row id or position."""
    return "\x00".join(("crmcore", number, table, field, row)).encode("utf-8")


def _aead_classes() -> tuple[Any, Any]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV
    except ImportError:
        raise ConfigurationError(_INSTALL) from None
    return AESGCMSIV, AESGCM


class FieldCipher:
    """Seals and opens field values and computes blind indexes with a :class:`KeyRing`.

    Args:
        ring: the keys.

    Raises:
        ConfigurationError: the ``cryptography`` package is not installed.
    """

    __slots__ = ("_aeads", "_format", "_headers", "_ring")

    def __init__(self, ring: KeyRing) -> None:
        if not isinstance(ring, KeyRing):
            raise ConfigurationError(f"keyring must be a KeyRing, got {type(ring).__name__}")
        siv, gcm = _aead_classes()
        self._ring = ring
        self._format = FORMAT_GCM_SIV
        try:
            siv(bytes(32))
        except Exception:  # UnsupportedAlgorithm: an OpenSSL without GCM-SIV
            self._format = FORMAT_GCM
        self._aeads: dict[tuple[int, str], Any] = {}
        for key_id in ring.key_ids:
            key = ring.data_key(key_id)
            assert key is not None
            if self._format == FORMAT_GCM_SIV:
                self._aeads[(FORMAT_GCM_SIV, key_id)] = siv(key)
            self._aeads[(FORMAT_GCM, key_id)] = gcm(key)
        self._headers = {k: self._header(k) for k in ring.key_ids}

    def __repr__(self) -> str:
        return f"FieldCipher({self._ring!r})"

    @property
    def ring(self) -> KeyRing:
        """The key ring."""
        return self._ring

    @property
    def active_key_id(self) -> str:
        """The id of the key new values are sealed under."""
        return self._ring.active_key_id

    @property
    def active_index_key_id(self) -> str:
        """The id of the key new blind indexes are computed with."""
        return self._ring.active_index_key_id

    def _header(self, key_id: str) -> bytes:
        raw = key_id.encode("ascii")
        return bytes((self._format, len(raw))) + raw

    # -- sealing ------------------------------------------------------------------------------

    def seal(self, plaintext: str, context: bytes, *, key_id: str | None = None) -> str:
        """``plaintext`` sealed under the active key (or ``key_id``) for ``context``."""
        kid = self._ring.active_key_id if key_id is None else key_id
        header = self._headers[kid]
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[(self._format, kid)].encrypt(
            nonce, plaintext.encode("utf-8"), header + context
        )
        return base64.urlsafe_b64encode(header + nonce + sealed).decode("ascii").rstrip("=")

    def open(self, token: str, context: bytes, where: str) -> str:
        """The plaintext of ``token`` sealed for ``context``.

        Args:
            token: the stored text.
            context: what it must have been sealed for (:func:`associated_data`).
            where: ``table.field`` for the error message (no value, no key).

        Raises:
            DecryptionError: the token is malformed, names a key the ring lacks, or does not
                authenticate (altered, moved to another row or field, or another key).
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError, TypeError):
            raise DecryptionError(
                f"{where}: the stored value is not a crmcore ciphertext"
            ) from None
        if len(raw) < 2:
            raise DecryptionError(f"{where}: the stored value is not a crmcore ciphertext")
        fmt, size = raw[0], raw[1]
        body = 2 + size
        if len(raw) < body + NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(f"{where}: the stored ciphertext is truncated")
        try:
            kid = raw[2:body].decode("ascii")
        except UnicodeDecodeError:
            raise DecryptionError(f"{where}: the stored ciphertext names no valid key") from None
        aead = self._aeads.get((fmt, kid))
        if aead is None:
            if self._ring.data_key(kid) is None:
                raise DecryptionError(f"{where}: sealed under key {kid!r}, not in the key ring")
            raise DecryptionError(f"{where}: unknown ciphertext format {fmt}")
        nonce = raw[body : body + NONCE_BYTES]
        try:
            plain = aead.decrypt(nonce, raw[body + NONCE_BYTES :], raw[:body] + context)
        except Exception:  # InvalidTag, or a malformed length
            raise DecryptionError(
                f"{where}: the stored value does not authenticate (altered, moved to another "
                "row or field, or sealed under another key)"
            ) from None
        try:
            return str(plain.decode("utf-8"))
        except UnicodeDecodeError:
            raise DecryptionError(f"{where}: the stored value is not UTF-8 text") from None

    @staticmethod
    def key_id_of(token: str) -> str | None:
        """The key id a token names (``None`` if it is not a readable token)."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return raw[2 : 2 + raw[1]].decode("ascii")
        except (binascii.Error, ValueError, IndexError, UnicodeDecodeError):
            return None

    # -- blind indexes ------------------------------------------------------------------------

    def blind_index(self, kind: str, value: str, *, key_id: str | None = None) -> str:
        """The blind index of a normalised ``value`` of ``kind`` (``"email"``, ``"phone"``)
        under the active index key (or ``key_id``)."""
        kid = self._ring.active_index_key_id if key_id is None else key_id
        key = self._ring.index_key(kid)
        if key is None:
            raise ConfigurationError(f"index key {kid!r} is not in the key ring")
        message = b"crmcore-blind-index\x00" + kind.encode("ascii") + b"\x00" + value.encode()
        digest = hmac.new(key, message, hashlib.sha256).digest()[:INDEX_BYTES]
        return f"{kid}:{digest.hex()}"

    def blind_indexes(self, kind: str, value: str) -> list[str]:
        """The blind index of ``value`` under every index key of the ring (a look-up during
        an index-key rotation finds rows indexed under the old and the new key)."""
        return [self.blind_index(kind, value, key_id=k) for k in self._ring.index_key_ids]

    # -- key checks (recorded in the store, so a wrong key is told apart from tampering) -------

    def key_check(self, key_id: str) -> str:
        """A token sealed under data key ``key_id`` that :meth:`verify_key` accepts."""
        return self.seal("", _CHECK + key_id.encode("ascii"), key_id=key_id)

    def verify_key(self, key_id: str, check: str) -> bool:
        """Whether the ring's data key ``key_id`` is the one that sealed ``check``."""
        try:
            self.open(check, _CHECK + key_id.encode("ascii"), "settings")
        except DecryptionError:
            return False
        return True

    def index_check(self, key_id: str) -> str:
        """A value recorded for index key ``key_id`` (a wrong index key gives another)."""
        return self.blind_index("check", "crmcore key check", key_id=key_id)
