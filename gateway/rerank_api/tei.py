"""``POST /rerank``: text-embeddings-inference's rerank API, what Elasticsearch's
``hugging_face`` rerank service sends.

Request (``router/src/http/types.rs`` ``RerankRequest``; unknown fields ignored)::

    {"query": "...", "texts": ["...", ...],
     "raw_scores": false,       true: the model's logits; false: sigmoid(logit), in (0, 1)
     "return_text": false,      echo each text
     "truncate": null,          absent/null/true: cut to the model's limit (TEI's
                                --auto-truncate); false: a text past it gets a 413
     "truncation_direction": "right"}   "left" is refused (the document side is cut)

Also taken, for the clients that send them: ``documents`` for ``texts`` and
``return_documents`` for ``return_text`` (Elasticsearch's newer ``hugging_face``
entity), ``top_n`` (the answer's first n; every text is scored) and ``model`` (a
profile or model name, as on ``/v2/rerank``).

Answer, best first: ``[{"index": 1, "score": 0.98, "text": "..."}, ...]``.
Errors: ``{"error": "...", "error_type": "..."}`` with TEI's codes: 400 ``Empty``,
413 / 422 ``Validation``, 424 ``Backend``, 503 ``Unhealthy``; overload, which
TEI answers with 429, is a 503 ``Overloaded`` here (clients retry 429 at once).
"""

from __future__ import annotations

from typing import Any

from gateway.rerank.reranker import sigmoid
from gateway.rerank_api import core
from gateway.rerank_api.core import ApiError, Job, Kind

_ERRORS: dict[Kind, tuple[int, str]] = {
    "invalid": (422, "Validation"),
    "empty": (400, "Empty"),
    "too_large": (413, "Validation"),
    "unauthorized": (401, "Unauthorized"),
    "unknown_model": (422, "Validation"),
    "not_ready": (503, "Unhealthy"),
    "overloaded": (503, "Overloaded"),
    "model_error": (424, "Backend"),
}


class TeiWire:
    name = "tei"

    def parse(self, body: dict[str, Any]) -> Job:
        field = "texts" if "texts" in body or "documents" not in body else "documents"
        direction = body.get("truncation_direction", "right")
        if not isinstance(direction, str) or direction.lower() not in ("right", "left"):
            raise ApiError("invalid", "`truncation_direction` must be `right` or `left`")
        if direction.lower() == "left":
            raise ApiError("invalid", "`truncation_direction` `left` is not supported here")
        return_text = core.flag(body, "return_text", core.flag(body, "return_documents", False))
        return Job(
            query=core.text(body, "query"),
            documents=core.documents(body.get(field), field, objects=False),
            model=core.optional_text(body, "model"),
            top_n=core.positive_int(body, "top_n"),
            return_documents=return_text,
            truncate=core.flag(body, "truncate", True),
            raw_scores=core.flag(body, "raw_scores", False),
        )

    def answer(self, job: Job, logits: list[float], request_id: str) -> Any:
        out = []
        for i in core.ranked(logits, job.top_n):
            rank: dict[str, Any] = {
                "index": i,
                "score": logits[i] if job.raw_scores else sigmoid(logits[i]),
            }
            if job.return_documents:
                rank["text"] = job.documents[i]
            out.append(rank)
        return out

    def error(self, exc: ApiError) -> tuple[int, Any]:
        status, error_type = _ERRORS[exc.kind]
        return status, {"error": exc.message, "error_type": error_type}


TEI = TeiWire()
