"""Report figures on a scripted event log whose answers are worked out by hand."""

from __future__ import annotations

import math

import pytest

from gateway.report import binomial_two_sided_p, build_report, percentile


def imp(
    sid: str, variant: str, latency: float, teams: list[str] | None = None
) -> dict[str, object]:
    hits = [["docs", f"d{i}"] for i in range(1, 6)]
    return {
        "type": "impression",
        "search_id": sid,
        "variant": variant,
        "latency_ms": latency,
        "hits": hits,
        "teams": teams,
    }


def click(sid: str, ts: float, **where: object) -> dict[str, object]:
    return {"type": "click", "search_id": sid, "ts": ts, **where}


def test_binomial_p_value_matches_known_values() -> None:
    assert binomial_two_sided_p(0, 0) == 1.0
    assert binomial_two_sided_p(5, 10) == 1.0
    assert binomial_two_sided_p(0, 5) == pytest.approx(2 / 32)
    assert binomial_two_sided_p(9, 10) == pytest.approx(
        22 / 1024
    )  # scipy.stats.binomtest: 0.021484375
    assert binomial_two_sided_p(60, 100) == pytest.approx(0.056887, abs=1e-6)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_ab_figures() -> None:
    k = 3
    events = [
        # baseline: 4 searches. s1 clicked at rank 2 then 1 (first click: rank 2), s2 at rank 5
        # (beyond k), s3 and s4 abandoned.
        imp("s1", "baseline", 10),
        imp("s2", "baseline", 20),
        imp("s3", "baseline", 30),
        imp("s4", "baseline", 40),
        click("s1", 1.0, position=2),
        click("s1", 2.0, id="d1"),
        click("s2", 1.0, id="d5"),
        # rerank: 2 searches, both clicked at rank 1 (one by id with its index).
        imp("r1", "rerank", 100),
        imp("r2", "rerank", 300),
        click("r1", 1.0, position=1),
        click("r2", 1.0, id="d1", index="docs"),
        # clicks that cannot be attributed: unknown search, unknown doc, wrong index.
        click("nope", 1.0, position=1),
        click("s3", 1.0, id="zzz"),
        click("s4", 1.0, id="d1", index="other"),
    ]
    report = build_report(events, k)
    base, rr = report["variants"]["baseline"], report["variants"]["rerank"]
    assert base["searches"] == 4 and base["clicks"] == 3
    assert base["ctr_at_k"] == pytest.approx(1 / 4)  # only s1 has a click within k
    assert base["mrr"] == pytest.approx((1 / 2 + 1 / 5 + 0 + 0) / 4)
    assert base["abandonment"] == pytest.approx(2 / 4)
    assert base["latency_ms"] == {"p50": 20.0, "p99": 40.0}
    assert rr["searches"] == 2 and rr["ctr_at_k"] == 1.0 and rr["mrr"] == 1.0
    assert rr["abandonment"] == 0.0
    assert rr["latency_ms"] == {"p50": 100.0, "p99": 300.0}
    assert report["unattributed_clicks"] == 3


def test_interleaving_wins_losses_ties() -> None:
    teams = ["A", "B", "A", "B", "A"]
    events = [imp(f"i{n}", "interleave", 5, teams) for n in range(6)]
    events += [
        click("i0", 1, position=2),  # B → win
        click("i1", 1, id="d4"),  # B (rank 4) → win
        click("i2", 1, position=1),
        click("i2", 2, position=3),  # A, A → loss
        click("i3", 1, position=1),
        click("i3", 2, position=2),  # A, B → tie
        # i4: no clicks → not counted; i5: click beyond the page → no team → tie (0 = 0)
        click("i5", 1, position=9),
    ]
    il = build_report(events, 10)["interleaving"]
    assert (il["wins"], il["losses"], il["ties"]) == (2, 1, 2)
    assert il["p_value"] == pytest.approx(binomial_two_sided_p(2, 3)) == 1.0


def test_shadow_figures() -> None:
    events = [
        {
            "type": "shadow",
            "variant": "rerank",
            "status": "full",
            "ms": 10,
            "overlap": 0.8,
            "tau": 0.5,
            "first_base_pos": 1,
        },
        {
            "type": "shadow",
            "variant": "rerank",
            "status": "full",
            "ms": 30,
            "overlap": 0.4,
            "tau": -0.1,
            "first_base_pos": 3,
        },
        {"type": "shadow", "variant": "rerank", "status": "timeout", "ms": 2000},
    ]
    shadow = build_report(events, 10)["shadow"]["rerank"]
    assert shadow["searches"] == 3 and shadow["measured"] == 2
    assert shadow["statuses"] == {"full": 2, "timeout": 1}
    assert shadow["overlap_at_k"] == pytest.approx(0.6)
    assert shadow["kendall_tau"] == pytest.approx(0.2)
    assert shadow["first_baseline_hit_rank"] == pytest.approx(2.0)
    assert math.isclose(shadow["latency_ms"]["p50"], 30)
