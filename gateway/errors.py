"""The gateway's exceptions, and the Elasticsearch-shaped bodies that report them.

::

    GatewayError
    ├── ClientRequestError          400, the client's request is wrong; ES-shaped body
    │   ├── BodyTooLarge            413
    │   ├── NotAuthenticated        401, gateway API key missing or wrong (guard.py)
    │   ├── NotAllowed              403, an index outside GATEWAY_ACCESS__INDICES
    │   └── NotFound                404, an unknown ``/_gateway/...`` endpoint
    ├── UpstreamError               the search cluster could not be used
    │   ├── UpstreamUnavailable     502, connection refused / reset / bad answer
    │   └── UpstreamTimeout         504
    ├── RerankError                 never reaches a client: the search degrades to
    │   ├── ModelError              upstream order and a header says why
    │   ├── Overloaded
    │   └── DeadlineExceeded
    ├── CacheError                  never reaches a client: scores are computed uncached
    └── EventStoreError             experiment events not stored (logged); the report answers 503

Third-party exceptions are translated at exactly one boundary each:
``upstream.py`` (aiohttp client), ``redis.py`` (redis, for the cache and the events),
``model/onnx.py`` (onnxruntime, tokenizers). ``CancelledError`` is never caught.
Configuration errors are pydantic ``ValidationError``\\ s, reported by
``gateway.cli.config`` (one line per variable) with exit status 2.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ClientRequestError(GatewayError):
    """The request cannot be served as sent; answered like Elasticsearch would."""

    status = 400

    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return es_error_body(self.status, self.error_type, self.reason)


class BodyTooLarge(ClientRequestError):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            "content_too_long_exception",
            f"request body is larger than the limit of [{limit}] bytes",
        )


class NotAuthenticated(ClientRequestError):
    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__("security_exception", reason)


class NotAllowed(ClientRequestError):
    status = 403

    def __init__(self, reason: str) -> None:
        super().__init__("security_exception", reason)


class NotFound(ClientRequestError):
    status = 404

    def __init__(self, method: str, path: str) -> None:
        reason = f"no handler found for uri [{path}] and method [{method}]"
        super().__init__("resource_not_found_exception", reason)


class UpstreamError(GatewayError):
    """The search cluster could not be reached or did not answer usably."""

    status = 502
    error_type = "upstream_unavailable_exception"

    def body(self) -> dict[str, Any]:
        return es_error_body(self.status, self.error_type, str(self))


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "upstream_timeout_exception"


class RerankError(GatewayError):
    """Reranking did not happen; ``reason`` goes into the ``X-Rerank-Reason`` header."""

    reason = "rerank_error"


class ModelError(RerankError):
    reason = "model_error"


class Overloaded(RerankError):
    reason = "overloaded"


class DeadlineExceeded(RerankError):
    reason = "deadline"


class CacheError(GatewayError):
    """The score cache failed; callers score without it."""


class EventStoreError(GatewayError):
    """Experiment events could not be written or read (Redis trouble)."""


def es_error_body(status: int, error_type: str, reason: str) -> dict[str, Any]:
    """An error body in Elasticsearch's shape (what the official clients parse)."""
    cause = {"type": error_type, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}
