"""Dump, restore and copy whole stores: backups, moves between backends, warm starts.

* :func:`dump` writes every part of a store as Parquet files plus ``manifest.json``
  (format version, the store's number scheme and reporting currency, the allocator's
  position, each file's row count, size and SHA-256).
* :func:`restore` loads a dump into an *empty* store of any backend, all or nothing, after
  checking every file against the manifest.
* :func:`copy` moves a store into another without files; copying a SQL store into a new
  :class:`~crmcore.adapters.memory.InMemoryStore` is the warm start.

The package speaks only to the ports (:mod:`crmcore.ports.transfer` for what the everyday
repositories do not hand out), so every pair of backends works. Dump and restore need the
``[arrow]`` extra (pyarrow); copy does not. See ``docs/backup.md``.
"""

from crmcore.backup._api import copy, dump, restore
from crmcore.backup._manifest import FILES, FORMAT_VERSION, MANIFEST, FileEntry, Manifest

__all__ = [
    "FILES",
    "FORMAT_VERSION",
    "MANIFEST",
    "FileEntry",
    "Manifest",
    "copy",
    "dump",
    "restore",
]
