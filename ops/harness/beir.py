"""A BEIR directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) as the
benchmarks read it. The reading itself is the package's (``gateway.offline.evaluation``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.offline.evaluation import read_jsonl, read_qrels

__all__ = ["corpus", "judged", "qrels", "queries", "read_jsonl", "read_qrels", "texts"]

Qrels = dict[str, dict[str, int]]


def queries(data: Path) -> dict[str, str]:
    """Query id → text, in ``queries.jsonl`` order."""
    return {str(q["_id"]): str(q["text"]) for q in read_jsonl(data / "queries.jsonl")}


def qrels(data: Path, split: str = "test") -> Qrels:
    return read_qrels(data / "qrels" / f"{split}.tsv")


def judged(data: Path, split: str = "test", limit: int = 0) -> dict[str, str]:
    """Queries judged in ``split`` (id → text), ``queries.jsonl`` order; ``limit``: first N."""
    wanted = qrels(data, split)
    out = {q: t for q, t in queries(data).items() if q in wanted}
    return dict(list(out.items())[:limit]) if limit else out


def corpus(data: Path) -> Iterator[dict[str, Any]]:
    return read_jsonl(data / "corpus.jsonl")


def texts(data: Path) -> tuple[list[str], list[str]]:
    """(document ids, ``title text``) of the corpus, in file order."""
    ids, out = [], []
    for doc in corpus(data):
        ids.append(str(doc["_id"]))
        out.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
    return ids, out
