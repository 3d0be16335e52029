"""``rerank-gateway eval`` on a small BEIR-layout dataset: osmem-server, the real model."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from tests.doubles.corpora import EVAL_QUERIES as QUERIES
from tests.doubles.gateway import GatewayFactory, make_settings


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
    captured = capsys.readouterr()
    out = captured.out
    # One line per variant as it starts and ends, on stderr only (stdout is parsed).
    progress = [line for line in captured.err.splitlines() if line.startswith("eval: ")]
    assert [re.sub(r"done in \d+\.\d s$", "done in N s", line) for line in progress] == [
        f"eval: 1/2 baseline: {len(QUERIES)} queries ...",
        "eval: 1/2 baseline: done in N s",
        f"eval: 2/2 rerank: {len(QUERIES)} queries ...",
        "eval: 2/2 rerank: done in N s",
    ]
    assert "eval: " not in out
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
