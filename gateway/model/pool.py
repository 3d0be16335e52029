"""Remote scorers as a pool: several backend URLs speaking one rerank protocol.

``MODEL__BACKEND=pool`` with ``MODEL__POOL_URLS`` (full endpoint URLs) and
``MODEL__POOL_PROTOCOL``:

- ``cohere``: Cohere / Jina ``POST .../rerank`` (another rerank-gateway's
  ``/v1/rerank`` or ``/v2/rerank``, vLLM, Cohere-compatible servers), body
  ``{"model", "query", "documents", "return_documents": false}``; the answer's
  ``relevance_score`` (a sigmoid) is turned back into the logit;
- ``tei``: text-embeddings-inference ``POST /rerank`` (or a gateway's), with
  ``raw_scores: true``, so the logits come as they are.
- ``oip``: the Open Inference Protocol v2 (Triton, KServe) ``/infer``, text or
  token-id tensors: ``gateway.model.oip`` (a subclass: its own ``_call`` and
  ``_probe``).

Every call carries ``X-Rerank-Timeout-Ms`` = MODEL__POOL_TIMEOUT_S, so a gateway
backend gives the pairs the call's time rather than its own (shorter) search
deadline; other servers ignore the header.

``encode`` keeps pairs as text (``tei.TextPair``, length estimated for the
batcher's budget). ``score`` runs on the batcher's model thread: it splits each
query's pairs into one part per healthy backend and sends the parts at once
through one ``aiohttp`` session that lives on the pool's own event-loop thread.
A part whose backend fails (refused, timed out, non-2xx, unreadable answer)
moves on to the next healthy backend: failover within the same batch.

Each backend has a breaker: a failure opens it for ``MODEL__POOL_BACKOFF_S``,
doubling with each failure in a row up to 30 s; while open it gets no parts, and
a health check (one tiny rerank call, every ``MODEL__POOL_BACKOFF_S``) closes it
once the backend answers again. Once its time is up it is tried again anyway
(half open). With every breaker open, the one that opened first is tried rather
than none. All failing: ``ModelError``, and the search degrades as with a broken
local model. Every URL must serve the same model: ``MODEL__POOL_MODEL`` (sent as
``model``) is part of the fingerprint, so of the cache keys.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import numpy as np

from gateway.errors import ModelError
from gateway.model.base import Encoded, Scores
from gateway.model.tei import RemoteText, TextPair
from gateway.settings import PoolModel

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0
T = TypeVar("T")
TIMEOUT_HEADER = (
    "X-Rerank-Timeout-Ms"  # what a rerank-gateway backend reads (gateway.search.request)
)
_P_EDGE = 1e-15  # relevance scores of 0 or 1 exactly: the logit is cut to about ±34.5
_NO_IDS = np.zeros(0, dtype=np.int64)


class BackendError(Exception):
    """One backend call failed; the part goes to another backend."""


@dataclass(slots=True)
class Backend:
    """One URL and its breaker."""

    url: str
    failures: int = 0  # in a row
    open_until: float = 0.0  # monotonic time; 0: closed
    parts: int = 0  # parts it has scored (tests, logs)

    def available(self, now: float) -> bool:
        return now >= self.open_until

    def failed(self, now: float, backoff_s: float) -> None:
        self.failures += 1
        self.open_until = now + min(backoff_s * 2 ** (self.failures - 1), _MAX_BACKOFF_S)

    def ok(self) -> None:
        self.failures, self.open_until = 0, 0.0


def request_body(protocol: str, model: str, query: str, texts: list[str]) -> dict[str, Any]:
    if protocol == "tei":
        return {"query": query, "texts": texts, "raw_scores": True, "truncate": True}
    return {"model": model, "query": query, "documents": texts, "return_documents": False}


def answer_logits(protocol: str, answer: Any, n: int) -> list[float]:
    """One logit per text, in request order, from a backend's answer."""
    out: list[float | None] = [None] * n
    try:
        items = answer if protocol == "tei" else answer["results"]
        for item in items:
            if protocol == "tei":
                value = float(item["score"])
            else:
                p = min(max(float(item["relevance_score"]), _P_EDGE), 1 - _P_EDGE)
                value = math.log(p) - math.log1p(-p)
            out[int(item["index"])] = value
    except (TypeError, KeyError, ValueError, IndexError) as exc:
        raise BackendError("unexpected answer") from exc
    if any(v is None for v in out):
        raise BackendError("texts left unscored")
    return [v for v in out if v is not None]


class PoolCrossEncoder(RemoteText):
    settings: PoolModel

    def __init__(self, settings: PoolModel) -> None:
        if not settings.pool_urls:
            raise ModelError("MODEL__POOL_URLS is empty")
        self.settings = settings
        self.protocol = settings.pool_protocol
        self.backends = [Backend(url) for url in settings.pool_urls]
        # A gateway backend scores within the call's time, not its own search deadline.
        timeout_ms = f"{settings.pool_timeout_s * 1000:.0f}"
        self._headers = {"Content-Type": "application/json", TIMEOUT_HEADER: timeout_ms}
        if settings.pool_api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.pool_api_key.get_secret_value()}"
        self._fingerprint = f"pool:{self.protocol}:{settings.pool_model}:{settings.max_length}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pool-io", daemon=True)
        self._thread.start()
        self._session = self._run(self._open())
        self._checks = asyncio.run_coroutine_threadsafe(self._health_checks(), self._loop)
        log.info("scoring pool of %d %s backends", len(self.backends), self.protocol)

    def score(self, batch: Sequence[Encoded]) -> Scores:
        return self._run(self._score(self._texts(batch)))

    def close(self) -> None:
        """Stop health checks, close the session, end the I/O thread (idempotent)."""
        if self._loop.is_closed():
            return
        self._checks.cancel()
        self._run(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _open(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=self.settings.pool_timeout_s)
        return aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())

    async def _score(self, pairs: list[TextPair]) -> Scores:
        by_query: dict[str, list[int]] = {}
        for i, pair in enumerate(pairs):
            by_query.setdefault(pair.query, []).append(i)
        jobs: list[tuple[list[int], asyncio.Future[list[float]]]] = []
        for positions in by_query.values():
            healthy = self._healthy()
            size = -(-len(positions) // len(healthy))
            for k, start in enumerate(range(0, len(positions), size)):
                part = positions[start : start + size]
                order = healthy[k:] + healthy[:k]  # this part's backend first, then the others
                job = self._send(order, [pairs[i] for i in part])
                jobs.append((part, asyncio.ensure_future(job)))
        scores = np.empty(len(pairs), dtype=np.float32)
        results = await asyncio.gather(*(job for _, job in jobs), return_exceptions=True)
        for (part, _), result in zip(jobs, results, strict=True):
            if isinstance(result, ModelError | asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):  # the one boundary: nothing else escapes raw
                raise ModelError(f"pool scoring failed: {type(result).__name__}") from result
            scores[part] = result
        return scores

    def _healthy(self) -> list[Backend]:
        now = time.monotonic()
        healthy = [b for b in self.backends if b.available(now)]
        return healthy or [min(self.backends, key=lambda b: b.open_until)]

    async def _send(self, order: list[Backend], part: list[TextPair]) -> list[float]:
        for backend in order:
            if backend is not order[0] and not backend.available(time.monotonic()):
                continue
            try:
                logits = await self._call(backend, part)
            except BackendError as exc:
                backend.failed(time.monotonic(), self.settings.pool_backoff_s)
                log.warning("scoring backend %s failed (%s), trying another", backend.url, exc)
                continue
            backend.ok()
            backend.parts += 1
            return logits
        raise ModelError(f"no scoring backend could score {len(part)} pairs")

    async def _call(self, backend: Backend, part: list[TextPair]) -> list[float]:
        """One part (pairs of one query) scored by one backend; its faults as BackendError."""
        query, texts = part[0].query, [pair.text for pair in part]
        body = request_body(self.protocol, self.settings.pool_model, query, texts)
        answer = await self._post_json(backend.url, body)
        return answer_logits(self.protocol, answer, len(texts))

    async def _post_json(
        self, url: str, body: object, detail: Callable[[bytes], str] | None = None
    ) -> Any:
        """A backend's JSON answer to ``body``; a non-200 answer (with ``detail`` of its body
        when given), a refused or timed-out call and a body that is not JSON as BackendError."""
        try:
            async with self._session.post(url, json=body, headers=self._headers) as r:
                if r.status != 200:
                    why = f": {detail(await r.read())}" if detail else ""
                    raise BackendError(f"status {r.status}{why}")
                return await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BackendError(type(exc).__name__) from exc

    async def _probe(self, backend: Backend) -> None:
        """One tiny rerank call; BackendError if the backend does not answer it."""
        await self._call(
            backend, [TextPair(_NO_IDS, _NO_IDS, query="health check", text="health check")]
        )

    async def _health_checks(self) -> None:
        """Every backoff period, one probe of each open backend; success closes it."""
        while True:
            await asyncio.sleep(self.settings.pool_backoff_s)
            for backend in self.backends:
                if backend.open_until == 0.0:
                    continue
                try:
                    await self._probe(backend)
                except BackendError:
                    continue
                log.info("scoring backend %s answers again", backend.url)
                backend.ok()
