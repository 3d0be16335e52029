"""Typed application state (``web.AppKey``) shared by the wiring and the handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.experiments.arms import Experiments
from gateway.metrics import Metrics
from gateway.search.pipeline import SearchFlow
from gateway.upstream.client import Upstream
from gateway.vectors.query import QueryVectors
from gateway.vectors.write import WriteVectors


@dataclass(slots=True)
class Health:
    """What readiness reports: the model is loaded and warmed, the upstream answered."""

    model_ready: bool = False
    model_error: str | None = None
    upstream_flavor: str | None = None

    def report(self) -> dict[str, Any]:
        ready = self.model_ready and self.upstream_flavor is not None
        out: dict[str, Any] = {
            "ready": ready,
            # Never the error's text: it can name files; the log has it.
            "model": "ready" if self.model_ready else ("failed" if self.model_error else "loading"),
            "upstream": self.upstream_flavor or "unreachable",
        }
        return out


@dataclass(slots=True)
class RequestRecord:
    """What a request's handler reports for the access line and the metrics (access.py)."""

    request_id: str
    route: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    rerank: str | None = None
    reason: str | None = None


RECORD = web.RequestKey("record", RequestRecord)
RESERVED_PREFIX = "/_gateway"  # the gateway's own endpoints; no ES path starts with it
# POST only: the rerank API (rerank_api/); it names no index and checks its key itself.
RERANK_PATHS = ("/v1/rerank", "/v2/rerank", "/rerank")

UPSTREAM = web.AppKey("upstream", Upstream)
FLOW = web.AppKey("flow", SearchFlow)
HEALTH = web.AppKey("health", Health)
METRICS = web.AppKey("metrics", Metrics)
QUERY_VECTORS = web.AppKey("query_vectors", QueryVectors)
WRITE_VECTORS = web.AppKey("write_vectors", WriteVectors)
# Attached by the wiring (app.py); the handlers assign arms, the experiments' pages read it.
EXPERIMENTS = web.AppKey("experiments", Experiments)
