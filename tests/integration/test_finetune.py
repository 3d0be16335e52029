"""`rerank-gateway fine-tune` end to end on a tiny model: labels → CrossEncoderTrainer → the
project's ONNX export → the gateway's ONNX backend → batch invariance → the registry.

The starting weights are a tiny BERT made here (2 layers, hidden 32) with the stand-in
model's tokenizer, so a handful of steps take seconds; the serving model is the stand-in
(``../shared/models``). Needs the ``finetune`` extra (in ``test``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.learning.finetune_checks import batch_spread, encoder
from gateway.learning.registry import CROSS_ENCODER, Registry, RegistryError
from gateway.model.local import REGISTRY_FILE

pytestmark = [
    pytest.mark.integration,
    # torch's and transformers' notices about their own internals while tracing the ONNX
    # export (TracerWarning: a shape check traced as a constant; UserWarning: how opset 17
    # spells advanced indexing; both covered by the agreement check on real pairs) and
    # their deprecations: not this project's code.
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
torch = pytest.importorskip("torch", reason="the finetune extra (torch) is not installed")
transformers = pytest.importorskip("transformers")
pytest.importorskip("sentence_transformers")

DOCS = {
    "berlin": ("Population of Berlin", "Berlin has about 3.7 million people."),
    "paris": ("Population of Paris", "Paris has about 2.1 million inhabitants."),
    "scurvy": ("Scurvy", "Scurvy is caused by a lack of vitamin C."),
    "python": ("Python", "Python is a programming language released in 1991."),
    "tea": ("Tea", "Tea is brewed from the leaves of Camellia sinensis."),
    "rome": ("Rome", "Rome is the capital of Italy."),
}
QUERIES = {
    "1": "how many people live in berlin",
    "2": "what causes scurvy",
    "3": "when was python released",
    "4": "how is tea made",
    "5": "population of paris",  # held out
    "6": "capital of italy",  # held out
}
TRAIN = {"1": "berlin", "2": "scurvy", "3": "python", "4": "tea"}
TEST = {"5": "paris", "6": "rome"}


def tiny_start(model_dir: Path, out: Path) -> Path:
    tok = transformers.BertTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    config = transformers.BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def data(tmp_path: Path) -> dict[str, Path]:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in DOCS.items())
    )
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    for name, judged in (("train", TRAIN), ("test", TEST)):
        lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t1" for q, d in judged.items())]
        (tmp_path / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    candidates = tmp_path / "candidates.json"
    candidates.write_text(json.dumps({t: sorted(DOCS) for t in QUERIES.values()}))
    return {"corpus": corpus, "queries": queries, "candidates": candidates}


def fine_tune(tmp_path: Path, model_dir: Path, start: Path, files: dict[str, Path]) -> int:
    return main(
        [
            "fine-tune",
            "--start", str(start),
            "--corpus", str(files["corpus"]),
            "--candidates", str(files["candidates"]),
            "--qrels", str(tmp_path / "train.tsv"),
            "--queries", str(files["queries"]),
            "--eval-qrels", str(tmp_path / "test.tsv"),
            "--serving-model", str(model_dir),
            "--registry", str(tmp_path / "models"),
            "--name", "tiny-ce",
            "--max-steps", "3",
            "--batch-size", "2",
            "--list-size", "3",
            "--max-length", "32",
            "--learning-rate", "1e-3",
            "--threads", "1",
            "--work", str(tmp_path / "work"),
        ]
    )  # fmt: skip


def test_labels_to_a_registered_onnx_model_the_gateway_serves(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = tiny_start(model_dir, tmp_path / "start")
    files = data(tmp_path)
    assert fine_tune(tmp_path, model_dir, start, files) == 0
    out = capsys.readouterr().out
    assert "4 training lists from qrels" in out and "trained 3 steps (18 pairs)" in out
    assert "on " + str(tmp_path / "test.tsv") + " (2 queries)" in out

    registry = Registry(tmp_path / "models")
    entry = registry.entry("tiny-ce", "r1")
    assert entry.kind == CROSS_ENCODER and entry.fingerprint == "ce:tiny-ce@r1"
    assert entry.metrics["queries"] == 2 and 0.0 <= entry.metrics["p_value"] <= 1.0
    assert entry.metrics["checks"]["passed"] is True
    assert entry.metrics["checks"]["max_abs_logit_diff"] <= 1e-3
    assert entry.metrics["training"]["steps"] == 3 and entry.metrics["train_lists"] == 4
    assert entry.params["max_length"] == 32 and entry.params["loss"] == "lambda"
    assert registry.serving("tiny-ce") is None  # the canary promotes, not training
    served = registry.model_dir("tiny-ce@r1")
    assert served == tmp_path / "models" / "tiny-ce" / "r1" / "model"
    assert {"model.onnx", "model_int8.onnx", "tokenizer.json", "export.json"} <= {
        p.name for p in served.iterdir()
    }
    with pytest.raises(RegistryError, match="GATEWAY_MODEL__PATH="):
        registry.load("tiny-ce@r1")  # not a second-stage ranker

    # The gateway's ONNX backend serves it; each path is batch-invariant; the revision
    # is part of the score cache fingerprint.
    fp32 = encoder(served, "none", max_length=32)
    texts = [f"{t} {x}" for t, x in DOCS.values()] + list(QUERIES.values())
    assert batch_spread(fp32, texts) <= 1e-3
    assert batch_spread(encoder(served, "dynamic", max_length=32), texts) <= 1e-3
    assert fp32.revision == "ce:tiny-ce@r1"
    bare = tmp_path / "bare"
    shutil.copytree(served, bare)
    (bare / REGISTRY_FILE).unlink()
    unstamped = encoder(bare, "none", max_length=32)
    assert unstamped.revision is None and unstamped.fingerprint != fp32.fingerprint
    pair = [("how many people live in berlin", "Berlin has about 3.7 million people.")]
    assert unstamped.score(unstamped.encode(pair)) == pytest.approx(fp32.score(fp32.encode(pair)))
    (served / REGISTRY_FILE).write_text(json.dumps({"fingerprint": "ce:tiny-ce@r9"}))
    assert encoder(served, "none", max_length=32).fingerprint != fp32.fingerprint
