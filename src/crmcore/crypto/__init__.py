"""Encryption at rest: key rings, per-field AEAD and blind indexes (extra ``crmcore[crypto]``).

:class:`KeyRing` holds the keys and needs nothing beyond the standard library;
:class:`FieldCipher` seals and opens values with the ``cryptography`` package and raises
:class:`~crmcore.errors.ConfigurationError` (``pip install crmcore[crypto]``) when it is
missing. The SQL store uses both: ``SqlStore(..., keyring=KeyRing.from_env())``. See
``docs/privacy-encryption.md``.
"""

from crmcore.crypto._cipher import (
    FORMAT_GCM,
    FORMAT_GCM_SIV,
    INDEX_BYTES,
    FieldCipher,
    associated_data,
)
from crmcore.crypto._keys import DEFAULT_ENV, KEY_BYTES, KeyRing

__all__ = [
    "DEFAULT_ENV",
    "FORMAT_GCM",
    "FORMAT_GCM_SIV",
    "INDEX_BYTES",
    "KEY_BYTES",
    "FieldCipher",
    "KeyRing",
    "associated_data",
]
