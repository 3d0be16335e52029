"""Report figures on a scripted event log whose answers are worked out by hand."""

from __future__ import annotations

import math

import pytest

from gateway.experiments import stats as st
from gateway.experiments.report import binomial_two_sided_p, build_report, percentile


def imp(
    sid: str, variant: str, latency: float, teams: list[str] | None = None, **extra: object
) -> dict[str, object]:
    hits = [["docs", f"d{i}"] for i in range(1, 6)]
    return {
        "type": "impression",
        "search_id": sid,
        "variant": variant,
        "latency_ms": latency,
        "hits": hits,
        "teams": teams,
        **extra,
    }


def arm_events(
    variant: str, searches: int, clicked: int, position: int = 1
) -> list[dict[str, object]]:
    """``searches`` impressions of ``variant``, the first ``clicked`` of them clicked once."""
    out: list[dict[str, object]] = [imp(f"{variant}{i}", variant, 10) for i in range(searches)]
    out += [click(f"{variant}{i}", 1.0, position=position) for i in range(clicked)]
    return out


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


def test_ab_differences_against_control() -> None:
    # 100 searches an arm; 30 clicked at rank 1 in the control, 45 in the treatment.
    events = arm_events("baseline", 100, 30) + arm_events("rerank", 100, 45)
    report = build_report(events, 10, control="baseline", treatment="rerank")
    ab = report["ab"]
    assert ab["control"] == "baseline" and ab["control_searches"] == 100
    arm = ab["arms"]["rerank"]
    ctr = arm["ctr_at_k"]
    assert (ctr["control"], ctr["treatment"]) == (0.30, 0.45)
    assert ctr["diff"] == pytest.approx(0.15)
    expected = st.two_proportions(45, 100, 30, 100)
    assert ctr["ci95"] == [expected.low, expected.high] and expected.low > 0
    # Pooled z by hand: p = 0.375, se = sqrt(0.375 · 0.625 · 0.02) = 0.068465, z = 2.1909.
    assert ctr["p_value"] == pytest.approx(0.02846, abs=1e-4)
    assert arm["verdict"] == "better"
    # Abandonment is the complement here: the same interval, mirrored.
    ab_diff = arm["abandonment"]
    assert ab_diff["diff"] == pytest.approx(-0.15)
    assert ab_diff["ci95"] == pytest.approx([-expected.high, -expected.low])
    # MRR: reciprocal ranks are 1 for clicked searches, 0 otherwise.
    assert arm["mrr"]["diff"] == pytest.approx(0.15)
    assert arm["mrr"]["ci95"][0] < 0.15 < arm["mrr"]["ci95"][1]
    # (1.96 · sqrt(2 · 0.375 · 0.625) + 0.8416 · sqrt(0.2475 + 0.21))² / 0.15² = 162.3 → 163.
    assert arm["needed_per_arm"] == 163 and arm["low_sample"] is True


@pytest.mark.parametrize(
    ("searches", "control_clicks", "clicks", "verdict", "low_sample"),
    [
        (200, 100, 60, "worse", False),  # 50% → 30%: p < 0.001, 93 per arm needed
        (20, 5, 7, "not yet known", True),
        (20, 5, 5, "not yet known", True),  # no difference: no size would detect it
    ],
)
def test_ab_verdicts(
    searches: int, control_clicks: int, clicks: int, verdict: str, low_sample: bool
) -> None:
    events = arm_events("baseline", searches, control_clicks) + arm_events(
        "rerank", searches, clicks
    )
    arm = build_report(events, 10, control="baseline")["ab"]["arms"]["rerank"]
    assert (arm["verdict"], arm["low_sample"]) == (verdict, low_sample)


def test_no_ab_comparison_without_control_searches() -> None:
    assert build_report([], 10, control="baseline")["ab"] is None
    assert build_report(arm_events("rerank", 5, 1), 10, control="baseline")["ab"] is None


def test_override_searches_are_counted_apart() -> None:
    events = [
        imp("s1", "baseline", 10),
        imp("s2", "rerank", 10),
        imp("o1", "rerank", 10, override=True),
        imp("o2", "rerank", 10, override=True),
        imp("o3", "baseline", 10, override=True),
        click("o1", 1.0, position=1),
        click("s2", 1.0, position=1),
    ]
    report = build_report(events, 10, control="baseline")
    assert report["overrides"] == {"baseline": 1, "rerank": 2}
    assert report["variants"]["rerank"]["searches"] == 1
    assert report["variants"]["rerank"]["clicks"] == 1  # o1's click is not the experiment's
    assert report["variants"]["baseline"]["searches"] == 1
    assert report["unattributed_clicks"] == 0


def test_interleaving_verdict_and_arms() -> None:
    teams = ["A", "B", "A", "B", "A"]
    events: list[dict[str, object]] = []
    for n in range(20):
        events.append(imp(f"i{n}", "interleave", 5, teams))
        events.append(click(f"i{n}", 1, position=2 if n < 17 else 1))  # 17 wins, 3 losses
    il = build_report(events, 10, control="baseline", treatment="rerank")["interleaving"]
    assert (il["control"], il["treatment"]) == ("baseline", "rerank")
    assert (il["wins"], il["losses"], il["ties"]) == (17, 3, 0)
    assert il["p_value"] == pytest.approx(binomial_two_sided_p(17, 20))
    assert il["p_value"] < 0.05
    assert il["verdict"] == "better"
    assert il["needed_decisive"] == st.win_share_size(17, 3)
