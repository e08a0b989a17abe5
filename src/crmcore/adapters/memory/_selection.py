"""Which rows of a batch a history stores: set-wise duplicate detection.

The rule is :meth:`HistoryTable.add`'s, applied in batch order: a row whose
``(source, external_ref)`` is already stored, or appeared earlier in the batch, is skipped
("already recorded"); then a kept row whose id is stored, or is the id of an earlier kept
row, is a duplicate ("id taken"). Both checks are vectorised: references by their 64-bit
hash in the store's index and grouped within the batch (equal hashes are confirmed on the
text), ids by their hash in the store's index and by sorting the batch's ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from crmcore.adapters.memory._columns import Int64Array
from crmcore.adapters.memory._encoders import Encoded
from crmcore.adapters.memory._hashing import fnv1a_many, id_hash_many, ref_hash_many
from crmcore.adapters.memory._text import encode_texts

if TYPE_CHECKING:
    from crmcore.adapters.memory._history import HistoryTable

__all__ = ["select"]

BoolArray = npt.NDArray[np.bool_]


def _present(values: npt.NDArray[np.object_]) -> Int64Array:
    items = values.tolist()
    present = np.fromiter((v is not None for v in items), dtype=bool, count=len(items))
    out: Int64Array = present.nonzero()[0]
    return out


def _stored_refs(
    history: HistoryTable[Any],
    sources: list[Any],
    buf: Any,
    starts: Int64Array,
    lengths: Int64Array,
    text_hashes: Any,
) -> BoolArray:
    """Whether each reference is stored (none with a source the store never saw is)."""
    codes_of = history.dictionaries["source"].codes
    lookup = {s: codes_of.get(s, -1) for s in dict.fromkeys(sources)}
    codes = np.fromiter(map(lookup.__getitem__, sources), np.int64, len(sources))
    known = (codes >= 0).nonzero()[0]
    stored = np.zeros(len(sources), dtype=bool)
    if known.size == 0:
        return stored
    cols = history.log.columns
    column_source, column_len = cols["source"], cols["external_ref_len"]
    q_codes, q_lengths, q_starts = codes[known], lengths[known], starts[known]

    def same(queries: Int64Array, rows: Int64Array) -> BoolArray:
        ok: BoolArray = (column_source[rows] == q_codes[queries]) & (
            column_len[rows] == q_lengths[queries]
        )
        for j in ok.nonzero()[0].tolist():
            q = int(queries[j])
            start = int(q_starts[q])
            wanted = buf[start : start + int(q_lengths[q])].tobytes()
            ok[j] = history.ref_bytes(int(rows[j])) == wanted
        return ok

    found = history.refs.find(ref_hash_many(q_codes, text_hashes[known]), same)
    stored[known[found >= 0]] = True
    return stored


def _repeated(keys: list[tuple[Any, Any]], hashes: Any) -> BoolArray:
    """Whether each key repeats an earlier one (grouped by hash, confirmed on the keys)."""
    repeated = np.zeros(len(keys), dtype=bool)
    if not keys:
        return repeated
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    firsts = first[inverse.reshape(-1)]
    candidates = (firsts != np.arange(len(keys))).nonzero()[0]
    if all(keys[i] == keys[int(firsts[i])] for i in candidates.tolist()):
        repeated[candidates] = True
        return repeated
    seen: set[tuple[Any, Any]] = set()  # a true 64-bit collision: exact, one by one
    for i, key in enumerate(keys):
        repeated[i] = key in seen
        seen.add(key)
    return repeated


def select(history: HistoryTable[Any], encoded: Encoded, limit: int) -> tuple[Int64Array, int]:
    """The positions (of the first ``limit``) to store, and the first position whose id is
    taken (``-1`` if none is)."""
    refs = np.asarray(encoded.external_ref, dtype=object)[:limit]
    skip = np.zeros(limit, dtype=bool)
    has = _present(refs)
    if has.size:
        data, lengths = encode_texts(refs[has])
        buf = np.frombuffer(data, dtype=np.uint8)
        starts = np.cumsum(lengths) - lengths
        text_hashes = fnv1a_many(buf, starts, lengths)
        sources = np.asarray(encoded.source, dtype=object)[has].tolist()
        stored = _stored_refs(history, sources, buf, starts, lengths, text_hashes)
        skip[has[stored]] = True
        rest = (~stored).nonzero()[0]
        local = {s: i for i, s in enumerate(dict.fromkeys(sources))}
        codes = np.fromiter((local[sources[i]] for i in rest.tolist()), np.int64, len(rest))
        keys = [(sources[i], refs[has[i]]) for i in rest.tolist()]
        repeated = _repeated(keys, ref_hash_many(codes, text_hashes[rest]))
        skip[has[rest[repeated]]] = True
    kept: Int64Array = (~skip).nonzero()[0]
    high = np.asarray(encoded.id_high, dtype=np.uint64)[kept]
    low = np.asarray(encoded.id_low, dtype=np.uint64)[kept]
    cols = history.log.columns
    column_high, column_low = cols["id_high"], cols["id_low"]

    def same(queries: Int64Array, rows: Int64Array) -> BoolArray:
        out: BoolArray = (column_high[rows] == high[queries]) & (column_low[rows] == low[queries])
        return out

    taken = kept[history.ids.find(id_hash_many(high, low), same) >= 0]
    order = np.lexsort((low, high))
    equal = (high[order][1:] == high[order][:-1]) & (low[order][1:] == low[order][:-1])
    again = kept[order[1:][equal]]
    clashes = np.concatenate((taken, again))
    return kept, int(clashes.min()) if clashes.size else -1
