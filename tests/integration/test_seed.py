"""``rerank-gateway seed`` loads a BEIR-layout corpus into the
real osmem-server."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from gateway.cli.seed import BAR_WIDTH, STEPS, ProgressBar
from tests.doubles.commands import run_cli
from tests.doubles.corpora import DATA
from tests.doubles.net import http


async def test_seed_loads_a_beir_directory(osmem: str, tmp_path: Path) -> None:
    dataset = tmp_path / "Mini-Set"
    dataset.mkdir()
    shutil.copy(DATA / "docs.jsonl", dataset / "corpus.jsonl")
    total = len((dataset / "corpus.jsonl").read_text().splitlines())

    argv = [str(dataset), "--url", osmem, "--chunk", "7", "--recreate"]
    assert await asyncio.to_thread(cli_main, ["seed", *argv]) == 0
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
    assert await asyncio.to_thread(cli_main, ["seed", *argv]) == 0
    count = await asyncio.to_thread(http, "GET", f"{osmem}/mini-set/_count")
    assert count["count"] == 5
    doc = await asyncio.to_thread(http, "GET", f"{osmem}/mini-set/_doc/berlin-pop")
    first = json.loads((dataset / "corpus.jsonl").read_text().splitlines()[0])
    assert doc["_source"]["title"] == first["title"]


def test_seed_reports_a_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["seed", str(tmp_path), "--url", "http://127.0.0.1:1"]) == 1
    assert capsys.readouterr().err == (
        f"seed: no corpus at {tmp_path / 'corpus.jsonl'} (expected a BEIR corpus.jsonl)\n"
    )


def test_the_command_seeds_from_outside_the_repository(osmem: str, tmp_path: Path) -> None:
    """``rerank-gateway seed`` (the console script, run elsewhere) with its progress lines."""
    shutil.copy(DATA / "docs.jsonl", tmp_path / "corpus.jsonl")
    total = len((tmp_path / "corpus.jsonl").read_text().splitlines())
    args = ["seed", "corpus.jsonl", "--url", osmem, "--index", "elsewhere", "--chunk", "4"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"seed: {total} documents in index 'elsewhere' at {osmem}\n"
    progress = done.stderr.splitlines()
    assert progress[-1] == f"seed: [{'#' * BAR_WIDTH}] {total}/{total} documents (100%)"
    assert len(progress) <= STEPS + 1  # not a terminal: a line per tenth at most
    count = http("GET", f"{osmem}/elsewhere/_count")
    assert count["count"] == total


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = ProgressBar(4, out)
    for done in (1, 2, 4):
        bar(done)
    frames = out.getvalue().split("\r")[1:]
    assert frames[0] == f"seed: [{'#' * (BAR_WIDTH // 4):<{BAR_WIDTH}}] 1/4 documents (25%)"
    assert frames[-1] == f"seed: [{'#' * BAR_WIDTH}] 4/4 documents (100%)\n"
