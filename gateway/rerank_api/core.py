"""What every wire format of the rerank API shares: key, body, profile, deadline, scoring.

A wire format (``Wire``) turns a body into a ``Job`` and a ``Job``'s scores into
its answer, and names the status and body of each ``ApiError`` kind. ``serve``
does the rest:

- the access key (``GATEWAY_ACCESS__API_KEY``), as ``X-Gateway-Api-Key`` or
  ``Authorization: Bearer`` (what Cohere, TEI and Elasticsearch's services
  send); nothing of the request goes upstream, so the bearer is the gateway's;
- ``model`` names a rerank profile (RELEVANCE__PROFILES, ``default``; the
  REQUEST_PROFILES allow-list applies) or a model a profile loaded
  (RELEVANCE__MODELS); absent: ``default``;
- the profile's deadline, or ``X-Rerank-Timeout-Ms`` up to SPEED__MAX_TIMEOUT_S;
- every document is scored through the searches' reranker (cache → batcher →
  model), chunked and pooled when the profile says ``long_docs=chunk``. A
  request is answered in full or not at all: past the deadline, overloaded or
  with the model failing, it gets an error (never 429), never fewer scores.

Scores come back as the model's logits; each wire format maps them to its scale.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from aiohttp import web
from pydantic import SecretStr

from gateway.errors import ClientRequestError, ModelError
from gateway.model.base import TextSplitter
from gateway.rerank import chunking
from gateway.rerank.profiles import DEFAULT, Profile
from gateway.rerank.reranker import Passage, Reranker
from gateway.search.pipeline import SearchFlow
from gateway.search.request import TIMEOUT_HEADER
from gateway.upstream.client import GATEWAY_KEY_HEADER
from gateway.web.state import FLOW, METRICS, RECORD

MAX_DOCUMENTS = 1000  # per request, Cohere's recommended maximum; the batcher queue bounds the rest
_INDEX = "_rerank_api"  # the cache-key "index" of API passages (searches use real index names)

Kind = Literal[
    "invalid",  # the body is not what the API takes
    "empty",  # no documents
    "too_large",  # too many documents, a body past SERVER__MAX_BODY_BYTES, a text too long
    "unauthorized",  # key missing or wrong
    "unknown_model",  # ``model`` names no profile or model here
    "not_ready",  # the model is still loading, or failed to load
    "overloaded",  # the batcher queue is full, or the deadline passed
    "model_error",  # the model failed on these pairs
]


class ApiError(Exception):
    """A rerank API request that cannot be answered; each ``Wire`` shapes its answer."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class Job:
    """One rerank request, whatever its wire format."""

    query: str
    documents: list[str]
    model: str | None = None
    top_n: int | None = None
    return_documents: bool = False
    max_tokens_per_doc: int | None = None
    truncate: bool = True  # False: a text past the model's limit is refused (TEI)
    raw_scores: bool = False  # answer the logits rather than the API's usual scale (TEI)


class Wire(Protocol):
    """One API's request and answer shapes."""

    name: str  # label of gateway_rerank_api_documents

    def parse(self, body: dict[str, Any]) -> Job: ...

    def answer(self, job: Job, logits: list[float], request_id: str) -> Any: ...

    def error(self, exc: ApiError) -> tuple[int, Any]: ...


@dataclass(frozen=True, slots=True)
class ApiConfig:
    api_key: SecretStr | None


CONFIG = web.AppKey("rerank_api", ApiConfig)


async def serve(request: web.Request, *, wire: Wire) -> web.Response:
    try:
        _check_key(request, request.app[CONFIG].api_key)
        job = wire.parse(await _body(request))
        logits = await _score(request, job)
    except ApiError as exc:
        status, body = wire.error(exc)
        return web.json_response(body, status=status)
    request.app[METRICS].rerank_api_documents.labels(wire.name).inc(len(job.documents))
    record = request.get(RECORD)
    request_id = record.request_id if record is not None else ""
    return web.json_response(wire.answer(job, logits, request_id))


def ranked(logits: Sequence[float], top_n: int | None) -> list[int]:
    """Document positions, best first (ties: request order), the first ``top_n``."""
    order = sorted(range(len(logits)), key=lambda i: -logits[i])
    return order if top_n is None else order[:top_n]


def _check_key(request: web.Request, key: SecretStr | None) -> None:
    if key is None:
        return
    want = key.get_secret_value().encode()
    given = request.headers.get(GATEWAY_KEY_HEADER, "")
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    ok = hmac.compare_digest(given.encode(), want)
    ok |= scheme.lower() == "bearer" and hmac.compare_digest(bearer.strip().encode(), want)
    if not ok:
        what = "invalid" if given or bearer else "missing"
        raise ApiError("unauthorized", f"{what} API key")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError("too_large", "the request body is larger than the limit") from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError("invalid", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError("invalid", "the request body must be a JSON object")
    return body


def _profile(flow: SearchFlow, name: str | None) -> tuple[Profile, Reranker | None]:
    profiles = flow.profiles
    if name is None or name == DEFAULT:
        profile = profiles.default
    elif name in profiles.named:
        try:
            profile = profiles.select(None, name)
        except ClientRequestError as exc:
            raise ApiError("invalid", exc.reason) from None
    elif name in flow.rerankers:
        profile = replace(profiles.default, name=name, model=name)
    else:
        raise ApiError("unknown_model", f"model [{name}] is no rerank profile or model here")
    return profile, flow.model(profile.model)


def _timeout_s(request: web.Request, profile: Profile, most_s: float) -> float:
    asked = request.headers.get(TIMEOUT_HEADER)
    if asked is None:
        return profile.timeout_s
    try:
        ms = float(asked)
    except ValueError:
        ms = math.nan
    if not math.isfinite(ms) or ms <= 0:
        raise ApiError("invalid", f"header [{TIMEOUT_HEADER}] must be a positive number of ms")
    return min(ms / 1000, most_s)


async def _score(request: web.Request, job: Job) -> list[float]:
    flow = request.app[FLOW]
    profile, reranker = _profile(flow, job.model)
    if reranker is None:
        raise ApiError("not_ready", "the model is not ready")
    if len(job.documents) > MAX_DOCUMENTS:
        raise ApiError("too_large", f"at most {MAX_DOCUMENTS} documents per request")
    timeout_s = _timeout_s(request, profile, flow.max_timeout_s)
    texts = job.documents
    encoder = reranker.batcher.encoder
    try:
        if job.max_tokens_per_doc is not None and isinstance(encoder, TextSplitter):
            cut = await asyncio.to_thread(encoder.split, texts, job.max_tokens_per_doc, 0)
            texts = [parts[0] if parts else "" for parts in cut]
        if not job.truncate:
            encoded = await reranker.batcher.encode([(job.query, t) for t in texts])
            too_long = [i for i, e in enumerate(encoded) if e.truncated]
            if too_long:
                raise ApiError(
                    "too_large",
                    f"text [{too_long[0]}] is longer than the model's token limit"
                    " and `truncate` is false",
                )
        pieces = await _pieces(texts, profile.chunking, encoder)
    except ModelError:
        raise ApiError("model_error", "the model could not tokenize the documents") from None
    started = time.perf_counter()
    outcome = await reranker.score(
        job.query,
        [Passage(_INDEX, f"#{p.chunk}", p.text) for p in pieces],
        timeout_s,
        logits=True,
    )
    record = request.get(RECORD)
    if record is not None:
        record.timings_ms["rerank"] = (time.perf_counter() - started) * 1000
    per_doc: list[list[float | None]] = [[] for _ in texts]
    for piece, score in zip(pieces, outcome.scores, strict=True):
        per_doc[piece.hit].append(score)
    pooled = [chunking.pool(scores, profile.chunking.pooling).score for scores in per_doc]
    out = [s for s in pooled if s is not None]
    if outcome.status != "full" or len(out) != len(texts):
        if outcome.reason == "model_error":
            raise ApiError("model_error", "the model failed on these documents")
        raise ApiError("overloaded", f"not every document was scored ({outcome.reason})")
    return out


async def _pieces(
    texts: list[str], spec: chunking.ChunkSpec, encoder: object
) -> list[chunking.Piece]:
    """One piece per text, or (``long_docs=chunk``) its token windows; an empty text is
    scored as it is, so every document has a score."""
    if spec.strategy != "chunk":
        return [chunking.Piece(i, 0, t) for i, t in enumerate(texts)]
    found = await chunking.pieces([[t] for t in texts], spec, encoder)
    covered = {p.hit for p in found}
    return found + [chunking.Piece(i, 0, t) for i, t in enumerate(texts) if i not in covered]


def text(body: dict[str, Any], name: str) -> str:
    """The required string field ``name``."""
    value = body.get(name)
    if not isinstance(value, str):
        what = "is required" if value is None else "must be a string"
        raise ApiError("invalid", f"`{name}` {what}")
    return value


def optional_text(body: dict[str, Any], name: str) -> str | None:
    return None if body.get(name) is None else text(body, name)


def positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError("invalid", f"`{name}` must be a positive integer")
    return value


def flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError("invalid", f"`{name}` must be true or false")
    return value


def documents(value: Any, name: str, *, objects: bool) -> list[str]:
    """The texts of a documents list: strings, or (``objects``) ``{"text": ...}`` objects."""
    if value is None:
        raise ApiError("invalid", f"`{name}` is required")
    if not isinstance(value, list):
        raise ApiError("invalid", f"`{name}` must be a list")
    if not value:
        raise ApiError("empty", f"`{name}` cannot be empty")
    out: list[str] = []
    for i, doc in enumerate(value):
        if isinstance(doc, dict) and objects and isinstance(doc.get("text"), str):
            out.append(doc["text"])
        elif isinstance(doc, str):
            out.append(doc)
        else:
            shape = "a string or an object with a `text` string" if objects else "a string"
            raise ApiError("invalid", f"`{name}[{i}]` must be {shape}")
    return out
