"""The newcomer demo end to end: real osmem-server, the real model, SciFact judgments."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.doubles.corpora import REPO


def test_demo_marks_relevant_hits_and_reports_ndcg(model_dir: Path) -> None:
    env = {**os.environ, "GATEWAY_MODEL__PATH": str(model_dir)}
    scifact = REPO.parent / "shared" / "data" / "scifact"
    args = ["--data", str(scifact), "--queries", "3", "--show", "3", "--distractors", "300"]
    done = subprocess.run(
        [sys.executable, "-m", "ops.demo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    out = done.stdout
    assert "bi-encoder" in out and "behind the cross-encoder interface" in out
    # Query 3 of SciFact's test split has a judged-relevant document in BM25's top 10: marked
    # in both columns of its row.
    assert re.search(r"^\s+\d+  ✓ .+  ✓ ", out, re.MULTILINE), out
    summary = re.search(
        r"nDCG@10 over 3 judged SciFact test queries: BM25 (\S+) → gateway (\S+)", out
    )
    assert summary, out
    assert all(0 <= float(v) <= 1 for v in summary.groups())
    assert re.search(r"^latency cluster .+ ms", out, re.MULTILINE)
    assert re.search(r"^latency gateway .+ ms", out, re.MULTILINE)
    assert "On your own cluster: rerank-gateway serve --upstream " in out
    assert "INFO" not in out + done.stderr  # no access log between the tables
