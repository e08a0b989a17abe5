"""Quantile and threshold scores: DESIGN §4 formulas, tie policies, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore.analytics import ThresholdScale
from crmcore.analytics._scores import ordinal_scores, shared_scores
from crmcore.errors import ValidationError

values_lists = st.lists(
    st.integers(-50, 50) | st.integers(-(2**40), 2**40), min_size=1, max_size=80
)
ks = st.integers(2, 9)
directions = st.sampled_from(["higher", "lower"])


def rank_min_scores(values: list[int], k: int, direction: str) -> list[int]:
    """DESIGN §4 literally: 1 + floor(k * (rank_min - 1) / n), rank_min = 1 + #strictly worse."""
    n = len(values)
    out = []
    for v in values:
        worse = sum((w < v) if direction == "higher" else (w > v) for w in values)
        out.append(1 + (k * worse) // n)
    return out


@given(values_lists, ks, directions)
def test_shared_scores_equal_the_rank_min_formula(values, k, direction):
    scores, cuts = shared_scores(np.array(values, dtype=np.int64), k, direction)
    assert scores.tolist() == rank_min_scores(values, k, direction)
    assert len(cuts) == k - 1


@given(st.lists(st.integers(0, 10**6) | st.integers(-(2**62), 2**62), min_size=1, max_size=60), ks)
def test_shared_scores_use_selection_for_wide_ranges_too(values, k):
    array = np.array(values, dtype=np.int64)
    for direction in ("higher", "lower"):
        scores, _ = shared_scores(array, k, direction)
        assert scores.tolist() == rank_min_scores(values, k, direction)


@given(values_lists, ks, directions)
def test_shared_scores_are_in_range_monotonic_and_tie_equal(values, k, direction):
    array = np.array(values, dtype=np.int64)
    scores, _ = shared_scores(array, k, direction)
    assert scores.min() >= 1 and scores.max() <= k
    sign = 1 if direction == "higher" else -1
    order = np.argsort(sign * array, kind="stable")
    assert (np.diff(scores[order].astype(int)) >= 0).all()
    for value in set(values):
        assert len(set(scores[array == value].tolist())) == 1


def ordinal_reference(values: list[int], k: int, direction: str, numbers: list[int]) -> list[int]:
    n = len(values)
    key = [((v if direction == "higher" else -v), numbers[i], i) for i, v in enumerate(values)]
    out = [0] * n
    for row_number, (_, _, i) in enumerate(sorted(key), start=1):
        out[i] = 1 + (k * (row_number - 1)) // n
    return out


@given(st.data(), values_lists, ks, directions)
def test_ordinal_scores_follow_row_number_and_have_equal_groups(data, values, k, direction):
    numbers = data.draw(st.permutations(range(len(values))))
    scores, _ = ordinal_scores(
        np.array(values, dtype=np.int64), k, direction, np.array(numbers, dtype=np.int64)
    )
    assert scores.tolist() == ordinal_reference(values, k, direction, list(numbers))
    sizes = np.bincount(scores, minlength=k + 1)[1:]
    assert sizes.max() - sizes.min() <= 1


def test_empty_input_gives_no_scores():
    scores, cuts = shared_scores(np.zeros(0, dtype=np.int64), 5, "higher")
    assert len(scores) == 0 and len(cuts) == 0


def test_recency_cuts_are_reported_in_days():
    recency = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], dtype=np.int64)
    scores, cuts = shared_scores(recency, 5, "lower")
    assert cuts.tolist() == [9, 7, 5, 3]
    assert scores.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_threshold_scale_scores_both_directions():
    scale = ThresholdScale((30, 90, 180, 365))
    days = np.array([0, 30, 31, 90, 365, 366], dtype=np.int64)
    assert scale.scores(days, "lower").tolist() == [5, 5, 4, 4, 2, 1]
    assert [scale.score_one(int(d), "lower") for d in days] == [5, 5, 4, 4, 2, 1]
    counts = np.array([0, 30, 90, 400], dtype=np.int64)
    assert scale.scores(counts, "higher").tolist() == [1, 2, 3, 5]
    assert [scale.score_one(int(c), "higher") for c in counts] == [1, 2, 3, 5]


@pytest.mark.parametrize("bounds", [(), (3, 3), (5, 1), (1.5,)])
def test_threshold_scale_rejects_bad_bounds(bounds):
    with pytest.raises(ValidationError, match="bounds"):
        ThresholdScale(bounds)


@pytest.mark.parametrize("k", [1, 0, 101, True, 2.0])
def test_k_must_be_a_sensible_integer(k):
    with pytest.raises(ValidationError, match="k"):
        shared_scores(np.array([1, 2], dtype=np.int64), k, "higher")
