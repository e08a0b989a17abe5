"""CRM numbers of a whole column checked at once.

Numbers exported by another system are almost always canonical (``C0000012347``): those are
recognised with one regular expression over the column and their check digits computed for
all of them together with numpy. Anything else (lower case, separators, a typo) goes through
:meth:`crmcore.domain.CrmNumberScheme.parse` one distinct value at a time, which accepts what
a person may type and says what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from crmcore.domain import CheckAlgorithm, CrmNumberScheme
from crmcore.domain.numbers import _DAMM
from crmcore.errors import ValidationError

__all__ = ["format_numbers", "parse_numbers"]

ObjectArray = npt.NDArray[np.object_]

_DAMM_TABLE: Final = np.array(_DAMM, dtype=np.int8)


def parse_numbers(
    scheme: CrmNumberScheme, texts: pa.Array
) -> tuple[list[str | None], list[str | None]]:
    """Parse distinct number texts.

    Args:
        scheme: the store's scheme.
        texts: distinct, non-null texts (an Arrow string array).

    Returns:
        ``(canonical, reasons)``: per text, its canonical number (``None`` if invalid) and
        why it is invalid (``None`` if valid).
    """
    size = len(texts)
    canonical: list[str | None] = [None] * size
    reasons: list[str | None] = [None] * size
    if size == 0:
        return canonical, reasons
    texts = texts.cast(pa.large_string())
    pattern = f"^{re.escape(scheme.prefix)}[0-9]{{{scheme.width + 1}}}$"
    shaped = np.asarray(pc.fill_null(pc.match_substring_regex(texts, pattern), False))
    good = np.zeros(size, dtype=np.bool_)
    if shaped.any():
        rows = np.flatnonzero(shaped)
        chosen = pc.take(texts, pa.array(rows))
        digits = _digit_matrix(pc.utf8_slice_codeunits(chosen, len(scheme.prefix)), scheme)
        good[rows] = _check_digits(digits[:, :-1], scheme.algorithm) == digits[:, -1]
    values = texts.to_pylist()
    for i in range(size):
        if good[i]:
            canonical[i] = values[i]
            continue
        try:
            canonical[i] = scheme.parse(values[i]).value
        except ValidationError as exc:
            reasons[i] = exc.reason
    return canonical, reasons


def format_numbers(scheme: CrmNumberScheme, sequences: Sequence[int]) -> ObjectArray:
    """Canonical number text of many sequences at once, as :meth:`CrmNumberScheme.format`
    gives it one by one (check digits computed column-wise).

    Raises:
        ConfigurationError, ValidationError: as ``scheme.format`` for the largest or smallest
            sequence (an exhausted scheme, a sequence below 1).
    """
    values = np.asarray(sequences, dtype=np.int64)
    out = np.empty(len(values), dtype=object)
    if not len(values):
        return out
    for extreme in (int(values.min()), int(values.max())):
        scheme.format(extreme)  # raises exactly as formatting that number would
    width = scheme.width
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((values[:, None] // powers) % 10).astype(np.int8)
    check = _check_digits(digits, scheme.algorithm)
    prefix = np.frombuffer(scheme.prefix.encode("ascii"), dtype=np.uint8)
    raw = np.empty((len(values), len(prefix) + width + 1), dtype=np.uint8)
    raw[:, : len(prefix)] = prefix
    raw[:, len(prefix) : -1] = digits + 48
    raw[:, -1] = check + 48
    out[:] = raw.view(f"S{raw.shape[1]}").ravel().astype(f"U{raw.shape[1]}").tolist()
    return out


def _digit_matrix(texts: pa.Array, scheme: CrmNumberScheme) -> npt.NDArray[np.int8]:
    """The digits of fixed-width ASCII texts as an ``(n, width + 1)`` matrix."""
    width = scheme.width + 1
    compact = pa.concat_arrays([texts.cast(pa.large_binary())])  # offsets from 0
    data = compact.buffers()[2]
    start = int(np.frombuffer(compact.buffers()[1], dtype=np.int64)[0])
    raw = np.frombuffer(data, dtype=np.uint8)[start : start + len(texts) * width]
    return (raw.reshape(len(texts), width) - 48).astype(np.int8)


def _check_digits(payload: npt.NDArray[np.int8], algorithm: CheckAlgorithm) -> npt.NDArray[np.int8]:
    """The check digit of each row of payload digits (as ``CheckAlgorithm.check_digit``)."""
    if algorithm is CheckAlgorithm.DAMM:
        interim = np.zeros(len(payload), dtype=np.int8)
        for column in payload.T:
            interim = _DAMM_TABLE[interim, column]
        return interim
    doubled = np.zeros(len(payload), dtype=np.int64)
    for i, column in enumerate(payload.T[::-1]):
        d = column.astype(np.int64)
        if i % 2 == 0:
            d = d * 2
            d = np.where(d > 9, d - 9, d)
        doubled += d
    return ((10 - doubled % 10) % 10).astype(np.int8)
