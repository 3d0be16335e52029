"""``rerank-gateway report``: a running gateway's experiment report, as tables.

    rerank-gateway report --url http://127.0.0.1:9201 [--json]

Reads ``/_gateway/experiments/report`` (CTR@k, MRR, abandonment and latency per
variant, interleaving wins, shadow agreement). With GATEWAY_ACCESS__ADMIN_API_KEY
set, pass the key with ``--api-key``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any


def fetch(url: str, api_key: str | None = None) -> dict[str, Any]:
    headers = {"X-Gateway-Api-Key": api_key} if api_key else {}
    req = urllib.request.Request(f"{url.rstrip('/')}/_gateway/experiments/report", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
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


NAME = "report"
HELP = "a running gateway's experiment report"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:9201", help="gateway base URL")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    parser.add_argument("--api-key", help="the gateway's admin key (X-Gateway-Api-Key)")


def run(args: argparse.Namespace) -> int:
    try:
        report = fetch(args.url, args.api_key)
    except urllib.error.HTTPError as exc:
        print(f"report: {args.url} answered {exc.code} {exc.reason}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"report: {args.url} failed: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
