"""A BEIR directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) as the
benchmarks read it. The reading itself is the package's (``gateway.offline.evaluation``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.offline.evaluation import read_jsonl, read_qrels

__all__ = [
    "corpus",
    "judged",
    "qrels",
    "queries",
    "read_jsonl",
    "read_qrels",
    "split_queries",
    "texts",
]

Qrels = dict[str, dict[str, int]]


def queries(data: Path) -> dict[str, str]:
    """Query id → text, in ``queries.jsonl`` order."""
    return {str(q["_id"]): str(q["text"]) for q in read_jsonl(data / "queries.jsonl")}


def qrels(data: Path, split: str = "test") -> Qrels:
    return read_qrels(data / "qrels" / f"{split}.tsv")


def split_queries(data: Path, share: float, seed: int) -> tuple[Qrels, Qrels]:
    """(train, test) qrels: the judged queries of ``qrels/test.tsv`` (those in ``queries.jsonl``)
    shuffled with ``seed`` and cut query-disjoint, ``round(share * n)`` of them to train.

    For a dataset judged in one file only (TREC DL): refused where ``qrels/train.tsv``
    exists, so a dataset with its own train split is never split a second way.
    """
    if (data / "qrels" / "train.tsv").exists():
        raise ValueError(f"{data}/qrels/train.tsv exists: use its train split, not --split-queries")
    if not 0.0 < share < 1.0:
        raise ValueError(f"the train share must be between 0 and 1, not {share}")
    judged_ = qrels(data, "test")
    known = queries(data)
    ids = sorted(q for q in judged_ if q in known)
    random.Random(seed).shuffle(ids)
    cut = round(share * len(ids))
    if not 0 < cut < len(ids):
        raise ValueError(f"a share of {share} of {len(ids)} queries leaves one side empty")
    return {q: judged_[q] for q in ids[:cut]}, {q: judged_[q] for q in ids[cut:]}


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
