"""The canary of a registered ranker, live: simulated users, a real gateway, the stop rule decides.

Takes the model ``ops.learn_sim --registry DIR`` registered and runs ``gateway.learning.canary``
against a real gateway in front of osmem-server (SciFact), with simulated users whose
relevance comes from the SciFact *test* qrels (position-biased clicks as in ``learn_sim``):

1. ``start``: the stop rule is declared and journalled;
2. shadow: the gateway serves the ``serving`` profile (fixed fusion) and measures the
   candidate's order beside it; ``step`` on the report → advance or roll back;
3. A/B at ``--share``: ``serving`` against the ``candidate`` profile (the learned model);
   ``step`` after each round of searches → continue, promote or roll back.

The gateway is restarted with each stage's experiment settings (``canary.experiment_settings``);
cross-encoder scores are kept across restarts in Redis (``--redis-url``)::

    .venv/bin/python -m ops.learn_canary --data DATA/scifact --registry DIR/registry --queries 150
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from pathlib import Path
from typing import Any

import aiohttp

from gateway.experiments.web import report_of
from gateway.learning.canary import Canary, StopRule
from gateway.learning.registry import Registry
from gateway.settings import Settings
from gateway.web.state import EXPERIMENTS
from ops.harness import beir
from ops.harness.options import reranker_options, reranker_sections
from ops.harness.servers import osmem, running, seeded
from ops.harness.users import clicks_on, search_body

INDEX = "scifact"

NAME = "scifact-ltr"


async def stage(
    args: argparse.Namespace,
    upstream: str,
    *,
    experiment: dict[str, Any],
    revision: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    canary: Canary,
    rng: random.Random,
) -> str:
    """One stage: a gateway with its settings, rounds of searches and clicks, ``step`` each."""
    settings = Settings.model_validate(
        {
            "upstream": {"urls": [upstream]},
            **reranker_sections(args),
            "relevance": {
                "score_use": "linear",
                "weight": 0.7,
                "registry": str(args.registry),
                "profiles": {"serving": {}, "candidate": {"learned": f"{NAME}@{revision}"}},
            },
            "cache": {"redis_url": args.redis_url, "timeout_s": 5.0},
            "experiment": {
                **experiment,
                "events_max": 1_000_000,
                "shadow_timeout_s": 600.0,
                "shadow_max_inflight": 100_000,
            },
        }
    )
    async with running(settings) as (app, url):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
            for round_ in range(args.rounds):
                for qid, text in queries.items():
                    headers = {"X-User-Id": f"user-{rng.random()}"}
                    async with session.post(
                        f"{url}/{INDEX}/_search", json=search_body(text, 10), headers=headers
                    ) as r:
                        hits = (await r.json()).get("hits", {}).get("hits", [])
                        sid = r.headers.get("X-Search-Id", "")
                    picked = clicks_on(hits, qrels[qid], sid, rng)
                    if picked:
                        async with session.post(f"{url}/_gateway/events", json=picked) as r:
                            await r.read()
                experiments = app[EXPERIMENTS]
                await experiments.events.flush()
                # let the shadow measurements of this round finish
                await asyncio.gather(*list(experiments._shadows), return_exceptions=True)
                await experiments.events.flush()
                report = await report_of(experiments)
                decision = canary.step(report)
                print(f"  round {round_ + 1}: {decision.action}: {decision.reason}")
                if decision.action != "continue":
                    return decision.action
        return "continue"


async def main_async(args: argparse.Namespace) -> None:
    registry = Registry(args.registry)
    revision = args.revision or registry.revisions(NAME)[-1]
    queries = beir.queries(args.data)
    qrels = beir.qrels(args.data, "test")
    rng = random.Random(args.seed)
    ids = sorted(rng.sample(sorted(q for q in qrels if q in queries), args.queries))
    asked = {q: queries[q] for q in ids}
    canary = Canary(registry, NAME)
    rule = StopRule(
        live="ab",
        share=args.share,
        shadow_min=len(ids),
        min_decisive=args.min_decisive,
        max_searches=args.max_searches,
        alpha=0.05,
    )
    canary.start(revision, rule)
    print(f"canary of {NAME}@{revision}: rule {rule}")
    with osmem() as upstream:
        seeded(upstream, INDEX, args.data / "corpus.jsonl")
        while True:
            section = canary.experiment_settings("serving", "candidate")
            if not section:
                break
            print(f"stage {section['mode']}: experiment {section['name']}")
            outcome = await stage(
                args,
                upstream,
                experiment=section,
                revision=revision,
                queries=asked,
                qrels=qrels,
                canary=canary,
                rng=rng,
            )
            if outcome == "continue":
                print("  rounds exhausted without a verdict", file=sys.stderr)
                break
    state = canary.state() or {}
    print(f"final stage: {state.get('stage')}; serving revision: {registry.serving(NAME)}")
    for line in registry.journal(NAME):
        print("  journal:", {k: line[k] for k in ("action", "revision") if k in line})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, required=True)
    parser.add_argument("--revision")
    reranker_options(parser)
    parser.add_argument("--queries", type=int, default=150, help="test queries the users ask")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of searches per stage")
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--min-decisive", type=int, default=200)
    parser.add_argument("--max-searches", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seed", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
