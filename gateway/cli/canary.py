"""``rerank-gateway canary``: ship a registered ranker by a pre-declared stop rule.

::

    rerank-gateway canary start --registry models/ --name papers-ltr --revision r3 \\
        [--live interleave|ab --share 0.1 --shadow-min 200 --min-decisive 100 \\
         --max-searches 20000 --alpha 0.05]
    rerank-gateway canary settings --registry models/ --name papers-ltr \\
        --serving-profile papers --candidate-profile papers-ltr
    rerank-gateway canary step --registry models/ --name papers-ltr \\
        (--url http://127.0.0.1:9201 [--api-key K] | --report report.json)
    rerank-gateway canary status --registry models/ --name papers-ltr

``start`` journals the rule before any traffic; ``settings`` prints the
GATEWAY_EXPERIMENT__* values of the running stage (shadow, then interleaving or
A/B at the share); ``step`` judges the experiment report and advances, promotes
(the registry's serving revision moves) or rolls back. See ``gateway.learning.canary``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from gateway.cli.report import fetch

NAME = "canary"
HELP = "canary a registered ranker: shadow, live comparison, promote or roll back"


def configure(parser: argparse.ArgumentParser) -> None:
    # start: one option per StopRule field, of the same name (``run`` reads them by name).
    parser.add_argument("action", choices=["start", "settings", "step", "status"])
    parser.add_argument("--registry", required=True, help="model registry directory")
    parser.add_argument("--name", required=True, help="model name in the registry")
    parser.add_argument("--revision", help="start: the candidate revision (default: latest)")
    parser.add_argument("--live", choices=["interleave", "ab"], default="interleave")
    parser.add_argument("--share", type=float, default=0.1, help="ab: the candidate's share")
    parser.add_argument("--shadow-min", type=int, default=200)
    parser.add_argument("--max-error-share", type=float, default=0.01)
    parser.add_argument("--min-decisive", type=int, default=100)
    parser.add_argument("--max-searches", type=int, default=20_000)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--serving-profile", default="default")
    parser.add_argument("--candidate-profile", help="settings: the profile naming the model")
    parser.add_argument("--url", help="step: the gateway whose report is judged")
    parser.add_argument("--api-key", help="step: GATEWAY_ACCESS__ADMIN_API_KEY")
    parser.add_argument("--report", help="step: a saved report (JSON) instead of --url")


def run(args: argparse.Namespace) -> int:
    from gateway.learning.canary import Canary, StopRule
    from gateway.learning.registry import Registry

    registry = Registry(Path(args.registry))
    canary = Canary(registry, args.name)
    if args.action == "start":
        known = registry.revisions(args.name)
        revision = args.revision or (known[-1] if known else None)
        if revision is None:
            print(f"canary: no revision of [{args.name}] in {args.registry}")
            return 1
        rule = StopRule(**{f.name: getattr(args, f.name) for f in fields(StopRule)})
        print(json.dumps(canary.start(revision, rule), indent=2))
    elif args.action == "settings":
        section = canary.experiment_settings(args.serving_profile, args.candidate_profile or "")
        for key, value in section.items():
            shown = json.dumps(value) if not isinstance(value, str) else value
            print(f"GATEWAY_EXPERIMENT__{key.upper()}={shown}")
    elif args.action == "step":
        if args.report:
            report = json.loads(Path(args.report).read_text(encoding="utf-8"))
        elif args.url:
            report = fetch(args.url, args.api_key)
        else:
            print("canary step: give --url or --report")
            return 2
        decision = canary.step(report)
        print(f"{decision.action}: {decision.reason}")
    else:
        print(
            json.dumps({"state": canary.state(), "journal": registry.journal(args.name)}, indent=2)
        )
    return 0
