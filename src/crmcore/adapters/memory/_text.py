"""Text of the in-memory histories without a Python string per row.

Free text (external references, interaction subjects and notes...) is UTF-8 in one growable
:class:`ByteBuffer` per history, each row holding a start offset and a length (``-1`` for
``None``) in its numeric columns. Low-cardinality text (sources, currencies) is a small
:class:`Dictionary` of codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["ByteBuffer", "Dictionary", "encode_texts", "spans"]

UInt8Array = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]


class Dictionary:
    """Codes of a few distinct strings; code 0 is ``None``.

    Codes are never taken back (a rolled-back write may leave an unused one): the strings are
    names of systems and currencies, not personal data.
    """

    def __init__(self) -> None:
        self.names: list[str | None] = [None]
        self.codes: dict[str | None, int] = {None: 0}

    def code(self, name: str | None) -> int:
        """The code of ``name``, assigned if new."""
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code

    def code_many(self, values: ObjectArray | Sequence[str | None]) -> npt.NDArray[np.int32]:
        """The codes of an array of strings or ``None`` (one dict lookup per distinct value)."""
        items = values.tolist() if isinstance(values, np.ndarray) else list(values)
        lookup = {name: self.code(name) for name in dict.fromkeys(items)}
        return np.fromiter(map(lookup.__getitem__, items), dtype=np.int32, count=len(items))


def encode_texts(values: ObjectArray | Sequence[str | None]) -> tuple[bytes, IntArray]:
    """UTF-8 of each string concatenated, and each one's byte length (``-1`` for ``None``)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    lengths = np.full(len(items), -1, dtype=np.int64)
    present = [i for i, v in enumerate(items) if v is not None]
    if not present:
        return b"", lengths
    encoded = [str(items[i]).encode() for i in present]
    lengths[present] = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return b"".join(encoded), lengths


def spans(starts: IntArray, lengths: IntArray) -> IntArray:
    """Every byte position of the slices ``[start, start + length)`` (lengths >= 0)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    offsets = np.repeat(starts - (ends - lengths), lengths)
    out: IntArray = np.arange(total, dtype=np.int64) + offsets
    return out


class ByteBuffer:
    """A growable UTF-8 byte buffer (amortised O(1) append, truncated to undo appends).

    Attributes:
        size: bytes in use.
        data: the backing array (longer than ``size``).
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.size = 0
        self.data: UInt8Array = np.zeros(capacity, dtype=np.uint8)

    def _reserve(self, extra: int) -> None:
        needed = self.size + extra
        if needed <= len(self.data):
            return
        capacity = len(self.data)
        while capacity < needed:
            capacity *= 2
        grown = np.zeros(capacity, dtype=np.uint8)
        grown[: self.size] = self.data[: self.size]
        self.data = grown

    def append(self, data: bytes) -> int:
        """Append bytes; return where they start."""
        start = self.size
        if data:
            self._reserve(len(data))
            self.data[start : start + len(data)] = np.frombuffer(data, dtype=np.uint8)
            self.size = start + len(data)
        return start

    def truncate(self, size: int) -> None:
        """Drop bytes from ``size`` on (zeroed: nothing of an undone write stays)."""
        self.data[size : self.size] = 0
        self.size = size

    def text(self, start: int, length: int) -> str | None:
        """The string at ``[start, start + length)``; ``None`` for length -1."""
        if length < 0:
            return None
        return self.data[start : start + length].tobytes().decode()

    def texts(self, starts: IntArray, lengths: IntArray) -> list[str | None]:
        """:meth:`text` of each slice."""
        return [self.text(s, n) for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)]

    def wipe(self, positions: IntArray) -> UInt8Array:
        """Overwrite the bytes at ``positions`` with zeros; return what they were."""
        saved = self.data[positions].copy()
        self.data[positions] = 0
        return saved

    def unwipe(self, positions: IntArray, saved: UInt8Array) -> None:
        """Undo :meth:`wipe`."""
        self.data[positions] = saved
