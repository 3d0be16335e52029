"""Typed application state (``web.AppKey``) shared by the wiring and the handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.search import SearchFlow
from gateway.upstream import Upstream


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
            "model": "ready" if self.model_ready else (self.model_error or "loading"),
            "upstream": self.upstream_flavor or "unreachable",
        }
        return out


UPSTREAM = web.AppKey("upstream", Upstream)
FLOW = web.AppKey("flow", SearchFlow)
HEALTH = web.AppKey("health", Health)
