"""The mining rule of docs/SPEC.md section 5, table-driven."""
from __future__ import annotations

import numpy as np
import pytest

from judgemine.transforms.mine.rule import NoCandidates, cyclical_positions, passes_filter, query_rng, select_negatives


@pytest.mark.parametrize("n,m,step,expected", [
    (50, 10, 5, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]),
    (12, 10, 5, [0, 5, 10, 1, 6, 11, 2, 7, 3, 8]),
    (10, 10, 5, [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]),
    (7, 3, 2, [0, 2, 4]),
    (3, 10, 5, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]),   # 0 < n < m: all n in order, then cyclically
    (1, 4, 5, [0, 0, 0, 0]),
    (0, 10, 5, []),
])
def test_cyclical_positions(n, m, step, expected):
    assert cyclical_positions(n, m, step) == expected


def test_filter_keeps_a_score_exactly_at_the_threshold():
    # 0.75 - 0.25 = 0.5 exactly in binary floating point.
    assert passes_filter(0.5, 0.75, 0.25)
    assert not passes_filter(np.nextafter(0.5, 1.0), 0.75, 0.25)
    assert passes_filter(np.nextafter(0.5, 0.0), 0.75, 0.25)


def test_false_negatives_are_dropped_before_sampling():
    scores = [0.9, 0.2, 0.85, 0.1, 0.3, 0.05, 0.7]
    sel = select_negatives(scores, pos_score=0.8, m=3, beta=0.1, step=2, rng=query_rng(0, "q"))
    # kept (s <= 0.7): ranks 1, 3, 4, 5, 6 -> cyclical positions 0, 2, 4 of the kept list
    assert sel.positions == (1, 4, 6) and not sel.fallback and sel.kept_after_filter == 5


def test_fewer_kept_than_m_repeats_in_order():
    sel = select_negatives([0.9, 0.1, 0.95, 0.2], pos_score=0.5, m=5, beta=0.01, step=5, rng=query_rng(0, "q"))
    assert sel.positions == (1, 3, 1, 3, 1) and not sel.fallback


def test_nothing_kept_falls_back_to_seeded_random_candidates():
    scores = [0.99] * 6
    a = select_negatives(scores, 0.5, m=4, beta=0.01, step=5, rng=query_rng(7, "q1"))
    b = select_negatives(scores, 0.5, m=4, beta=0.01, step=5, rng=query_rng(7, "q1"))
    assert a.fallback and a.kept_after_filter == 0
    assert a.positions == b.positions and len(set(a.positions)) == 4
    assert all(0 <= p < 6 for p in a.positions)
    assert list(a.positions) == query_rng(7, "q1").permutation(6).tolist()[:4]


def test_fallback_with_fewer_candidates_than_m_cycles_them():
    sel = select_negatives([0.9, 0.95], 0.5, m=5, beta=0.01, step=5, rng=query_rng(0, "q"))
    assert sel.fallback and sorted(set(sel.positions)) == [0, 1] and len(sel.positions) == 5


def test_no_candidates_is_an_error_not_an_empty_row():
    with pytest.raises(NoCandidates):
        select_negatives([], 0.5, m=3, beta=0.01, step=5, rng=query_rng(0, "q"))
