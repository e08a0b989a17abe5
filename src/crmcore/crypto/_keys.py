"""``KeyRing``: the named 256-bit keys a store is encrypted with, and their text form.

Two sets of keys, each a mapping from a short key id to 32 random bytes:

* **data keys** seal field values (AEAD). One is *active*: every new ciphertext is sealed
  under it; every key of the ring opens the ciphertexts that name its id, so a ring holding
  the old and the new key reads a store half way through a rotation.
* **index keys** compute the blind indexes (HMAC-SHA256) of e-mail addresses and phone
  numbers. They are separate from the data keys: an index key reveals nothing about the
  values, and a data key cannot be used to test guesses against the indexes.

The text form (an environment variable, a secrets manager entry) is
``data=<id>:<key>,<id>:<key>;index=<id>:<key>``, each key in URL-safe base64 (padding
optional); the first key of each section is the active one. Key material never appears in
a ``repr``, a ``str`` or an error message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Final

from crmcore.errors import ConfigurationError

__all__ = ["DEFAULT_ENV", "KEY_BYTES", "KeyRing"]

KEY_BYTES: Final = 32
"""Every key is 256 bits."""
DEFAULT_ENV: Final = "CRMCORE_KEYRING"
"""The environment variable :meth:`KeyRing.from_env` and the CLI read by default."""
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,8}")


def _check_keys(section: str, keys: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key_id, key in keys:
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise ConfigurationError(
                f"{section} key id {key_id!r} must be 1 to 8 letters, digits, '-' or '_'"
            )
        if key_id in out:
            raise ConfigurationError(f"{section} key id {key_id!r} appears twice")
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            # The key itself is never shown, only what is wrong with it.
            raise ConfigurationError(f"{section} key {key_id!r} must be {KEY_BYTES} bytes")
        out[key_id] = bytes(key)
    if not out:
        raise ConfigurationError(f"a key ring needs at least one {section} key")
    return out


def _decode_key(section: str, key_id: str, text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{section} key {key_id!r} is not URL-safe base64") from None
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(f"{section} key {key_id!r} must decode to {KEY_BYTES} bytes")
    return raw


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")


class KeyRing:
    """Named data keys (one active) and index keys (one active) of an encrypted store.

    Args:
        data_keys: key id -> 32-byte key, for sealing values; the first is active unless
            ``active`` names another.
        index_keys: key id -> 32-byte key, for blind indexes; the first is active unless
            ``active_index`` names another.
        active, active_index: the id of the active key of each set.

    Raises:
        ConfigurationError: a key id that is not 1 to 8 of ``[A-Za-z0-9_-]``, a key that is
            not 32 bytes, an empty set, or an active id the set does not hold.
    """

    __slots__ = ("_active", "_active_index", "_data", "_index")

    def __init__(
        self,
        data_keys: Mapping[str, bytes],
        index_keys: Mapping[str, bytes],
        *,
        active: str | None = None,
        active_index: str | None = None,
    ) -> None:
        self._data = _check_keys("data", data_keys.items())
        self._index = _check_keys("index", index_keys.items())
        self._active = next(iter(self._data)) if active is None else active
        self._active_index = next(iter(self._index)) if active_index is None else active_index
        if self._active not in self._data:
            raise ConfigurationError(f"active data key {self._active!r} is not in the ring")
        if self._active_index not in self._index:
            raise ConfigurationError(f"active index key {self._active_index!r} is not in the ring")

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def generate(cls, key_id: str = "k1", index_key_id: str = "i1") -> KeyRing:
        """A ring of one fresh random data key and one fresh random index key."""
        return cls(
            {key_id: secrets.token_bytes(KEY_BYTES)},
            {index_key_id: secrets.token_bytes(KEY_BYTES)},
        )

    @classmethod
    def from_text(cls, text: str) -> KeyRing:
        """Parse the text form ``data=<id>:<key>,...;index=<id>:<key>,...``.

        The first key of each section is the active one; keys are URL-safe base64 of 32
        bytes; whitespace around items is ignored.

        Raises:
            ConfigurationError: the text is malformed (the message never quotes a key).
        """
        if not isinstance(text, str):
            raise ConfigurationError("a key ring text must be a str")
        sections: dict[str, list[tuple[str, bytes]]] = {}
        for part in text.strip().split(";"):
            name, sep, items = part.strip().partition("=")
            name = name.strip()
            if not sep or name not in ("data", "index"):
                raise ConfigurationError(
                    "a key ring text is 'data=<id>:<key>,...;index=<id>:<key>,...'"
                )
            if name in sections:
                raise ConfigurationError(f"the key ring text has two {name} sections")
            keys: list[tuple[str, bytes]] = []
            for item in items.split(","):
                key_id, colon, encoded = item.strip().partition(":")
                if not colon:
                    raise ConfigurationError(f"each {name} key is written '<id>:<base64 key>'")
                keys.append((key_id, _decode_key(name, key_id, encoded.strip())))
            _check_keys(name, keys)  # a repeated id, before dict() would drop it
            sections[name] = keys
        for name in ("data", "index"):
            if name not in sections:
                raise ConfigurationError(f"the key ring text has no {name} section")
        return cls(dict(sections["data"]), dict(sections["index"]))

    @classmethod
    def from_env(cls, name: str = DEFAULT_ENV) -> KeyRing:
        """Parse the text form from the environment variable ``name``.

        Raises:
            ConfigurationError: the variable is unset or malformed.
        """
        text = os.environ.get(name)
        if not text:
            raise ConfigurationError(f"environment variable {name} holds no key ring")
        return cls.from_text(text)

    def to_text(self) -> str:
        """The text form :meth:`from_text` reads (active keys first). It holds the keys:
        store it like a password, never in the database it protects."""
        data = [self._active, *(k for k in self._data if k != self._active)]
        index = [self._active_index, *(k for k in self._index if k != self._active_index)]
        return (
            "data="
            + ",".join(f"{k}:{_encode_key(self._data[k])}" for k in data)
            + ";index="
            + ",".join(f"{k}:{_encode_key(self._index[k])}" for k in index)
        )

    def with_data_key(self, key_id: str, key: bytes | None = None) -> KeyRing:
        """A ring with a new active data key (random unless given); the old keys stay, to
        read what they sealed until a rotation re-seals it."""
        new = secrets.token_bytes(KEY_BYTES) if key is None else key
        return KeyRing({key_id: new, **self._data}, self._index, active_index=self._active_index)

    def with_index_key(self, key_id: str, key: bytes | None = None) -> KeyRing:
        """A ring with a new active index key (random unless given); the old ones stay, so
        look-ups find rows indexed under them until a rotation recomputes the indexes."""
        new = secrets.token_bytes(KEY_BYTES) if key is None else key
        return KeyRing(self._data, {key_id: new, **self._index}, active=self._active)

    def without(self, key_id: str) -> KeyRing:
        """A ring without the (inactive) data or index key ``key_id`` (after a rotation)."""
        if key_id in (self._active, self._active_index):
            raise ConfigurationError(f"key {key_id!r} is active and cannot be removed")
        return KeyRing(
            {k: v for k, v in self._data.items() if k != key_id},
            {k: v for k, v in self._index.items() if k != key_id},
            active=self._active,
            active_index=self._active_index,
        )

    # -- reading ----------------------------------------------------------------------------

    @property
    def active_key_id(self) -> str:
        """The id of the data key new values are sealed under."""
        return self._active

    @property
    def active_index_key_id(self) -> str:
        """The id of the index key new blind indexes are computed with."""
        return self._active_index

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every data key id, the active one first."""
        return (self._active, *(k for k in self._data if k != self._active))

    @property
    def index_key_ids(self) -> tuple[str, ...]:
        """Every index key id, the active one first."""
        return (self._active_index, *(k for k in self._index if k != self._active_index))

    def data_key(self, key_id: str) -> bytes | None:
        """The data key of ``key_id`` (``None`` if the ring has none)."""
        return self._data.get(key_id)

    def index_key(self, key_id: str) -> bytes | None:
        """The index key of ``key_id`` (``None`` if the ring has none)."""
        return self._index.get(key_id)

    def __repr__(self) -> str:
        return f"KeyRing(keys={list(self.key_ids)!r}, index_keys={list(self.index_key_ids)!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyRing):
            return NotImplemented
        return (
            self._data == other._data
            and self._index == other._index
            and self._active == other._active
            and self._active_index == other._active_index
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would copy key material into wherever the pickle goes: refuse.
        raise TypeError("a KeyRing cannot be pickled")
