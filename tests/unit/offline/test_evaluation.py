"""The pure parts of gateway.offline.evaluation: qrels, variants, runs, metrics on a tiny set."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.offline.evaluation import as_run, evaluate, parse_variant, read_qrels, table


def test_read_qrels_skips_the_header(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t1\nq2\td3\t2\n")
    assert read_qrels(path) == {"q1": {"d1": 1, "d2": 1}, "q2": {"d3": 2}}


def test_parse_variant() -> None:
    assert parse_variant("rerank") == ("rerank", None)
    assert parse_variant("w20:window=20") == ("w20", 20)


def test_metrics_follow_the_served_order_not_the_scores() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d9": 1}}
    # Equal model scores: the served order (d2 before d1) must be what is measured.
    served = {"q1": [("d2", 0.5, {}), ("d1", 0.5, {})], "q2": [("d9", 3.0, {})]}
    agg, per_query = evaluate(qrels, as_run(served))
    assert agg["RR@10"] == pytest.approx((1 / 2 + 1) / 2)
    assert agg["R@100"] == 1.0
    assert per_query["q2"] == 1.0
    assert per_query["q1"] == pytest.approx(1 / 1.5849625007211563)  # 1 / log2(3)
    assert "| baseline | " in table({"baseline": agg})
