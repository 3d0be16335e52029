"""A deterministic cross-encoder for tests: the score counts query words found in the document.

Words are hashed to ids, so ``encode`` produces real-looking token sequences
(``[CLS] q [SEP] d [SEP]`` with type ids 0/1) and ``score`` works on them
alone, like a real model would. ``calls`` counts model runs and ``pairs_scored``
the pairs they held, which tests assert on.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Sequence

import numpy as np

from gateway.model.base import Encoded, Pair, Scores, token_windows

_WORD = re.compile(r"\w+")
_CLS, _SEP = 101, 102


def _word_id(word: str) -> int:
    return 1000 + zlib.crc32(word.lower().encode()) % 1_000_000


class FakeEncoder:
    def __init__(self, *, max_length: int = 256, name: str = "fake-v1") -> None:
        self.max_length = max_length
        self._name = name
        self._lock = threading.Lock()
        self.calls = 0
        self.pairs_scored = 0

    @property
    def fingerprint(self) -> str:
        return f"{self._name}:{self.max_length}"

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        out = []
        for query, doc in pairs:
            q = [_word_id(w) for w in _WORD.findall(query)]
            d = [_word_id(w) for w in _WORD.findall(doc)]
            room = max(self.max_length - len(q) - 3, 0)
            truncated = len(d) > room
            d = d[:room]
            ids = [_CLS, *q, _SEP, *d, _SEP]
            types = [0] * (len(q) + 2) + [1] * (len(d) + 1)
            out.append(
                Encoded(np.array(ids, dtype=np.int64), np.array(types, dtype=np.int64), truncated)
            )
        return out

    def score(self, batch: Sequence[Encoded]) -> Scores:
        with self._lock:
            self.calls += 1
            self.pairs_scored += len(batch)
        scores = np.empty(len(batch), dtype=np.float32)
        for i, enc in enumerate(batch):
            sep = int(np.argmax(enc.ids == _SEP))
            query = set(enc.ids[1:sep].tolist())
            doc = enc.ids[sep + 1 : -1].tolist()
            hits = sum(1 for t in doc if t in query)
            # More matching words score higher; shorter documents break ties.
            scores[i] = hits + 1.0 / (1.0 + len(doc))
        return scores

    def split(self, texts: Sequence[str], max_tokens: int, overlap: int) -> list[list[str]]:
        """Word windows (a word is a token here), cut at the words' character offsets."""
        out = []
        for text in texts:
            spans = [m.span() for m in _WORD.finditer(text)]
            windows = token_windows(len(spans), max_tokens, overlap)
            out.append([text[spans[a][0] : spans[b - 1][1]] for a, b in windows])
        return out
