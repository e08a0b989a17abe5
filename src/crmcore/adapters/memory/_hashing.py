"""64-bit hashes and an open-addressing hash index of rows, in numpy.

The history indexes (record id -> row, ``(source, external_ref)`` -> row) hold no Python
object per row: a :class:`HashIndex` is one int32 array of slots (``0`` empty, ``-1`` a
deleted entry, ``row + 1`` otherwise), probed linearly from ``hash & mask``. The index does
not keep the keys: a probe that lands on a row asks its owner whether that row's stored key
is the key looked for (so collisions of the 64-bit hash, and of slots, are resolved by the
stored keys). Optionally it keeps each slot's full hash too, so a probe only asks about rows
whose hash matches (the reference index does, since comparing text is costly).

Every operation has a vectorised form (arrays of hashes) and a single-key form in plain
Python with the same hash functions, for the per-record path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "HashIndex",
    "fnv1a",
    "fnv1a_many",
    "id_hash",
    "id_hash_many",
    "ref_hash",
    "ref_hash_many",
]

UInt64Array = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MASK: Final = (1 << 64) - 1
FNV_OFFSET: Final = 0xCBF29CE484222325
FNV_PRIME: Final = 0x100000001B3
_GOLDEN: Final = 0x9E3779B97F4A7C15
_M1: Final = 0xBF58476D1CE4E5B9
_M2: Final = 0x94D049BB133111EB
_U = np.uint64


def _mix(z: int) -> int:
    """The splitmix64 finaliser of a 64-bit integer (plain Python)."""
    z = ((z ^ (z >> 30)) * _M1) & MASK
    z = ((z ^ (z >> 27)) * _M2) & MASK
    return z ^ (z >> 31)


def _mix_many(z: UInt64Array) -> UInt64Array:
    """:func:`_mix` of each element (uint64 arithmetic wraps like ``& MASK``)."""
    z = (z ^ (z >> _U(30))) * _U(_M1)
    z = (z ^ (z >> _U(27))) * _U(_M2)
    out: UInt64Array = z ^ (z >> _U(31))
    return out


def id_hash(high: int, low: int) -> int:
    """The hash of a UUID given as its two 64-bit halves."""
    return _mix(high ^ ((low * _GOLDEN) & MASK))


def id_hash_many(high: npt.NDArray[Any], low: npt.NDArray[Any]) -> UInt64Array:
    """:func:`id_hash` of each pair."""
    return _mix_many(high.astype(np.uint64) ^ (low.astype(np.uint64) * _U(_GOLDEN)))


def fnv1a(data: bytes) -> int:
    """FNV-1a (64-bit) of ``data``."""
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK
    return h


def fnv1a_many(buffer: npt.NDArray[np.uint8], starts: IntArray, lengths: IntArray) -> UInt64Array:
    """:func:`fnv1a` of each slice ``buffer[start : start + length]`` (lengths >= 0), with
    one vectorised step per character position."""
    h = np.full(len(starts), FNV_OFFSET, dtype=np.uint64)
    if len(starts) == 0:
        return h
    longest = int(lengths.max())
    active = np.arange(len(starts))
    for position in range(longest):
        active = active[lengths[active] > position]
        byte = buffer[starts[active] + position].astype(np.uint64)
        h[active] = (h[active] ^ byte) * _U(FNV_PRIME)
    return h


def ref_hash(source_code: int, text_hash: int) -> int:
    """The hash of a ``(source, external_ref)`` key: the source's dictionary code and the
    FNV-1a of the reference's UTF-8 bytes."""
    return _mix(text_hash ^ ((source_code * _GOLDEN) & MASK))


def ref_hash_many(source_codes: IntArray, text_hashes: UInt64Array) -> UInt64Array:
    """:func:`ref_hash` of each pair."""
    return _mix_many(text_hashes ^ (source_codes.astype(np.uint64) * _U(_GOLDEN)))


Same = Callable[[IntArray, IntArray], BoolArray]
"""``same(queries, rows)``: whether each stored row holds its query's key."""
HashRows = Callable[[IntArray], UInt64Array]
"""The hashes of stored rows' keys (to rehash when the index grows)."""

_EMPTY: Final = 0
_DELETED: Final = -1
_MAX_LOAD: Final = 0.5


class HashIndex:
    """Rows by the 64-bit hash of their key, in open-addressing int32 slots.

    Args:
        hash_rows: the hashes of stored rows (used when growing without kept hashes).
        keep_hashes: keep each slot's hash (probes then only compare matching hashes).
        capacity: initial number of slots (a power of two; tests force collisions with a
            tiny one).

    Attributes:
        slots: ``0`` empty, ``-1`` deleted, ``row + 1`` taken.
        hashes: each slot's hash, if kept.
        live: entries held.
        dead: deleted slots (reclaimed when the index is rebuilt).
    """

    def __init__(self, hash_rows: HashRows, *, keep_hashes: bool = False, capacity: int = 64):
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self._hash_rows = hash_rows
        self.keep_hashes = keep_hashes
        self.live = 0
        self.dead = 0
        self.slots = np.zeros(capacity, dtype=np.int32)
        self.hashes: UInt64Array | None = (
            np.zeros(capacity, dtype=np.uint64) if keep_hashes else None
        )

    @property
    def capacity(self) -> int:
        return len(self.slots)

    def rows(self) -> IntArray:
        """Every row held (in slot order)."""
        slots = self.slots
        out: IntArray = slots[slots > 0].astype(np.int64) - 1
        return out

    # -- growth ------------------------------------------------------------------------------

    def _reserve(self, extra: int) -> None:
        if self.live + self.dead + extra <= self.capacity * _MAX_LOAD:
            return
        capacity = self.capacity
        while (self.live + extra) > capacity * _MAX_LOAD:
            capacity *= 2
        taken = (self.slots > 0).nonzero()[0]
        rows = self.slots[taken].astype(np.int64) - 1
        if self.hashes is not None:
            hashes = self.hashes[taken]
        else:
            hashes = self._hash_rows(rows)
        self.slots = np.zeros(capacity, dtype=np.int32)
        if self.keep_hashes:
            self.hashes = np.zeros(capacity, dtype=np.uint64)
        self.live = self.dead = 0
        self._place(hashes, rows)

    # -- vectorised --------------------------------------------------------------------------

    def find(self, hashes: UInt64Array, same: Same) -> IntArray:
        """The row holding each key (``-1`` where none does)."""
        found = np.full(len(hashes), -1, dtype=np.int64)
        mask = self.capacity - 1
        pending = np.arange(len(hashes))
        pos = (hashes & _U(mask)).astype(np.int64)
        slots, kept = self.slots, self.hashes
        while pending.size:
            held = slots[pos].astype(np.int64)
            taken = held > 0
            if kept is not None:
                taken &= kept[pos] == hashes[pending]
            hit = np.zeros(len(pending), dtype=bool)
            candidates = taken.nonzero()[0]
            if candidates.size:
                hit[candidates] = same(pending[candidates], held[candidates] - 1)
            found[pending[hit]] = held[hit] - 1
            going = ~hit & (held != _EMPTY)
            pending = pending[going]
            pos = (pos[going] + 1) & mask
        return found

    def insert(self, hashes: UInt64Array, rows: IntArray) -> None:
        """Add entries whose keys are not held (nor repeated among them)."""
        self._reserve(len(rows))
        self._place(hashes, rows)

    def _place(self, hashes: UInt64Array, rows: IntArray) -> None:
        mask = self.capacity - 1
        slots, kept = self.slots, self.hashes
        pending = np.arange(len(rows))
        pos = (hashes & _U(mask)).astype(np.int64)
        tags = (rows + 1).astype(np.int32)
        while pending.size:
            held = slots[pos]
            free = held <= 0
            slots[pos[free]] = tags[pending[free]]  # of several claims, one wins
            won = free & (slots[pos] == tags[pending])
            if kept is not None:
                kept[pos[won]] = hashes[pending[won]]
            self.dead -= int(np.count_nonzero(held[won] == _DELETED))
            self.live += int(np.count_nonzero(won))
            pending = pending[~won]
            pos = (pos[~won] + 1) & mask

    def remove(self, hashes: UInt64Array, rows: IntArray) -> None:
        """Delete held entries (each row under its key's hash)."""
        mask = self.capacity - 1
        slots = self.slots
        pending = np.arange(len(rows))
        pos = (hashes & _U(mask)).astype(np.int64)
        tags = (rows + 1).astype(np.int32)
        while pending.size:
            hit = slots[pos] == tags[pending]
            slots[pos[hit]] = _DELETED
            count = int(np.count_nonzero(hit))
            self.live -= count
            self.dead += count
            pending = pending[~hit]
            pos = (pos[~hit] + 1) & mask

    # -- one key -----------------------------------------------------------------------------

    def find_one(self, h: int, same: Callable[[int], bool]) -> int:
        """The row holding one key, or ``-1``."""
        slots, kept = self.slots, self.hashes
        mask = len(slots) - 1
        pos = h & mask
        while True:
            held = slots.item(pos)
            if held == _EMPTY:
                return -1
            if held > 0 and (kept is None or kept.item(pos) == h) and same(held - 1):
                return held - 1
            pos = (pos + 1) & mask

    def insert_one(self, h: int, row: int) -> None:
        """Add one entry whose key is not held."""
        if self.live + self.dead + 1 > len(self.slots) * _MAX_LOAD:
            self._reserve(1)
        slots = self.slots
        mask = len(slots) - 1
        pos = h & mask
        while (held := slots.item(pos)) > 0:
            pos = (pos + 1) & mask
        if held == _DELETED:
            self.dead -= 1
        slots[pos] = row + 1
        if self.hashes is not None:
            self.hashes[pos] = h
        self.live += 1

    def remove_one(self, h: int, row: int) -> None:
        """Delete one held entry."""
        slots = self.slots
        mask = len(slots) - 1
        pos = h & mask
        tag = row + 1
        while slots[pos] != tag:
            pos = (pos + 1) & mask
        slots[pos] = _DELETED
        self.live -= 1
        self.dead += 1
