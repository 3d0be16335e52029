"""Fine-tune the cross-encoder from judgments, prove it on held-out queries, register it.

::

    rerank-gateway fine-tune --start WEIGHTS_DIR --corpus corpus.jsonl \\
        --candidates windows.json (--qrels qrels.tsv --queries queries.jsonl | --events log) \\
        --serving-model SERVING_ONNX_DIR (--eval-qrels test.tsv | --holdout-queries 0.2) \\
        --registry models/ --name papers-ce [--max-train-s 600] [--require-better]

(``python -m gateway.offline.fine_tune`` is the same command.)

1. labels: human judgments (``--qrels`` with ``--queries``, TREC or BEIR) or clicks
   (``--events``, ``--redis-url`` with ``--experiment``, or UBI 1.3 records) through
   the click model (PBM, examination curve from the interleaved sessions; or COEC);
2. lists (``gateway.learning.finetune.examples``): per training query its judged
   documents and its candidates (``--candidates``: query text → the doc ids the
   gateway reranked, or ``train``'s feature windows), texts from ``--corpus``
   (BEIR ``corpus.jsonl``: title and text joined by a space, as the gateway reads them);
3. training from ``--start`` (``CrossEncoderTrainer``, LambdaLoss or BCE), bounded by
   ``--max-steps`` / ``--epochs`` / ``--max-train-s``;
4. export (``gateway.model.export``) and checks (``finetune_checks``: PyTorch vs ONNX
   agreement, batch invariance of each path); a failed check stops here (exit 4);
5. evaluation: the held-out queries' candidates reranked by ``--serving-model`` and by
   the fine-tuned model (both fp32 through the gateway's ONNX backend), nDCG@10 on
   their judgments (``--eval-qrels``: human, queries never trained on; else
   ``--holdout-queries``: a share of the labelled queries kept out), paired
   randomization test;
6. registration (kind ``cross-encoder``): the model directory, the data window, the
   metrics and the checks; serve it with ``GATEWAY_MODEL__PATH=<registry>/<name>/<rev>/model``.

Exit status 0 when registered; 3 with ``--require-better`` when the model is not
significantly better than the serving model (not registered); 4 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.learning import finetune_checks as checks
from gateway.learning.clicks import Session
from gateway.learning.finetune import LOSSES, TuneSettings, examples, fine_tune
from gateway.learning.judgments import by_query, query_key
from gateway.learning.registry import CROSS_ENCODER, Registry, fingerprint
from gateway.learning.significance import Paired, paired_test, per_query_ndcg
from gateway.learning.ubi import read_ndjson
from gateway.model.local import REGISTRY_FILE
from gateway.model.onnx import OnnxCrossEncoder
from gateway.offline.train import click_judgments, held_queries, judged_by_key

Labels = dict[str, dict[str, float]]  # query key → doc → label


@dataclass(frozen=True, slots=True)
class ModelDirectory:
    """A fine-tuned ONNX model directory as a registry artefact (kind ``cross-encoder``)."""

    source: Path
    kind: str = CROSS_ENCODER
    feature_names: tuple[str, ...] = ()

    def save(self, directory: Path) -> Path:
        """Copy into ``<revision>/model`` and stamp it with its registry fingerprint."""
        target = directory / "model"
        shutil.copytree(self.source, target)
        name, revision = directory.parent.name, directory.name
        stamp = {
            "name": name,
            "revision": revision,
            "fingerprint": fingerprint(name, revision, CROSS_ENCODER),
        }
        (target / REGISTRY_FILE).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        return target


def read_corpus(path: Path) -> dict[str, str]:
    """doc id → the text the gateway reads (title and text joined by a space)."""
    out: dict[str, str] = {}
    for doc in read_ndjson(path):
        parts = (str(doc.get("title") or ""), str(doc.get("text") or ""))
        out[str(doc["_id"])] = " ".join(p for p in parts if p)
    return out


def read_candidates(path: Path) -> dict[str, list[str]]:
    """query key → candidate doc ids (a list, or a feature window's ``docs``)."""
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, list[str]] = {}
    for query, value in raw.items():
        docs = value["docs"] if isinstance(value, dict) else value
        out[query_key(query)] = [str(d) for d in docs]
    return out


def _sessions(args: argparse.Namespace) -> list[Session]:
    from gateway.offline.train import sessions_from_args

    return sessions_from_args(
        args,
        "fine-tune: give --qrels with --queries, --events, --redis-url with --experiment,"
        " or --ubi-queries and --ubi-events",
    )


def labels_of(args: argparse.Namespace) -> tuple[Labels, dict[str, float], str]:
    """(labels by query key, data window, what they came from)."""
    if args.qrels:
        return judged_by_key(Path(args.qrels), Path(args.queries)), {}, f"qrels {args.qrels}"
    sessions = _sessions(args)
    if not sessions:
        raise SystemExit("fine-tune: no sessions with a query text in the log")
    got = by_query(click_judgments(sessions, args.click_model))
    stamps = [s.ts for s in sessions]
    window = {"from": min(stamps), "to": max(stamps)}
    return {query_key(q): j for q, j in got.items()}, window, f"{args.click_model} clicks"


def split(
    labels: Labels, args: argparse.Namespace
) -> tuple[Labels, dict[str, dict[str, float]], str]:
    """(training labels, evaluation judgments, what the evaluation is on): evaluation
    queries never train."""
    if args.eval_qrels:
        queries_file = args.eval_queries or args.queries
        if not queries_file:
            raise SystemExit("fine-tune: --eval-qrels needs --eval-queries (or --queries)")
        held = judged_by_key(Path(args.eval_qrels), Path(queries_file))
        return {q: j for q, j in labels.items() if q not in held}, held, args.eval_qrels
    chosen = held_queries(labels, args.holdout_queries, args.seed)
    train = {q: j for q, j in labels.items() if q not in chosen}
    return train, {q: labels[q] for q in chosen}, f"{len(chosen)} held-out labelled queries"


def rerank(
    model: OnnxCrossEncoder,
    queries: Sequence[str],
    candidates: Mapping[str, Sequence[str]],
    texts: Mapping[str, str],
) -> dict[str, list[str]]:
    """Each query's candidates in the model's order (ties keep the first-stage order)."""
    out: dict[str, list[str]] = {}
    for q in queries:
        docs = [d for d in candidates[q] if d in texts]
        got = checks.score(model, [(q, texts[d]) for d in docs]).tolist()
        out[q] = [docs[i] for i in sorted(range(len(docs)), key=lambda i: (-got[i], i))]
    return out


def evaluate(
    serving_dir: Path,
    tuned_dir: Path,
    *,
    held: Mapping[str, Mapping[str, float]],
    candidates: Mapping[str, Sequence[str]],
    texts: Mapping[str, str],
    max_length: int,
) -> tuple[Paired, float]:
    """nDCG@10 of the serving model (a) against the fine-tuned one (b); first stage's."""
    queries = sorted(
        q for q, j in held.items() if q in candidates and any(v > 0 for v in j.values())
    )
    qrels = {q: held[q] for q in queries}
    first = per_query_ndcg({q: list(candidates[q]) for q in queries}, qrels)
    runs = [
        per_query_ndcg(
            rerank(checks.encoder(d, max_length=max_length, threads=0), queries, candidates, texts),
            qrels,
        )
        for d in (serving_dir, tuned_dir)
    ]
    return paired_test(runs[0], runs[1]), float(np.mean(list(first.values()))) if first else 0.0


def run(args: argparse.Namespace) -> int:
    labels, window, source = labels_of(args)
    train_labels, held, evaluated_on = split(labels, args)
    texts = read_corpus(Path(args.corpus))
    candidates = read_candidates(Path(args.candidates))
    settings = TuneSettings(
        start=Path(args.start),
        max_length=args.train_max_length or args.max_length,
        loss=args.loss,
        list_size=args.list_size,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        max_steps=args.max_steps,
        max_train_s=args.max_train_s,
        seed=args.seed,
        threads=args.threads,
    )
    items = examples(train_labels, texts, candidates, list_size=args.list_size, seed=args.seed)
    print(f"fine-tune: {len(items)} training lists from {source}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fine-tune-") as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        weights, onnx_dir = work / "weights", work / "onnx"
        report = fine_tune(items, settings, weights)
        print(
            f"trained {report.steps} steps ({report.pairs_seen} pairs) in {report.seconds:.0f} s,"
            f" loss {report.train_loss:.4f}",
            "(time budget reached)" if report.stopped_by_budget else "",
            flush=True,
        )
        checks.export_onnx(weights, onnx_dir, args.max_length)
        probe = [
            (q, texts[d]) for q in sorted(held)[:8] for d in candidates.get(q, [])[:8] if d in texts
        ]
        probe = probe or [(e.query, d) for e in items[:8] for d in e.docs]
        result = checks.check(weights, onnx_dir, probe, [q for q, _ in probe], args.max_length)
        print(f"checks: {json.dumps(result.as_dict(), sort_keys=True)}", flush=True)
        if not result.passed:
            print(
                "fine-tune: the exported model failed its checks; not registered", file=sys.stderr
            )
            return 4
        paired, first = evaluate(
            Path(args.serving_model),
            onnx_dir,
            held=held,
            candidates=candidates,
            texts=texts,
            max_length=args.max_length,
        )
        print(
            f"on {evaluated_on} ({paired.wins + paired.losses + paired.ties} queries):"
            f" nDCG@10 first stage {first:.4f}, serving model {paired.mean_a:.4f},"
            f" fine-tuned {paired.mean_b:.4f}, Δ {paired.delta:+.4f}, p {paired.p:.4f}"
            f" ({paired.wins} wins, {paired.losses} losses, {paired.ties} ties)"
        )
        better = paired.delta > 0 and paired.p < args.alpha
        if args.require_better and not better:
            print("fine-tune: not significantly better than the serving model; not registered")
            return 3
        entry = Registry(Path(args.registry)).register(
            args.name,
            ModelDirectory(onnx_dir),
            data_window=window,
            metrics={
                "evaluated_on": evaluated_on,
                "ndcg@10": paired.mean_b,
                "serving_ndcg@10": paired.mean_a,
                "first_stage_ndcg@10": first,
                "delta": paired.delta,
                "p_value": paired.p,
                "queries": paired.wins + paired.losses + paired.ties,
                "checks": result.as_dict(),
                "training": asdict(report),
                "train_queries": len(train_labels),
                "train_lists": len(items),
            },
            params={
                "labels": source,
                "serving_model": str(args.serving_model),
                **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
                "max_length": args.max_length,
                "train_max_length": settings.max_length,
            },
        )
    served = Registry(Path(args.registry)).model_dir(f"{entry.name}@{entry.revision}")
    print(
        f"registered {entry.fingerprint} in {args.registry};"
        f" serve it with GATEWAY_MODEL__PATH={served}"
    )
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    labels = parser.add_argument_group("labels")
    labels.add_argument("--qrels", help="human judgments (TREC or BEIR qrels) to train on")
    labels.add_argument("--queries", help="queries.jsonl (BEIR) for --qrels / --eval-qrels")
    labels.add_argument("--events", help="event log, JSON lines (the gateway's event shapes)")
    labels.add_argument("--redis-url", help="read the experiment's event stream from Redis")
    labels.add_argument("--experiment", help="with --redis-url: GATEWAY_EXPERIMENT__NAME")
    labels.add_argument("--ubi-queries", help="UBI 1.3 query records, JSON lines")
    labels.add_argument("--ubi-events", help="UBI 1.3 event records, JSON lines")
    labels.add_argument("--click-model", choices=["pbm", "coec"], default="pbm")
    data = parser.add_argument_group("documents and evaluation")
    data.add_argument("--corpus", required=True, help="corpus.jsonl (BEIR): the document texts")
    data.add_argument("--candidates", required=True, help="JSON: query text → candidate doc ids")
    data.add_argument("--serving-model", required=True, help="ONNX dir of the serving model")
    data.add_argument("--eval-qrels", help="held-out human judgments (queries never trained on)")
    data.add_argument("--eval-queries", help="queries.jsonl for --eval-qrels (default --queries)")
    data.add_argument("--holdout-queries", type=float, default=0.2, help="without --eval-qrels")
    tune = parser.add_argument_group("training")
    tune.add_argument("--start", required=True, help="starting weights (a local HF / ST dir)")
    tune.add_argument("--loss", choices=LOSSES, default="lambda")
    tune.add_argument(
        "--max-length", type=int, default=256, help="tokens per pair: export and evaluation"
    )
    tune.add_argument("--train-max-length", type=int, help="tokens per pair in training")
    tune.add_argument("--list-size", type=int, default=8, help="documents per query list")
    tune.add_argument("--batch-size", type=int, default=4, help="lists per step")
    tune.add_argument("--learning-rate", type=float, default=2e-5)
    tune.add_argument("--epochs", type=float, default=1.0)
    tune.add_argument("--max-steps", type=int, default=-1)
    tune.add_argument("--max-train-s", type=float, help="wall-clock budget for training")
    tune.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--work", help="keep the weights and the export here (default: temporary)")
    out = parser.add_argument_group("registry")
    out.add_argument("--registry", required=True, help="model registry directory")
    out.add_argument("--name", required=True, help="model name in the registry")
    out.add_argument("--alpha", type=float, default=0.05)
    out.add_argument("--require-better", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.offline.fine_tune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
