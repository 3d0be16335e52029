"""The experiment report as HTML, rendered here: every figure is in the served page (curl or a
browser without scripts shows it); ``static/report.js`` only adds charts. Only the sections of
the active mode are shown. Pure: the report dict (``gateway.experiments.report``) in, a page out."""

from __future__ import annotations

from html import escape
from importlib.resources import files
from string import Template
from typing import Any

from gateway.experiments.report import BETTER, WORSE

_STATIC = files("gateway") / "static"
_METRICS = (
    ("ctr_at_k", "CTR@{k}", "rate"),
    ("mrr", "MRR", "mean"),
    ("abandonment", "Abandonment", "rate"),
)
_TESTS = {"rate": "two-proportion z-test; Newcombe interval", "mean": "Welch t-test and interval"}


def render_page(report: dict[str, Any]) -> str:
    mode = str(report.get("mode", "off"))
    k = report["k"]
    parts = [_facts(report)]
    if mode == "ab":
        parts += [_ab(report["ab"], k), _variants(report["variants"], k)]
    elif mode == "interleave":
        parts.append(_interleaving(report["interleaving"]))
    elif mode == "shadow":
        parts.append(_shadow(report["shadow"], k))
    else:
        parts.append("<p>Experiments are off (<code>GATEWAY_EXPERIMENT__MODE</code>).</p>")
    template = Template((_STATIC / "experiments.html").read_text(encoding="utf-8"))
    return template.substitute(
        experiment=escape(str(report.get("experiment"))), mode=escape(mode), body="\n".join(parts)
    )


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "&lt; 0.001" if value < 0.001 else f"{value:.3f}"


def _p_is(value: float) -> str:
    return "p &lt; 0.001" if value < 0.001 else f"p = {value:.3f}"


def _diff(value: float, kind: str) -> str:
    """A difference: percentage points for rates, plain for means (typographic minus)."""
    text = f"{value * 100:+.1f} pts" if kind == "rate" else f"{value:+.3f}"
    return text.replace("-", "−")


def _level(value: float, kind: str) -> str:
    return f"{value * 100:.1f}%" if kind == "rate" else f"{value:.3f}"


def _verdict_class(verdict: str) -> str:
    return {BETTER: "better", WORSE: "worse"}.get(verdict, "unknown")


def _verdict_text(verdict: str) -> str:
    return f"treatment {verdict}" if verdict in (BETTER, WORSE) else escape(verdict)


def _facts(report: dict[str, Any]) -> str:
    overrides = report.get("overrides") or {}
    forced = ", ".join(f"{escape(n)} {c}" for n, c in overrides.items()) or "none"
    return (
        f'<p class="facts">k = {report["k"]} · unattributed clicks '
        f"{report.get('unattributed_clicks', 0)} · events dropped "
        f"{report.get('events_dropped', 0)} · override searches (not counted in the experiment): "
        f'<span id="overrides">{forced}</span></p>'
    )


def _ab(ab: dict[str, Any] | None, k: int) -> str:
    if ab is None or not ab["arms"]:
        return '<p class="verdict unknown">Verdict: not yet known — no searches in both arms.</p>'
    control = escape(str(ab["control"]))
    out = ["<h2>Verdict</h2>"]
    rows: list[list[str]] = []
    for name, arm in ab["arms"].items():
        arm_name = escape(name)
        ctr = arm["ctr_at_k"]
        lo, hi = ctr["ci95"]
        out.append(
            f'<p class="verdict {_verdict_class(arm["verdict"])}" data-arm="{arm_name}">'
            f"<strong>{arm_name} vs {control}: {_verdict_text(arm['verdict'])}</strong> — "
            f"CTR@{k} {_diff(ctr['diff'], 'rate')} (95% CI {_diff(lo, 'rate')} to "
            f"{_diff(hi, 'rate')}), {_p_is(ctr['p_value'])}</p>"
        )
        if arm["low_sample"]:
            out.append(_low_sample(arm, ab, k))
        for key, label, kind in _METRICS:
            rows.append(_diff_row(arm_name, label.format(k=k), kind, arm[key]))
    heads = ["arm", "metric", "control", "treatment", "difference", "95% CI", "p-value", "test"]
    out += [
        f"<h2>Difference against {control} (treatment − control)</h2>",
        _table("differences", heads, rows),
    ]
    return "\n".join(out)


def _low_sample(arm: dict[str, Any], ab: dict[str, Any], k: int) -> str:
    smaller = min(arm["searches"], ab["control_searches"])
    needed = arm["needed_per_arm"]
    if needed is None:
        need = f"no difference in CTR@{k} observed yet, so no sample size detects it"
    else:
        need = (
            f"about {needed:,} searches per arm are needed to detect the observed CTR@{k} "
            f"difference (α = {ab['alpha']}, power {ab['power']:.0%})"
        )
    return f'<p class="warning">Low sample: {smaller:,} searches in the smaller arm; {need}.</p>'


def _diff_row(arm: str, label: str, kind: str, d: dict[str, Any] | None) -> list[str]:
    if d is None:
        return [arm, label, "–", "–", "–", "–", "–", "needs 2 searches per arm"]
    lo, hi = d["ci95"]
    return [
        arm,
        label,
        _level(d["control"], kind),
        _level(d["treatment"], kind),
        _diff(d["diff"], kind),
        f"{_diff(lo, kind)} to {_diff(hi, kind)}",
        _p(d["p_value"]),
        _TESTS[kind],
    ]


def _table(table_id: str, heads: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _variants(variants: dict[str, dict[str, Any]], k: int) -> str:
    rows = [
        [
            escape(name),
            str(v["searches"]),
            str(v["clicks"]),
            _level(v["ctr_at_k"], "rate"),
            _num(v["mrr"]),
            _level(v["abandonment"], "rate"),
            _num(v["latency_ms"]["p50"], 1),
            _num(v["latency_ms"]["p99"], 1),
        ]
        for name, v in variants.items()
    ]
    heads = ["variant", "searches", "clicks", f"CTR@{k}", "MRR", "abandonment", "p50 ms", "p99 ms"]
    return "<h2>Per variant</h2>\n" + _table("variants", heads, rows)


def _interleaving(il: dict[str, Any]) -> str:
    treatment = escape(str(il.get("treatment") or "treatment"))
    control = escape(str(il.get("control") or "control"))
    decisive = il["wins"] + il["losses"]
    out = [
        f"<h2>Interleaving: {treatment} (team B) against {control} (team A)</h2>",
        f'<p class="verdict {_verdict_class(il["verdict"])}"><strong>{treatment} vs {control}: '
        f"{_verdict_text(il['verdict'])}</strong> — {il['wins']} wins, {il['losses']} losses, "
        f"{il['ties']} ties; two-sided binomial {_p_is(il['p_value'])}</p>",
        _table(
            "interleaving",
            [f"wins ({treatment})", f"losses ({control})", "ties", "p-value"],
            [[str(il["wins"]), str(il["losses"]), str(il["ties"]), _p(il["p_value"])]],
        ),
    ]
    if il["low_sample"]:
        needed = il["needed_decisive"]
        need = (
            "no preference observed yet, so no sample size detects it"
            if needed is None
            else f"about {needed:,} are needed to detect the observed win share (power 80%)"
        )
        out.append(f'<p class="warning">Low sample: {decisive:,} decisive searches; {need}.</p>')
    return "\n".join(out)


def _shadow(shadow: dict[str, dict[str, Any]], k: int) -> str:
    rows = [
        [
            escape(name),
            str(s["searches"]),
            str(s["measured"]),
            _num(s["overlap_at_k"]),
            _num(s["kendall_tau"]),
            _num(s["first_baseline_hit_rank"], 2),
            _num(s["latency_ms"]["p50"], 1),
            _num(s["latency_ms"]["p99"], 1),
        ]
        for name, s in shadow.items()
    ]
    heads = [
        "variant",
        "searches",
        "measured",
        f"overlap@{k}",
        "Kendall tau",
        "control's top hit at rank",
        "p50 ms",
        "p99 ms",
    ]
    return "<h2>Shadow</h2>\n" + _table("shadow", heads, rows)
