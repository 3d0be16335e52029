"""The repository's paths and the corpora tests search.

``load_docs()`` reads ``tests/data/docs.jsonl`` (what the real search servers are
seeded with). The scripted clusters serve smaller corpora, each with the query it
is meant for and the order ``FakeEncoder`` gives it:

- ``CAPITALS``: three capitals; for "capital of Italy" a reranker puts Rome (d3) first.
- ``WALL_DOCS`` / ``WALL_QUERY``: the functional suite's seven documents.
- ``POPULATION_DOCS`` / ``POPULATION_QUERY``: the fault suite's eight documents.

``EVAL_QUERIES`` are judged queries over ``tests/data`` (a BEIR-layout dataset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"
SCIFACT = SHARED / "data" / "scifact"  # BEIR SciFact: calibration (train) and test pairs


def load_docs() -> list[dict[str, Any]]:
    with (DATA / "docs.jsonl").open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


# Upstream order d1, d2, d3; for "capital of Italy" a reranker puts Rome (d3) first.
CAPITALS: list[dict[str, Any]] = [
    {"_id": "d1", "title": "Paris", "text": "Paris is the capital of France."},
    {"_id": "d2", "title": "Berlin", "text": "Berlin is the capital of Germany."},
    {"_id": "d3", "title": "Rome", "text": "Rome is the capital of Italy and a city."},
]

# Upstream (BM25-like) order; FakeEncoder prefers more words of the query, then shorter texts.
WALL_DOCS: list[dict[str, Any]] = [
    {"_id": "d0", "title": "Paris", "text": "Paris is the capital of France."},
    {"_id": "d1", "title": "Walls", "text": "A wall is a structure."},
    {"_id": "d2", "title": "Berlin", "text": "Berlin is the capital of Germany."},
    {"_id": "d3", "title": "Berlin Wall", "text": "The Berlin Wall fell in 1989."},
    {"_id": "d4", "title": "Rome", "text": "Rome is old."},
    {"_id": "d5", "title": "Madrid", "text": "Madrid is in Spain."},
    {"_id": "d6", "title": "Lisbon", "text": "Lisbon is by the sea."},
]
WALL_QUERY = "berlin wall"
WALL_RERANKED = ["d3", "d2", "d1", "d0", "d4"]  # FakeEncoder's order of the first five (window 5)
WALL_SEARCH: dict[str, Any] = {"query": {"match": {"text": WALL_QUERY}}}

# Upstream (BM25-like) order: d0 first. The fake model prefers documents sharing query words.
POPULATION_DOCS: list[dict[str, Any]] = [
    {"_id": f"d{i}", "title": f"document {i}", "text": text}
    for i, text in enumerate(
        [
            "nothing relevant here",
            "weather report for tuesday",
            "berlin population is about 3.7 million",
            "recipes with potatoes",
            "berlin wall history",
            "football scores",
            "population of berlin and its districts berlin",
            "stock market news",
        ]
    )
]
POPULATION_QUERY = "berlin population"
POPULATION_FAKE_ORDER = ["d6", "d2", "d4"]  # what FakeEncoder puts first for POPULATION_QUERY

# Judged queries over tests/data: (text, {doc id: grade}).
EVAL_QUERIES = {
    "q1": ("how many people live in berlin", {"berlin-pop": 2, "paris-pop": 1}),
    "q2": ("is coffee good for your health", {"coffee-health": 2}),
    "q3": ("which programming language is fast and safe", {"rust-lang": 2}),
}
