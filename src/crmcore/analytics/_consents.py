"""The consent ledger as snapshot columns, and the ``consented(...)`` test over it.

A snapshot's ``consents`` field holds every ledger entry of its customers, one array per
attribute, ordered by snapshot row, then history order (``at``, then append order).
``consented(purpose, channel)`` is then one vectorised pass: keep the entries of the
purpose that apply to the channel (channel-less ones, and the channel's own) and are not after
``as_of``; the last one per row is the decision in force; it counts if it is an unexpired
grant. :func:`entries_granted` is the same rule over one customer's entries (the predicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias

import numpy as np

from crmcore._epoch import NONE_MAX, to_us
from crmcore.analytics._metrics import BoolArray, Int64Array, ObjectArray
from crmcore.analytics.columns import CHANNEL_CODES
from crmcore.domain import ConsentRecord, InteractionChannel

__all__ = [
    "NO_CHANNEL",
    "ConsentColumns",
    "ConsentEntry",
    "entries_granted",
    "entry_of",
]

NO_CHANNEL: Final = -1
"""The channel code of a decision that applies to every channel."""

ConsentEntry: TypeAlias = tuple[str, str | None, bool, int, int | None]
"""One ledger entry as a row value: ``(purpose, channel or None, granted, at_us,
expires_us or None)``."""

_CHANNEL_NAMES: Final = {code: channel.value for channel, code in CHANNEL_CODES.items()}


def entry_of(record: ConsentRecord) -> ConsentEntry:
    """The row value of a ledger entry."""
    return (
        record.purpose,
        None if record.channel is None else record.channel.value,
        record.granted,
        to_us(record.at),
        None if record.expires_at is None else to_us(record.expires_at),
    )


def entries_granted(
    entries: Sequence[ConsentEntry], purpose: str, channel: str | None, as_of_us: int
) -> bool:
    """Whether one customer's ``entries`` (in history order) grant ``purpose`` on ``channel``
    (``None``: the every-channel decision) at ``as_of_us``."""
    latest: ConsentEntry | None = None
    for entry in entries:
        if entry[0] != purpose or entry[3] > as_of_us:
            continue
        if entry[1] is not None and entry[1] != channel:
            continue
        latest = entry
    if latest is None or not latest[2]:
        return False
    return latest[4] is None or as_of_us < latest[4]


class ConsentColumns:
    """Every ledger entry of a snapshot's customers, column-wise.

    Args:
        size: the snapshot's number of rows.
        row: the snapshot row of each entry.
        purpose: each entry's purpose (object array of text).
        channel: each entry's channel code (``CHANNEL_CODES``; :data:`NO_CHANNEL`: every
            channel).
        granted: whether each entry is a grant.
        at_us: each entry's instant.
        expires_us: each entry's expiry (``NONE_MAX``: none).

    Entries must come in history order per customer; they are put in row order here (a
    stable sort, so ties on ``at`` keep the order given).
    """

    __slots__ = ("at_us", "channel", "expires_us", "granted", "purpose", "row", "size")

    def __init__(
        self,
        *,
        size: int,
        row: Int64Array,
        purpose: ObjectArray,
        channel: Int64Array,
        granted: BoolArray,
        at_us: Int64Array,
        expires_us: Int64Array,
    ) -> None:
        order = np.lexsort((np.arange(len(row)), at_us, row))
        self.size = size
        self.row: Int64Array = np.asarray(row, dtype=np.int64)[order]
        self.purpose: ObjectArray = np.asarray(purpose, dtype=object)[order]
        self.channel: Int64Array = np.asarray(channel, dtype=np.int64)[order]
        self.granted: BoolArray = np.asarray(granted, dtype=np.bool_)[order]
        self.at_us: Int64Array = np.asarray(at_us, dtype=np.int64)[order]
        self.expires_us: Int64Array = np.asarray(expires_us, dtype=np.int64)[order]

    @classmethod
    def empty(cls, size: int) -> ConsentColumns:
        """No entries for ``size`` rows."""
        none = np.zeros(0, dtype=np.int64)
        return cls(
            size=size,
            row=none,
            purpose=np.zeros(0, dtype=object),
            channel=none,
            granted=np.zeros(0, dtype=np.bool_),
            at_us=none,
            expires_us=none,
        )

    @classmethod
    def from_records(
        cls, size: int, rows: Sequence[int], records: Sequence[ConsentRecord]
    ) -> ConsentColumns:
        """From ledger entries (in history order per customer) and their snapshot rows."""
        n = len(records)
        return cls(
            size=size,
            row=np.fromiter(rows, np.int64, n),
            purpose=np.array([r.purpose for r in records] or [], dtype=object),
            channel=np.fromiter(
                (NO_CHANNEL if r.channel is None else CHANNEL_CODES[r.channel] for r in records),
                np.int64,
                n,
            ),
            granted=np.fromiter((r.granted for r in records), np.bool_, n),
            at_us=np.fromiter((to_us(r.at) for r in records), np.int64, n),
            expires_us=np.fromiter(
                (NONE_MAX if r.expires_at is None else to_us(r.expires_at) for r in records),
                np.int64,
                n,
            ),
        )

    def __len__(self) -> int:
        return len(self.row)

    def mask(self, purpose: str, channel: InteractionChannel | None, as_of_us: int) -> BoolArray:
        """Rows whose decision in force for ``purpose`` on ``channel`` at ``as_of_us`` is an
        unexpired grant (``channel=None``: the every-channel decision)."""
        out = np.zeros(self.size, dtype=np.bool_)
        if not len(self.row):
            return out
        applies = self.channel == NO_CHANNEL
        if channel is not None:
            applies |= self.channel == CHANNEL_CODES[channel]
        keep = np.flatnonzero(applies & (self.at_us <= as_of_us) & (self.purpose == purpose))
        if not len(keep):
            return out
        rows = self.row[keep]
        # Entries are in row, then history order: the last kept entry of each row decides.
        last = keep[np.append(rows[1:] != rows[:-1], True)]
        force = self.granted[last] & (self.expires_us[last] > as_of_us)
        out[self.row[last[force]]] = True
        return out

    def of_row(self, index: int) -> tuple[ConsentEntry, ...]:
        """The entries of one row, in history order."""
        lo, hi = np.searchsorted(self.row, [index, index + 1])
        return tuple(
            (
                str(self.purpose[i]),
                _CHANNEL_NAMES.get(int(self.channel[i])),
                bool(self.granted[i]),
                int(self.at_us[i]),
                None if int(self.expires_us[i]) == NONE_MAX else int(self.expires_us[i]),
            )
            for i in range(int(lo), int(hi))
        )

    def per_row(self) -> list[tuple[ConsentEntry, ...]]:
        """The entries of every row (for conversions)."""
        return [self.of_row(i) for i in range(self.size)]
