"""The demo's own parts: judged queries, the corpus subset, nDCG@10 and the model's label."""

from __future__ import annotations

import json
from pathlib import Path

import ir_measures
import pytest
from ir_measures import nDCG

from gateway.settings import ModelSettings
from ops.demo import corpus_subset, judged_queries, model_label, ndcg_at
from tests.doubles.corpora import SCIFACT


@pytest.mark.parametrize(
    ("ranked", "relevant"),
    [
        (["d3", "d1", "d9"], {"d1": 1}),
        (["d1", "d2", "d3"], {"d3": 1, "d1": 1}),
        ([f"x{i}" for i in range(10)] + ["d1"], {"d1": 1}),  # beyond the cut
        (["d2", "d1", "d5", "d4"], {"d1": 2, "d4": 1, "d7": 1}),  # graded, one never retrieved
    ],
)
def test_ndcg_matches_ir_measures(ranked: list[str], relevant: dict[str, int]) -> None:
    run = {"q": {doc: float(len(ranked) - i) for i, doc in enumerate(ranked)}}
    expected = ir_measures.calc_aggregate([nDCG @ 10], {"q": relevant}, run)[nDCG @ 10]
    assert ndcg_at(ranked, relevant) == pytest.approx(expected)


def test_judged_queries_come_from_the_test_split() -> None:
    queries = judged_queries(SCIFACT, 5)
    assert len(queries) == 5 and all(q.relevant and q.text for q in queries)
    with (SCIFACT / "qrels" / "test.tsv").open() as fh:
        test_ids = {line.split()[0] for line in list(fh)[1:]}
    assert {q.qid for q in queries} <= test_ids


def test_subset_holds_every_judged_document_and_the_distractors() -> None:
    queries = judged_queries(SCIFACT, 10)
    judged = {doc for q in queries for doc in q.relevant}
    docs = corpus_subset(SCIFACT / "corpus.jsonl", judged, 50)
    ids = [d["_id"] for d in docs]
    assert judged <= set(ids) and len(ids) == len(set(ids)) == len(judged) + 50
    assert all(d["text"] for d in docs)


def test_model_label_says_what_the_model_is(tmp_path: Path, model_dir: Path) -> None:
    stand_in = model_label(ModelSettings(path=model_dir))
    assert "bi-encoder" in stand_in and "not a trained cross-encoder" in stand_in
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["BertForSequenceClassification"]})
    )
    real = model_label(ModelSettings(path=tmp_path))
    assert "a cross-encoder (BertForSequenceClassification)" in real and "bi-encoder" not in real
