"""``POST /v1/rerank`` and ``/v2/rerank``: Cohere's rerank API and Jina's, one superset.

Request (unknown fields are ignored)::

    {"model": "default",              profile or model name; absent: default
     "query": "...",
     "documents": ["...", {"text": "..."}],   strings, or objects with a text (Jina, Cohere v1)
     "top_n": 3,                      results returned (every document is scored); absent: all
     "return_documents": true,        echo {"text"} in each result; default true on /v1
                                      (Jina's default), false on /v2 (Cohere v2 has none)
     "max_tokens_per_doc": 512}       cut each document to that many tokens first

Answer, best first::

    {"id": "<request id>", "model": "default",
     "results": [{"index": 2, "relevance_score": 0.93, "document": {"text": "..."}}, ...],
     "meta": {"api_version": {"version": "2"}}}

``relevance_score`` is ``sigmoid(logit)``, in (0, 1) like Cohere's and Jina's.
Errors: ``{"message": ..., "detail": ...}`` (Cohere reads ``message``, Jina and
vLLM-style clients ``detail``) with 400, 401, 404 (unknown model), 413, 500
(model failure) or 503 (not ready, overloaded, past the deadline).
"""

from __future__ import annotations

from typing import Any

from gateway.rerank.reranker import sigmoid
from gateway.rerank_api import core
from gateway.rerank_api.core import ApiError, Job, Kind

_STATUS: dict[Kind, int] = {
    "invalid": 400,
    "empty": 400,
    "too_large": 413,
    "unauthorized": 401,
    "unknown_model": 404,
    "not_ready": 503,
    "overloaded": 503,
    "model_error": 500,
}


class CohereWire:
    def __init__(self, version: str, *, return_documents: bool) -> None:
        self.name = f"v{version}"
        self.version = version
        self.return_documents = return_documents

    def parse(self, body: dict[str, Any]) -> Job:
        return Job(
            query=core.text(body, "query"),
            documents=core.documents(body.get("documents"), "documents", objects=True),
            model=core.optional_text(body, "model"),
            top_n=core.positive_int(body, "top_n"),
            return_documents=core.flag(body, "return_documents", self.return_documents),
            max_tokens_per_doc=core.positive_int(body, "max_tokens_per_doc"),
        )

    def answer(self, job: Job, logits: list[float], request_id: str) -> Any:
        results = []
        for i in core.ranked(logits, job.top_n):
            result: dict[str, Any] = {"index": i, "relevance_score": sigmoid(logits[i])}
            if job.return_documents:
                result["document"] = {"text": job.documents[i]}
            results.append(result)
        return {
            "id": request_id,
            "model": job.model or "default",
            "results": results,
            "meta": {"api_version": {"version": self.version}},
        }

    def error(self, exc: ApiError) -> tuple[int, Any]:
        return _STATUS[exc.kind], {"message": exc.message, "detail": exc.message}


V1 = CohereWire("1", return_documents=True)
V2 = CohereWire("2", return_documents=False)
