"""`rerank-gateway train` end to end on a scripted log: labels, model, held-out proof, registry."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.learning import features
from gateway.learning.clicks import sessions_from_events
from gateway.learning.registry import Registry
from gateway.learning.ubi import to_ubi, write_ndjson

FIELDS = ("title", "text")
RELEVANT = {"d7", "d8"}  # what the users like; the first stage puts them low


def scripted(tmp_path: Path) -> tuple[Path, Path]:
    rng = random.Random(7)
    events: list[dict[str, Any]] = []
    windows: dict[str, Any] = {}
    docs = [f"d{j}" for j in range(10)]
    for i in range(40):
        query = f"query {i}"
        rows = []
        for j, doc in enumerate(docs):
            ce = (2.0 if doc in RELEVANT else 0.0) + rng.random()
            row = [ce, ce, ce, 0.0, 0.0, 10.0 - j, 0.0, j + 1.0, 5.0, 6.0]
            rows.append(row)
        windows[query] = {
            "docs": docs,
            "rows": rows,
            "ce": [r[0] for r in rows],
            "fs": [r[5] for r in rows],
        }
    ts = 0.0
    for round_ in range(6):
        for i in range(40):
            sid = f"s{round_}-{i}"
            shown = rng.sample(docs, 10)  # interleaved traffic: orders vary
            ts += 1.0
            events.append(
                {"type": "impression", "search_id": sid, "query": f"query {i}", "ts": ts,
                 "mode": "interleave", "variant": "interleave", "latency_ms": 1.0,
                 "hits": [["p", d] for d in shown], "teams": None}
            )  # fmt: skip
            for rank, doc in enumerate(shown, start=1):
                liked = 0.9 if doc in RELEVANT else 0.05
                if rng.random() < 1 / rank and rng.random() < liked:
                    events.append({"type": "click", "search_id": sid, "id": doc, "ts": ts})
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    feats = tmp_path / "windows.json"
    feats.write_text(json.dumps(windows))
    assert len(features.names(FIELDS)) == 10
    return log, feats


def test_train_registers_a_model_that_beats_the_serving_fusion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, feats = scripted(tmp_path)
    reg = tmp_path / "registry"
    args = ["train", "--events", str(log), "--features", str(feats), "--registry", str(reg),
            "--name", "papers", "--serving", "linear:0.1", "--require-better"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "registered ltr:papers@r1" in out
    entry = Registry(reg).entry("papers", "r1")
    assert entry.metrics["delta"] > 0.2 and entry.metrics["p_value"] < 0.05
    assert entry.metrics["evaluated_on"].startswith("held-out clicks")
    assert entry.data_window["to"] < 193  # the train sessions: the first 80 % (ts 1 … 192)
    assert entry.features == list(features.names(FIELDS))
    # Against the reranker alone (already right) it cannot be significantly better.
    again = [*args[:-3], "--serving", "replace", "--require-better", "--kind", "linear"]
    assert main(again) == 3
    assert "not registered" in capsys.readouterr().out
    assert Registry(reg).revisions("papers") == ["r1"]
    # Query-disjoint: a quarter of the queries never trained on, judged on all their clicks.
    disjoint = [*args[:-1], "--holdout-queries", "0.25"]
    assert main(disjoint) == 0
    second = Registry(reg).entry("papers", "r2")
    assert second.metrics["evaluated_on"] == "clicks of 10 held-out queries"
    assert 0 < second.metrics["queries"] <= 10 and second.metrics["delta"] > 0.2


def test_train_reads_ubi_records_and_judges_on_human_qrels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, feats = scripted(tmp_path)
    sessions = sessions_from_events(json.loads(line) for line in log.read_text().splitlines())
    queries, events = to_ubi(sessions)
    write_ndjson(tmp_path / "q.ndjson", queries)
    write_ndjson(tmp_path / "e.ndjson", events)
    (tmp_path / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": str(i), "text": f"query {i}"}) + "\n" for i in range(40))
    )
    qrels = ["query-id\tcorpus-id\tscore"]
    qrels += [f"{i}\t{d}\t1" for i in range(40) for d in sorted(RELEVANT)]
    (tmp_path / "qrels.tsv").write_text("\n".join(qrels) + "\n")
    args = ["train", "--ubi-queries", str(tmp_path / "q.ndjson"), "--ubi-events",
            str(tmp_path / "e.ndjson"), "--features", str(feats), "--registry",
            str(tmp_path / "reg"), "--name", "p", "--click-model", "coec",
            "--qrels", str(tmp_path / "qrels.tsv"), "--queries", str(tmp_path / "queries.jsonl"),
            "--serving", "linear:0.1"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "human judgments" in out
    entry = Registry(tmp_path / "reg").entry("p", "r1")
    assert entry.metrics["queries"] == 40 and entry.metrics["ndcg@10"] > 0.9
    assert entry.params["click_model"] == "coec"
