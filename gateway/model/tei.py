"""A remote cross-encoder: Hugging Face text-embeddings-inference's ``/rerank`` API.

The pipeline stays as it is. ``encode`` does not tokenize: it wraps each pair's
texts in ``TextPair`` (an ``Encoded`` whose length is an estimate of its token
count, so the batcher's token budget and length sorting still mean something),
and ``score`` sends them, grouped by query, to ``POST /rerank``::

    {"query": "...", "texts": ["...", ...], "raw_scores": true, "truncate": true}
    → [{"index": 0, "score": 1.23}, ...]     (sorted by score; mapped back by index)

``raw_scores`` keeps the logits, like the ONNX backend, so MODEL__SCORE_MODE and
cached scores mean the same thing. TEI's errors (``{"error": ..., "error_type":
...}`` with 413/422/424/429) and connection failures become ``ModelError`` here,
the one boundary for this backend; the search then degrades like with a broken
local model. Calls are blocking and run on the batcher's model thread.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.errors import ModelError
from gateway.model.base import Encoded, Pair, Scores
from gateway.settings import ModelSettings, TeiModel

log = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 4  # estimate for English WordPiece/BPE text
_SPECIAL_TOKENS = 3


@dataclass(frozen=True, slots=True)
class TextPair(Encoded):
    """A pair kept as text for a remote scorer; ``len()`` is an estimated token count."""

    query: str = ""
    text: str = ""


def text_pairs(pairs: Sequence[Pair], max_length: int) -> list[Encoded]:
    """Pairs kept as text for a remote scorer, each with its estimated token count."""
    out: list[Encoded] = []
    for query, text in pairs:
        estimate = (len(query) + len(text)) // _CHARS_PER_TOKEN + _SPECIAL_TOKENS
        n = min(estimate, max_length)
        ids = np.zeros(n, dtype=np.int64)
        out.append(TextPair(ids, ids, estimate > n, query=query, text=text))
    return out


class RemoteText:
    """What the remote backends share: pairs kept as text, a fingerprint fixed at start."""

    settings: ModelSettings
    _fingerprint: str

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        return text_pairs(pairs, self.settings.max_length)

    def clip_query(self, query: str) -> str:
        """A generous character cut (twice the estimate); the server's own truncation is exact."""
        return query[: self.settings.max_query_tokens * _CHARS_PER_TOKEN * 2]

    def _texts(self, batch: Sequence[Encoded]) -> list[TextPair]:
        pairs = [enc for enc in batch if isinstance(enc, TextPair)]
        if len(pairs) != len(batch):
            raise ModelError(f"the {type(self).__name__} backend was given tokenized pairs")
        return pairs


class TeiCrossEncoder(RemoteText):
    settings: TeiModel

    def __init__(self, settings: TeiModel) -> None:
        self.settings = settings
        self.url = settings.tei_url
        self._headers = {"Content-Type": "application/json"}
        if settings.tei_api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.tei_api_key.get_secret_value()}"
        info = self._call("GET", "/info", None)
        if not isinstance(info, dict) or "reranker" not in (info.get("model_type") or {}):
            raise ModelError("the TEI server does not serve a reranker (GET /info model_type)")
        self._fingerprint = (
            f"tei:{info.get('model_id', '?')}@{info.get('model_sha') or '-'}:{settings.max_length}"
        )
        log.info("TEI reranker %s at %s", info.get("model_id"), self.url)

    def score(self, batch: Sequence[Encoded]) -> Scores:
        scores = np.empty(len(batch), dtype=np.float32)
        pairs = self._texts(batch)
        by_query: dict[str, list[int]] = {}
        for i, pair in enumerate(pairs):
            by_query.setdefault(pair.query, []).append(i)
        step = self.settings.tei_max_batch
        for query, positions in by_query.items():
            for start in range(0, len(positions), step):
                chunk = positions[start : start + step]
                texts = [pairs[i].text for i in chunk]
                for j, value in enumerate(self._rerank(query, texts)):
                    scores[chunk[j]] = value
        return scores

    def _rerank(self, query: str, texts: list[str]) -> list[float]:
        body = {"query": query, "texts": texts, "raw_scores": True, "truncate": True}
        answer = self._call("POST", "/rerank", body)
        out: list[float | None] = [None] * len(texts)
        try:
            for item in answer:
                out[int(item["index"])] = float(item["score"])
        except (TypeError, KeyError, ValueError, IndexError) as exc:
            raise ModelError("the TEI server sent an unexpected /rerank answer") from exc
        if any(v is None for v in out):
            raise ModelError("the TEI server left texts unscored")
        return [v for v in out if v is not None]

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=self._headers
        )
        try:
            with urllib.request.urlopen(req, timeout=self.settings.tei_timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ModelError(f"TEI answered {exc.code} ({_error_type(exc)})") from exc
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
            raise ModelError(f"TEI unreachable ({type(exc).__name__})") from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ModelError("the TEI server sent a body that is not JSON") from exc


def _error_type(exc: urllib.error.HTTPError) -> str:
    """TEI's ``error_type`` (``Validation``, ``Overloaded``, ``Backend`` ...), if it sent one."""
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return "no error body"
    kind = body.get("error_type") if isinstance(body, dict) else None
    return str(kind) if kind else "no error_type"
