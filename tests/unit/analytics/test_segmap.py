"""Segment maps: total, non-overlapping, vectorised lookup."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from crmcore.analytics import DEFAULT_SEGMENT_MAP, SegmentMap, SegmentRule
from crmcore.errors import ConfigurationError

NAMES = {
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose",
    "Hibernating",
    "Lost",
}


def test_default_map_names_every_cell_with_the_eleven_segments():
    cells = list(itertools.product(range(1, 6), repeat=3))
    names = {DEFAULT_SEGMENT_MAP.name(*cell) for cell in cells}
    assert names == NAMES
    assert set(DEFAULT_SEGMENT_MAP.names) == NAMES


def test_default_map_reads_as_documented():
    m = DEFAULT_SEGMENT_MAP
    assert m.name(5, 5, 1) == "Champions"
    assert m.name(5, 1, 5) == "New"
    assert m.name(4, 1, 1) == "Promising"
    assert m.name(3, 3, 3) == "Need Attention"
    assert m.name(1, 5, 5) == "Can't Lose"
    assert m.name(1, 1, 5) == "Lost"
    assert m.name(1, 2, 1) == "Hibernating"
    assert m.name(2, 4, 2) == "At Risk"


def test_vectorised_codes_match_single_lookups_and_mark_unscored():
    cells = np.array(list(itertools.product(range(6), repeat=3)), dtype=np.int8)
    codes = DEFAULT_SEGMENT_MAP.codes(cells[:, 0], cells[:, 1], cells[:, 2])
    for (r, f, m), code in zip(cells.tolist(), codes.tolist(), strict=True):
        if 0 in (r, f, m):
            assert code == -1
        else:
            assert DEFAULT_SEGMENT_MAP.names[code] == DEFAULT_SEGMENT_MAP.name(r, f, m)


def test_a_hole_is_rejected_naming_the_cell():
    with pytest.raises(ConfigurationError, match=r"hole.*\(1, 1, 1\)"):
        SegmentMap([SegmentRule("Top", r=(2, 5))])


def test_an_overlap_is_rejected_naming_both_segments():
    with pytest.raises(ConfigurationError, match=r"overlaps.*'A'.*'B'"):
        SegmentMap([SegmentRule("A"), SegmentRule("B", r=5, f=5, m=5)])


def test_a_box_outside_the_scores_is_rejected():
    with pytest.raises(ConfigurationError, match="outside"):
        SegmentMap([SegmentRule("A", r=(1, 6))])


def test_a_user_map_over_other_shapes_works():
    user = SegmentMap([SegmentRule("Good", r=(2, 3)), SegmentRule("Bad", r=1)], shape=(3, 2, 2))
    assert user.name(3, 1, 2) == "Good" and user.name(1, 2, 2) == "Bad"
