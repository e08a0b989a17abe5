"""The manifest of a dump: what it holds and how to tell that its files are intact.

``manifest.json`` sits beside the Parquet files. It names the dump format and its version
(a restore refuses a format it does not know), the store's number scheme, reporting currency
and allocator position, and for each file its row count, size and SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from crmcore._version import __version__
from crmcore.domain import CheckAlgorithm, CrmNumberScheme
from crmcore.errors import BackupError

__all__ = [
    "FILES",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "FileEntry",
    "Manifest",
    "sha256_of",
]

FORMAT: Final = "crmcore-dump"
FORMAT_VERSION: Final = 2
"""The dump format's version. A later crmcore that changes the format bumps it and keeps
reading the older versions it knows: version 2 added ``audit_log.parquet`` (the audit
trail); a version 1 dump restores with an empty trail."""
MANIFEST: Final = "manifest.json"
FILES: Final = (
    "customers.parquet",
    "tombstones.parquet",
    "transactions.parquet",
    "interactions.parquet",
    "aggregates.parquet",
    "segments.parquet",
    "segment_runs.parquet",
    "audit_log.parquet",
)
"""The files of a dump, in the order a restore loads them."""

FILES_OF_VERSION: Final = {1: FILES[:-1], 2: FILES}
"""The files a dump of each readable format version holds."""


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@attrs.frozen
class FileEntry:
    """One file of a dump.

    Attributes:
        rows: how many rows it holds.
        bytes: its size.
        sha256: its SHA-256, hex.
    """

    rows: int
    bytes: int
    sha256: str


@attrs.frozen
class Manifest:
    """What a dump holds (``manifest.json``).

    Attributes:
        scheme: the dumped store's CRM number scheme (a restore target must have the same).
        reporting_currency: the dumped store's reporting currency (likewise).
        allocator_position: the highest sequence the dumped store's allocator had handed out.
        files: each file's entry, by file name.
        created_at: when the dump was written.
        crmcore_version: the crmcore that wrote it.
        format_version: :data:`FORMAT_VERSION` of the writer.
    """

    scheme: CrmNumberScheme
    reporting_currency: str
    allocator_position: int
    files: Mapping[str, FileEntry]
    created_at: dt.datetime
    crmcore_version: str = __version__
    format_version: int = FORMAT_VERSION

    def rows(self, file: str) -> int:
        """The row count of ``file``."""
        return self.files[file].rows

    def to_json(self) -> str:
        """The manifest as JSON text."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "format_version": self.format_version,
            "crmcore_version": self.crmcore_version,
            "created_at": self.created_at.isoformat(),
            "scheme": {
                "prefix": self.scheme.prefix,
                "width": self.scheme.width,
                "algorithm": self.scheme.algorithm.value,
            },
            "reporting_currency": self.reporting_currency,
            "allocator_position": self.allocator_position,
            "files": {name: attrs.asdict(entry) for name, entry in self.files.items()},
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """Read and check the manifest of the dump in ``directory``.

        Raises:
            BackupError: it is missing, malformed, of another format or format version, or
                does not list exactly the files of a dump.
        """
        path = directory / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BackupError(f"no dump here (no {MANIFEST} in {directory})", MANIFEST) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BackupError(f"unreadable ({exc})", MANIFEST) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BackupError(f"not a crmcore dump manifest (format is not {FORMAT!r})", MANIFEST)
        version = data.get("format_version")
        if isinstance(version, bool) or version not in FILES_OF_VERSION:
            raise BackupError(
                f"dump format version {version!r} is not supported (this crmcore reads "
                f"versions {', '.join(map(str, FILES_OF_VERSION))})",
                MANIFEST,
            )
        expected = FILES_OF_VERSION[version]
        try:
            scheme = data["scheme"]
            files = {
                str(name): FileEntry(int(e["rows"]), int(e["bytes"]), str(e["sha256"]))
                for name, e in data["files"].items()
            }
            manifest = cls(
                scheme=CrmNumberScheme(
                    prefix=scheme["prefix"],
                    width=scheme["width"],
                    algorithm=CheckAlgorithm(scheme["algorithm"]),
                ),
                reporting_currency=str(data["reporting_currency"]),
                allocator_position=int(data["allocator_position"]),
                files=files,
                created_at=dt.datetime.fromisoformat(data["created_at"]),
                crmcore_version=str(data["crmcore_version"]),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupError(f"malformed manifest ({exc!r})", MANIFEST) from None
        if set(files) != set(expected):
            missing = sorted(set(expected) - set(files))
            extra = sorted(set(files) - set(expected))
            raise BackupError(
                f"the manifest lists the wrong files (missing {missing}, unknown {extra})",
                MANIFEST,
            )
        return manifest

    def check_files(self, directory: Path) -> None:
        """Check every file against the manifest: present, of the listed size and SHA-256.

        Raises:
            BackupError: naming the first file that is missing, truncated or changed.
        """
        for name in FILES_OF_VERSION[self.format_version]:
            entry = self.files[name]
            path = directory / name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise BackupError("missing from the dump", name) from None
            if size != entry.bytes:
                raise BackupError(
                    f"has {size} bytes, the manifest says {entry.bytes} (truncated or changed)",
                    name,
                )
            if sha256_of(path) != entry.sha256:
                raise BackupError("checksum mismatch (the file was changed)", name)
