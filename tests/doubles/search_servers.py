"""Real search servers for tests: seeding an index, a fresh noida-db, the official client.

``seed_index(url, index, docs)`` creates an index (title/text mappings unless
given) and bulk-loads ``docs``; ``start_noida()`` runs an empty noida-db
(Elasticsearch API) on a free port; ``call(url, fn)`` runs ``fn(Elasticsearch(url))``
in a thread, so a gateway on the test's event loop can answer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from ops.harness.servers import noida_binary, noida_db
from tests.doubles.net import http


def seed_index(base_url: str, index: str, docs: list[dict[str, Any]], mappings: Any = None) -> None:
    props = mappings or {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    http("PUT", f"{base_url}/{index}", {"mappings": props})
    lines = []
    for doc in docs:
        body = {k: v for k, v in doc.items() if k != "_id"}
        lines.append(json.dumps({"index": {"_index": index, "_id": doc["_id"]}}))
        lines.append(json.dumps(body))
    http("POST", f"{base_url}/_bulk?refresh=true", "\n".join(lines) + "\n", ndjson=True)


@contextlib.contextmanager
def start_noida() -> Iterator[str]:
    """A fresh, empty noida-db (``--only elasticsearch``) on a free port; its URL."""
    if noida_binary() is None:
        pytest.fail("noida-db is not installed (pip install noida-db)")
    with noida_db() as url:
        yield url


async def call(url: str, fn: Callable[[Elasticsearch], Any]) -> Any:
    """``fn(Elasticsearch(url))`` in a thread: the gateway serves on this event loop."""

    def run() -> Any:
        with Elasticsearch(url) as es:
            return fn(es)

    return await asyncio.to_thread(run)
