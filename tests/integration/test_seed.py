"""ops/seed.py loads a BEIR-layout corpus into the real osmem-server."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from ops import seed
from tests.conftest import DATA, http


async def test_seed_loads_a_beir_directory(osmem: str, tmp_path: Path) -> None:
    dataset = tmp_path / "Mini-Set"
    dataset.mkdir()
    shutil.copy(DATA / "docs.jsonl", dataset / "corpus.jsonl")
    total = len((dataset / "corpus.jsonl").read_text().splitlines())

    argv = [str(dataset), "--url", osmem, "--chunk", "7", "--recreate"]
    assert await asyncio.to_thread(seed.main, argv) == 0
    count = await asyncio.to_thread(http, "GET", f"{osmem}/mini-set/_count")
    assert count["count"] == total

    # Seeding again with --limit and --recreate replaces the index.
    argv = [
        str(dataset / "corpus.jsonl"),
        "--url",
        osmem,
        "--index",
        "mini-set",
        "--limit",
        "5",
        "--recreate",
    ]
    assert await asyncio.to_thread(seed.main, argv) == 0
    count = await asyncio.to_thread(http, "GET", f"{osmem}/mini-set/_count")
    assert count["count"] == 5
    doc = await asyncio.to_thread(http, "GET", f"{osmem}/mini-set/_doc/berlin-pop")
    first = json.loads((dataset / "corpus.jsonl").read_text().splitlines()[0])
    assert doc["_source"]["title"] == first["title"]


def test_seed_reports_a_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert seed.main([str(tmp_path), "--url", "http://127.0.0.1:1"]) == 1
    assert capsys.readouterr().err == (
        f"seed: no corpus at {tmp_path / 'corpus.jsonl'} (expected a BEIR corpus.jsonl)\n"
    )
