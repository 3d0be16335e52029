"""Canary of a registered ranker on scripted experiments: advance, promote, roll back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.cli import main
from gateway.experiments.report import build_report
from gateway.learning.canary import Canary, StopRule, two_proportion_p, verdict
from gateway.learning.ranker import train_linear
from gateway.learning.registry import Registry, RegistryError


def registry_with_two(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path)
    rng = np.random.default_rng(0)
    for _ in range(2):
        model = train_linear(rng.normal(size=(20, 2)), [0, 1] * 10, [10, 10], ("a", "b"))
        registry.register("ltr", model, data_window={}, metrics={})
    registry.set_serving("ltr", "r1", action="promote")
    return registry


def shadow_events(n: int, late: int = 0) -> list[dict[str, Any]]:
    return [
        {"type": "shadow", "search_id": f"s{i}", "variant": "candidate",
         "status": "timeout" if i < late else "full", "ms": 5.0, "overlap": 0.8, "tau": 0.5}
        for i in range(n)
    ]  # fmt: skip


def interleaved(wins: int, losses: int, ties: int = 0) -> list[dict[str, Any]]:
    """Searches whose single click lands on team B (a win), team A (a loss), or none."""
    out: list[dict[str, Any]] = []
    for i, team in enumerate(["B"] * wins + ["A"] * losses + [""] * ties):
        sid = f"i{i}"
        out.append(
            {"type": "impression", "search_id": sid, "variant": "interleave",
             "mode": "interleave", "latency_ms": 1.0, "hits": [["p", "a"], ["p", "b"]],
             "teams": ["A", "B"]}
        )  # fmt: skip
        if team:
            out.append({"type": "click", "search_id": sid, "position": 1 if team == "A" else 2})
    return out


def test_shadow_advances_then_interleaving_promotes(tmp_path: Path) -> None:
    registry = registry_with_two(tmp_path)
    canary = Canary(registry, "ltr")
    rule = StopRule(shadow_min=50, min_decisive=30, alpha=0.05)
    canary.start("r2", rule)
    shadow = canary.experiment_settings("papers", "papers-ltr")
    assert shadow["mode"] == "shadow" and shadow["name"].startswith("canary-ltr-r2-shadow-")
    assert canary.step(build_report(shadow_events(49), 10)).action == "continue"
    assert canary.step(build_report(shadow_events(50), 10)).action == "advance"
    section = canary.experiment_settings("papers", "papers-ltr")
    assert section["mode"] == "interleave"
    assert section["variants"][1] == {
        "name": "candidate", "rerank": True, "profile": "papers-ltr", "share": 1
    }  # fmt: skip
    # 20 wins / 8 losses: p = 0.036 but only 28 decisive searches (< 30): continue.
    assert canary.step(build_report(interleaved(20, 8), 10)).action == "continue"
    decision = canary.step(build_report(interleaved(24, 8, ties=5), 10))
    assert decision.action == "promote" and decision.p_value is not None
    assert decision.p_value < 0.05
    assert registry.serving("ltr") == "r2"
    state = canary.state()
    assert state is not None and state["stage"] == "promoted" and state["previous"] == "r1"
    assert canary.experiment_settings("papers", "papers-ltr") == {}
    actions = [j["action"] for j in registry.journal("ltr")]
    assert actions[-4:] == ["canary_start", "canary_advance", "promote", "canary_promote"]
    # A promoted canary can be undone by the journal's previous revision.
    registry.set_serving("ltr", state["previous"], action="rollback", reason="by hand")
    assert registry.serving("ltr") == "r1"


def test_a_losing_or_undecided_candidate_is_rolled_back(tmp_path: Path) -> None:
    registry = registry_with_two(tmp_path)
    canary = Canary(registry, "ltr")
    canary.start("r2", StopRule(shadow_min=10, min_decisive=20))
    with pytest.raises(ValueError, match="is running"):
        canary.start("r2", StopRule())
    canary.step(build_report(shadow_events(10), 10))
    decision = canary.step(build_report(interleaved(5, 25), 10))
    assert decision.action == "rollback"
    assert registry.serving("ltr") == "r1"  # unchanged
    with pytest.raises(RegistryError, match="not in the registry"):
        Canary(registry, "ltr").start("r9", StopRule())
    # A second canary: too slow in shadow → rolled back before any user saw it. Its
    # experiment (and event stream) is not the first one's.
    first = canary.experiment_settings("s", "c")  # over: nothing to run
    assert first == {}
    before = (canary.state() or {})["run"]
    canary.start("r2", StopRule(shadow_min=10, max_error_share=0.1))
    assert (canary.state() or {})["run"] != before
    assert canary.step(build_report(shadow_events(10, late=2), 10)).action == "rollback"
    # A third: interleaving that never decides within the budget.
    canary.start("r2", StopRule(shadow_min=1, max_searches=40))
    canary.step(build_report(shadow_events(1), 10))
    decision = canary.step(build_report(interleaved(11, 10, ties=20), 10))
    assert decision.action == "rollback" and "no decision" in decision.reason
    assert registry.serving("ltr") == "r1"


def test_ab_stage_and_its_test() -> None:
    # 60/200 vs 90/200 clicks: z = 3.09, two-sided p = 0.0020 (two-proportion z-test).
    assert two_proportion_p(60, 200, 90, 200) == pytest.approx(0.00199, abs=1e-4)
    assert two_proportion_p(0, 0, 1, 1) == 1.0
    report = {"variants": {"serving": {"searches": 200, "ctr_at_k": 0.3},
                           "candidate": {"searches": 200, "ctr_at_k": 0.45}}}  # fmt: skip
    rule = StopRule(live="ab", min_decisive=100)
    got = verdict("ab", report, rule, serving="serving", candidate="candidate")
    assert got.action == "promote"
    swapped = {"variants": {"serving": report["variants"]["candidate"],
                            "candidate": report["variants"]["serving"]}}  # fmt: skip
    assert verdict("ab", swapped, rule, serving="serving", candidate="candidate").action == (
        "rollback"
    )


def test_canary_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry_with_two(tmp_path)
    base = ["canary", "--registry", str(tmp_path), "--name", "ltr"]
    assert main([*base[:1], "start", *base[1:], "--live", "ab", "--share", "0.2",
                 "--shadow-min", "5"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["revision"] == "r2"  # the latest
    report = tmp_path / "report.json"
    report.write_text(json.dumps(build_report(shadow_events(5), 10)))
    assert main([*base[:1], "step", *base[1:], "--report", str(report)]) == 0
    assert capsys.readouterr().out.startswith("advance")
    assert main([*base[:1], "settings", *base[1:], "--candidate-profile", "c"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "GATEWAY_EXPERIMENT__MODE=ab"
    variants = json.loads(lines[2].split("=", 1)[1])
    assert [(v["name"], v["share"]) for v in variants] == [("serving", 0.8), ("candidate", 0.2)]
