"""The report page renders its figures itself: only the active mode's sections, numbers in HTML."""

from __future__ import annotations

import re
from typing import Any

from gateway.experiments.page import render_page
from gateway.experiments.report import build_report


def arm(
    variant: str, searches: int, clicked: int, prefix: str = "", **extra: object
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "type": "impression",
            "search_id": f"{prefix}{variant}{i}",
            "variant": variant,
            "latency_ms": 10.0 + i,
            "hits": [["docs", f"d{j}"] for j in range(10)],
            "teams": ["A", "B"] * 5 if variant == "interleave" else None,
            **extra,
        }
        for i in range(searches)
    ]
    out += [
        {"type": "click", "search_id": f"{prefix}{variant}{i}", "position": 2}
        for i in range(clicked)
    ]
    return out


def page(mode: str, events: list[dict[str, Any]]) -> str:
    report = build_report(events, 10, control="baseline", treatment="rerank")
    report.update(experiment="exp-7", mode=mode, events_dropped=0)
    return render_page(report)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_ab_page_has_verdict_intervals_and_warning() -> None:
    events = (
        arm("baseline", 100, 30)
        + arm("rerank", 100, 45)
        + arm("rerank", 3, 1, "qa-", override=True)
    )
    html = page("ab", events)
    text = text_of(html)
    assert "rerank vs baseline: treatment better" in text
    assert 'class="verdict better"' in html
    # CTR@10 0.30 → 0.45: +15.0 pts, its Newcombe interval, pooled z p = 0.028.
    assert re.search(r"CTR@10 \+15\.0 pts \(95% CI \+1\.\d pts to \+27\.\d pts\), p = 0\.028", text)
    assert "30.0% 45.0% +15.0 pts" in text  # the differences table, CTR row
    assert "MRR 0.150 0.225 +0.075" in text  # first click at rank 2: rr 1/2
    assert "Abandonment 70.0% 55.0% −15.0 pts" in text
    assert "Low sample: 100 searches in the smaller arm; about 163 searches per arm" in text
    assert "override searches (not counted in the experiment): rerank 3" in text
    assert 'id="variants"' in html
    for other in ("Interleaving", "Shadow"):
        assert other not in text


def test_interleave_page_shows_only_interleaving() -> None:
    events = arm("interleave", 12, 9)  # every click at rank 2: team B; 3 searches unclicked
    events += [{"type": "click", "search_id": f"interleave{i}", "position": 1} for i in (0, 1)]
    text = text_of(page("interleave", events))
    assert "Interleaving: rerank (team B) against baseline (team A)" in text
    # interleave0 and interleave1 also have a click on team A: ties.
    assert "7 wins, 0 losses, 2 ties" in text
    assert "wins (rerank) losses (baseline) ties p-value 7 0 2 0.016" in text
    assert "rerank vs baseline: treatment better" in text
    assert "Per variant" not in text and "95% CI" not in text and "Shadow" not in text


def test_shadow_and_off_pages() -> None:
    shadow = [
        {
            "type": "shadow",
            "variant": "rerank",
            "status": "full",
            "ms": 12,
            "overlap": 0.5,
            "tau": 0.25,
            "first_base_pos": 3,
        }
    ]
    text = text_of(page("shadow", shadow))
    assert "rerank 1 1 0.500 0.250 3.00" in text
    assert "Verdict" not in text and "Interleaving" not in text
    assert "Experiments are off" in text_of(page("off", []))


def test_no_control_searches_yet() -> None:
    text = text_of(page("ab", arm("rerank", 5, 1)))
    assert "Verdict: not yet known" in text
