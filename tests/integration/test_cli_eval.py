"""``rerank-gateway eval`` on a small BEIR-layout dataset: osmem-server, the real model."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from tests.conftest import DATA, GatewayFactory, make_settings

QUERIES = {
    "q1": ("how many people live in berlin", {"berlin-pop": 2, "paris-pop": 1}),
    "q2": ("is coffee good for your health", {"coffee-health": 2}),
    "q3": ("which programming language is fast and safe", {"rust-lang": 2}),
}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    shutil.copy(DATA / "docs.jsonl", tmp_path / "corpus.jsonl")
    lines = [json.dumps({"_id": q, "text": text}) for q, (text, _) in QUERIES.items()]
    (tmp_path / "queries.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "qrels").mkdir()
    judgements = [
        (q, doc, grade) for q, (_, judged) in QUERIES.items() for doc, grade in judged.items()
    ]
    rows = ["query-id\tcorpus-id\tscore"] + ["\t".join(map(str, j)) for j in judgements]
    (tmp_path / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path


async def test_eval_indexes_runs_every_variant_and_agrees_with_the_model_offline(
    dataset: Path,
    osmem: str,
    model_dir: Path,
    gateway: GatewayFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(osmem, model={"path": str(model_dir)}, rerank={"window": 20})
    url = await gateway(settings)
    argv = ["eval", "--data", str(dataset), "--gateway", url, "--index", "evalset"]
    argv += ["--index-into", osmem, "--depth", "20", "--check-offline"]
    argv += ["--model-dir", str(model_dir)]
    assert await asyncio.to_thread(cli_main, argv) == 0
    out = capsys.readouterr().out
    assert f"indexed 20 documents into {osmem}/evalset" in out
    assert "offline check vs rerank: max |score diff|" in out
    assert "identical rankings 3/3" in out
    rows = dict(re.findall(r"^\| (baseline|rerank|offline-model) \| (.+) \|$", out, re.M))
    assert set(rows) == {"baseline", "rerank", "offline-model"}
    assert rows["rerank"] == rows["offline-model"]  # same rankings, same measures
    for cells in rows.values():
        assert all(0.0 <= float(c) <= 1.0 for c in cells.split(" | "))
    (tally,) = re.findall(r"rerank vs baseline .*: (\d+) wins, (\d+) losses, (\d+) ties", out)
    assert sum(map(int, tally)) == len(QUERIES)
