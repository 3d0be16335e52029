"""Fixtures of the integration suite: private Redis servers (``own_redis``), a small
BEIR-layout dataset (``dataset``: ``tests/data`` with ``EVAL_QUERIES`` and their qrels)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.doubles.corpora import DATA, EVAL_QUERIES
from tests.doubles.redis_servers import RedisProcess


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    started: list[RedisProcess] = []

    def start(*args: str, tls: bool = False) -> RedisProcess:
        server = RedisProcess(tmp_path, *args, tls=tls)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    shutil.copy(DATA / "docs.jsonl", tmp_path / "corpus.jsonl")
    lines = [json.dumps({"_id": q, "text": text}) for q, (text, _) in EVAL_QUERIES.items()]
    (tmp_path / "queries.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "qrels").mkdir()
    judgements = [
        (q, doc, grade) for q, (_, judged) in EVAL_QUERIES.items() for doc, grade in judged.items()
    ]
    rows = ["query-id\tcorpus-id\tscore"] + ["\t".join(map(str, j)) for j in judgements]
    (tmp_path / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path
