"""Ship a trained ranker by evidence: shadow, then a live comparison, then promote or roll back.

::

    start     the rule is declared and journalled before any traffic is seen
    shadow    the candidate's order is computed beside every search and only measured;
              advance when ``shadow_min`` searches were measured with at most
              ``max_error_share`` of them late or failed, else roll back
    live      ``interleave``: team-draft of the first-stage order and the candidate
              (the experiments wing's interleaving control is the upstream order), the
              binomial test of wins against losses (``gateway.experiments.report``);
              ``ab``: the serving profile and the candidate's at ``share``, the two-sided
              two-proportion z-test on CTR@k
              promote when the candidate wins at ``alpha`` after ``min_decisive``
              searches that decide; roll back when it loses at ``alpha``, or when
              ``max_searches`` pass without a decision (not proven better)
    promote   the registry's ``serving`` pointer moves to the candidate
    rollback  the pointer stays (or returns) where it was before the canary

Every step is a line in the model's journal (``registry.journal``) and reversible:
the previous serving revision is kept in the state and in each journal line. The
gateway's experiment settings for each stage are ``experiment_settings``; whoever
runs the canary applies them (env ``GATEWAY_EXPERIMENT__*``) and feeds back the
report (``/_gateway/experiments/report``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from gateway.learning.registry import Registry

Stage = Literal["shadow", "interleave", "ab", "promoted", "rolled_back"]
Action = Literal["continue", "advance", "promote", "rollback"]
STATE = "canary.json"


@dataclass(frozen=True, slots=True)
class StopRule:
    live: Literal["interleave", "ab"] = "interleave"
    share: float = 0.1  # ab: the candidate's share of the traffic
    shadow_min: int = 200
    max_error_share: float = 0.01
    min_decisive: int = 100
    max_searches: int = 20_000
    alpha: float = 0.05


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    p_value: float | None = None


def two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p of the pooled two-proportion z-test (1.0 when undefined)."""
    if n_a <= 0 or n_b <= 0:
        return 1.0
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    z = abs(hits_b / n_b - hits_a / n_a) / se
    return math.erfc(z / math.sqrt(2))


def _shadow(report: dict[str, Any], candidate: str, rule: StopRule) -> Decision:
    figures = (report.get("shadow") or {}).get(candidate) or {}
    searches = int(figures.get("searches", 0))
    if searches < rule.shadow_min:
        return Decision("continue", f"shadow: {searches}/{rule.shadow_min} searches measured")
    statuses: dict[str, int] = figures.get("statuses") or {}
    bad = searches - statuses.get("full", 0) - statuses.get("partial", 0)
    if bad / searches > rule.max_error_share:
        return Decision("rollback", f"shadow: {bad}/{searches} late or failed")
    return Decision("advance", f"shadow: {searches} searches, {bad} late or failed")


def _interleave(report: dict[str, Any], rule: StopRule) -> Decision:
    il = report.get("interleaving") or {}
    wins, losses, p = int(il.get("wins", 0)), int(il.get("losses", 0)), float(il["p_value"])
    searches = sum(int(v.get("searches", 0)) for v in (report.get("variants") or {}).values())
    said = f"interleaving: {wins} wins, {losses} losses, p={p:.4g}"
    if wins + losses >= rule.min_decisive and p < rule.alpha:
        return Decision("promote" if wins > losses else "rollback", said, p)
    if searches >= rule.max_searches:
        return Decision("rollback", f"{said}: no decision within {rule.max_searches} searches", p)
    return Decision("continue", said, p)


def _ab(report: dict[str, Any], serving: str, candidate: str, rule: StopRule) -> Decision:
    variants = report.get("variants") or {}
    a, b = variants.get(serving) or {}, variants.get(candidate) or {}
    n_a, n_b = int(a.get("searches", 0)), int(b.get("searches", 0))
    c_a = round(float(a.get("ctr_at_k", 0.0)) * n_a)
    c_b = round(float(b.get("ctr_at_k", 0.0)) * n_b)
    p = two_proportion_p(c_a, n_a, c_b, n_b)
    said = f"a/b: CTR@k {c_a}/{n_a} serving, {c_b}/{n_b} candidate, p={p:.4g}"
    if min(n_a, n_b) >= rule.min_decisive and p < rule.alpha:
        return Decision("promote" if c_b / n_b > c_a / n_a else "rollback", said, p)
    if n_a + n_b >= rule.max_searches:
        return Decision("rollback", f"{said}: no decision within {rule.max_searches} searches", p)
    return Decision("continue", said, p)


def verdict(
    stage: Stage, report: dict[str, Any], rule: StopRule, *, serving: str, candidate: str
) -> Decision:
    """What the rule says about ``report`` at ``stage`` (variants named as in the report)."""
    if stage == "shadow":
        return _shadow(report, candidate, rule)
    if stage == "interleave":
        return _interleave(report, rule)
    if stage == "ab":
        return _ab(report, serving, candidate, rule)
    return Decision("continue", f"the canary is over ({stage})")


class Canary:
    """The canary of one model name in a registry (state in ``<name>/canary.json``)."""

    SERVING, CANDIDATE = "serving", "candidate"

    def __init__(self, registry: Registry, name: str) -> None:
        self.registry = registry
        self.name = name
        self.path = registry.root / name / STATE

    def state(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        value: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return value

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def start(self, revision: str, rule: StopRule) -> dict[str, Any]:
        current = self.state()
        if current is not None and current["stage"] in ("shadow", "interleave", "ab"):
            raise ValueError(f"a canary of [{self.name}@{current['revision']}] is running")
        self.registry.entry(self.name, revision)  # it must exist
        state: dict[str, Any] = {
            "revision": revision,
            "previous": self.registry.serving(self.name),
            "stage": "shadow",
            "run": f"{time.time_ns():x}"[-8:],  # each canary its own experiment (event stream)
            "rule": asdict(rule),
            "decisions": [],
        }
        self._save(state)
        self.registry.log(self.name, "canary_start", revision=revision, rule=asdict(rule))
        return state

    def step(self, report: dict[str, Any]) -> Decision:
        """Judge the latest report of the running stage and act on the verdict."""
        state = self.state()
        if state is None:
            raise ValueError(f"no canary of [{self.name}]")
        rule = StopRule(**state["rule"])
        decision = verdict(
            state["stage"], report, rule, serving=self.SERVING, candidate=self.CANDIDATE
        )
        if decision.action == "continue":
            return decision
        before = state["stage"]
        if decision.action == "advance":
            state["stage"] = rule.live
        elif decision.action == "promote":
            state["stage"] = "promoted"
            self.registry.set_serving(
                self.name, state["revision"], action="promote", reason=decision.reason
            )
        else:
            state["stage"] = "rolled_back"
            self.registry.set_serving(
                self.name, state["previous"], action="rollback", reason=decision.reason
            )
        state["decisions"].append({"stage": before, **asdict(decision)})
        self._save(state)
        self.registry.log(
            self.name,
            f"canary_{decision.action}",
            revision=state["revision"],
            stage=before,
            to=state["stage"],
            reason=decision.reason,
        )
        return decision

    def experiment_settings(self, serving_profile: str, candidate_profile: str) -> dict[str, Any]:
        """The gateway's EXPERIMENT section for the running stage (``{}`` when over)."""
        state = self.state()
        if state is None or state["stage"] not in ("shadow", "interleave", "ab"):
            return {}
        rule = StopRule(**state["rule"])
        name = f"canary-{self.name[:24]}-{state['revision']}-{state['stage']}-{state['run']}"
        candidate = {"name": self.CANDIDATE, "rerank": True, "profile": candidate_profile}
        if state["stage"] == "ab":
            variants = [
                {"name": self.SERVING, "share": 1 - rule.share, "profile": serving_profile},
                {**candidate, "share": rule.share},
            ]
            return {"mode": "ab", "name": name, "variants": variants}
        control = {"name": "baseline", "share": 0, "rerank": False}
        return {
            "mode": state["stage"],
            "name": name,
            "variants": [control, {**candidate, "share": 1}],
        }
