"""Fusion arithmetic: normalizers, RRF and linear combination, as Elasticsearch computes them."""

from __future__ import annotations

import pytest

from gateway.retrievers import fuse


def test_minmax_and_l2_follow_elasticsearch_edge_cases() -> None:
    assert fuse.normalize([2.0, 4.0, 3.0], "minmax") == [0.0, 1.0, 0.5]
    assert fuse.normalize([3.0, 3.0], "minmax") == [3.0, 3.0]  # max == min: every score is min
    assert fuse.normalize([3.0, 4.0], "l2_norm") == pytest.approx([0.6, 0.8])
    assert fuse.normalize([0.0, 0.0], "l2_norm") == [0.0, 0.0]  # norm < 1e-6: unchanged
    assert fuse.normalize([5.0], "none") == [5.0]


def test_rrf_sums_reciprocal_ranks_within_the_window() -> None:
    a = [("x", 9.0), ("y", 8.0), ("z", 7.0)]
    b = [("z", 0.9), ("x", 0.8)]
    got = fuse.rrf([a, b], rank_constant=1, window=2)
    # window 2: z counts only from b (rank 1), y from a (rank 2); x from both.
    assert [(r.key, r.score, r.rank) for r in got] == [("x", 1 / 2 + 1 / 3, 1), ("z", 1 / 2, 2)]


def test_linear_adds_zero_for_a_missing_list_and_cuts_at_min_score() -> None:
    a = [("x", 10.0), ("y", 0.0)]
    b = [("y", 2.0)]
    got = fuse.linear([a, b], [1.0, 3.0], ["minmax", "none"], window=5)
    assert [(r.key, r.score) for r in got] == [("y", 6.0), ("x", 1.0)]
    cut = fuse.linear([a, b], [1.0, 3.0], ["minmax", "none"], window=5, min_score=2.0)
    assert [r.key for r in cut] == ["y"]
