"""Fusion arithmetic on known inputs."""

from __future__ import annotations

import math

import pytest

from gateway.rerank.fusion import FusionSpec, fuse, normalized, ranks


def test_normalized_minmax_and_zscore() -> None:
    assert normalized([1.0, 3.0, 2.0], "minmax") == [0.0, 1.0, 0.5]
    assert normalized([5.0, 5.0], "minmax") == [0.0, 0.0]
    z = normalized([1.0, 2.0, 3.0], "zscore")
    assert z == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert normalized([], "zscore") == []


def test_ranks_highest_first_ties_in_input_order() -> None:
    assert ranks([0.1, 0.9, 0.5, 0.9]) == [4, 1, 3, 2]


def test_replace_keeps_model_scores() -> None:
    out = fuse([2.0, None, -1.0], [10.0, 9.0, 8.0], FusionSpec())
    assert [f.score for f in out] == [2.0, None, -1.0]
    assert out[0].first_stage == 10.0


def test_linear_minmax_weighted_sum() -> None:
    # model min-max: [1, 0, 0.5]; first stage min-max: [1, 0.5, 0]
    out = fuse([4.0, 0.0, 2.0], [10.0, 6.0, 2.0], FusionSpec(use="linear", weight=0.7))
    assert [f.score for f in out] == pytest.approx([1.0, 0.15, 0.35])
    assert out[1].model_norm == 0.0
    assert out[1].first_stage_norm == 0.5


def test_linear_zscore_and_missing_first_stage_counts_as_lowest() -> None:
    out = fuse([1.0, 3.0], [None, 4.0], FusionSpec(use="linear", normalize="zscore", weight=0.5))
    # first stage [4 (floor), 4] is constant → 0; model z-scores [-1, 1]
    assert [f.score for f in out] == pytest.approx([-0.5, 0.5])


def test_rrf_on_known_ranks() -> None:
    out = fuse([0.1, 0.3, 0.2], [3.0, 2.0, 1.0], FusionSpec(use="rrf", rrf_k=60))
    assert out[0].score == pytest.approx(1 / 63 + 1 / 61)
    assert out[1].score == pytest.approx(1 / 61 + 1 / 62)
    assert out[2].score == pytest.approx(1 / 62 + 1 / 63)
    assert (out[1].model_rank, out[1].first_stage_rank) == (1, 2)


def test_min_score_drops_below_and_keeps_unscored() -> None:
    spec = FusionSpec(use="rrf", rrf_k=1, min_score=0.0)
    out = fuse([-1.0, None, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0], spec)
    assert [f.dropped for f in out] == [True, False, False, False]
    assert out[0].score is None and out[1].score is None
    # ranks are among the hits that take part: [2.0, 1.0] at first-stage ranks 1, 2
    assert out[2].score == pytest.approx(1 / 2 + 1 / 2)
    assert out[3].score == pytest.approx(1 / 3 + 1 / 3)
