"""The gateway with an experiment, in front of a real cluster (FakeEncoder scores), and its
report.

``start(gateway, cluster_url, redis=None, **experiment)`` starts one under a fresh
experiment name; ``call`` sends one request and returns ``(status, headers, json)``;
``report_when(url, ready)`` waits until the report satisfies ``ready`` (events are
stored in the background, so a report read at once may not hold them yet).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

from gateway.model.fake import FakeEncoder
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.waits import wait_for

QUERY = "berlin population people city museum wall"
WINDOW, SIZE = 8, 5


async def call(
    method: str, url: str, body: Any = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, json=body, headers=headers) as r,
    ):
        return r.status, dict(r.headers), await r.json(content_type=None)


def search_body(query: str = QUERY, size: int = SIZE) -> dict[str, Any]:
    return {"size": size, "query": {"multi_match": {"query": query, "fields": ["title", "text"]}}}


def ids(answer: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in answer["hits"]["hits"]]


async def start(
    gateway: GatewayFactory, cluster: str, redis: str | None = None, **experiment: Any
) -> str:
    conf: dict[str, Any] = {"name": f"t-{uuid.uuid4().hex[:8]}", **experiment}
    if redis is not None:
        conf["events_redis_url"] = redis
    settings = make_settings(cluster, rerank={"window": WINDOW}, experiment=conf)
    return await gateway(settings, encoder=FakeEncoder())


async def report_when(url: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The report once ``ready`` holds (events are stored in the background)."""

    async def report() -> dict[str, Any] | None:
        status, _, body = await call("GET", f"{url}/_gateway/experiments/report")
        assert status == 200
        return body if ready(body) else None

    return await wait_for(report, 20, what="the experiment report")
