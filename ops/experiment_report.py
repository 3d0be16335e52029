"""Print a running gateway's experiment report as tables.

python -m ops.experiment_report --url http://127.0.0.1:9201 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from typing import Any


def fetch(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url.rstrip('/')}/_gateway/experiments/report", timeout=30) as r:
        value: dict[str, Any] = json.loads(r.read())
        return value


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def render(report: dict[str, Any]) -> str:
    k = report["k"]
    lines = [
        f"experiment {report.get('experiment')} (mode {report.get('mode')}, k={k})",
        "",
        f"| variant | searches | clicks | CTR@{k} | MRR | abandonment | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in report["variants"].items():
        cells = [
            v["searches"],
            v["clicks"],
            v["ctr_at_k"],
            v["mrr"],
            v["abandonment"],
            v["latency_ms"]["p50"],
            v["latency_ms"]["p99"],
        ]
        lines.append(f"| {name} | " + " | ".join(_num(c) for c in cells) + " |")
    lines += _ab_lines(report.get("ab"), k)
    il = report["interleaving"]
    lines += [
        "",
        f"interleaving {il.get('treatment')} vs {il.get('control')}: {il.get('verdict')}; "
        f"{il['wins']} wins, {il['losses']} losses, {il['ties']} ties "
        f"(two-sided binomial p = {il['p_value']:.4g})",
    ]
    for name, s in report.get("shadow", {}).items():
        lines.append(
            f"shadow {name}: {s['measured']}/{s['searches']} measured, "
            f"overlap@{k} {_num(s['overlap_at_k'])}, Kendall tau {_num(s['kendall_tau'])}, "
            f"baseline top hit at rank {_num(s['first_baseline_hit_rank'])}"
        )
    lines.append(f"unattributed clicks: {report['unattributed_clicks']}")
    lines.append(f"override searches (not in the figures): {report.get('overrides') or 'none'}")
    return "\n".join(lines)


def _ab_lines(ab: dict[str, Any] | None, k: int) -> list[str]:
    """Per arm: the verdict, then each metric's difference with its 95% interval."""
    if not ab:
        return []
    lines = [""]
    for name, arm in ab["arms"].items():
        low = " (low sample: ~{} per arm needed)".format(arm["needed_per_arm"] or "∞")
        lines.append(
            f"{name} vs {ab['control']}: {arm['verdict']}{low if arm['low_sample'] else ''}"
        )
        for key, label in (("ctr_at_k", f"CTR@{k}"), ("mrr", "MRR"), ("abandonment", "abandon")):
            d = arm[key]
            if d is not None:
                lo, hi = d["ci95"]
                lines.append(
                    f"  {label:<8} {d['diff']:+.4f}  95% CI [{lo:+.4f}, {hi:+.4f}]  "
                    f"p = {d['p_value']:.4g}"
                )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9201", help="gateway base URL")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    args = parser.parse_args()
    report = fetch(args.url)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
