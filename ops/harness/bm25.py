"""A small in-memory BM25 (k1=0.9, b=0.4) and the reranking workload it picks: for chosen
judged queries of a BEIR directory, the (query, passage) pairs of their top BM25 hits."""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ops.harness import beir

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BM25:
    """Okapi BM25 over ``docs``; ``top`` gives (doc index, score), best first."""

    def __init__(self, docs: list[str], k1: float = 0.9, b: float = 0.4) -> None:
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        lengths = np.zeros(len(docs), dtype=np.float64)
        for i, doc in enumerate(docs):
            counts = Counter(_words(doc))
            lengths[i] = sum(counts.values())
            for word, tf in counts.items():
                postings[word].append((i, tf))
        n = len(docs)
        norm = k1 * (1.0 - b + b * lengths / max(lengths.mean(), 1.0))
        self._n = n
        self._post: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for word, plist in postings.items():
            idx = np.fromiter((p[0] for p in plist), dtype=np.int64, count=len(plist))
            tfs = np.fromiter((p[1] for p in plist), dtype=np.float64, count=len(plist))
            idf = math.log(1.0 + (n - len(plist) + 0.5) / (len(plist) + 0.5))
            self._post[word] = (idx, idf * tfs * (k1 + 1.0) / (tfs + norm[idx]))

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        scores = np.zeros(self._n, dtype=np.float64)
        for word in set(_words(query)):
            hit = self._post.get(word)
            if hit is not None:
                scores[hit[0]] += hit[1]
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order]


@dataclass
class PairSet:
    """Reranking workload: ``per_query`` BM25 candidates for each selected query."""

    qids: list[str]
    dids: list[str]
    pairs: list[tuple[str, str]]
    qrels: dict[str, dict[str, int]]
    bm25: list[float] = field(default_factory=list)


def build_pairs(data: Path, split: str, n_pairs: int, per_query: int, seed: int = 13) -> PairSet:
    """ceil(n_pairs / per_query) queries of ``split`` (fixed seed) x BM25 top-``per_query``."""
    doc_ids, doc_texts = beir.texts(data)
    index = BM25(doc_texts)
    queries = beir.queries(data)
    qrels = beir.qrels(data, split)
    qids = sorted((q for q in qrels if q in queries), key=lambda s: (len(s), s))
    n_queries = min(len(qids), max(1, math.ceil(n_pairs / per_query)))
    chosen = random.Random(seed).sample(qids, n_queries)
    out = PairSet([], [], [], {q: qrels[q] for q in chosen})
    for qid in chosen:
        for idx, score in index.top(queries[qid], per_query):
            out.qids.append(qid)
            out.dids.append(doc_ids[idx])
            out.pairs.append((queries[qid], doc_texts[idx]))
            out.bm25.append(score)
    return out
