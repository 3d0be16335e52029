"""Fixtures shared by every tier.

Real parts: Redis (``GATEWAY_TEST_REDIS_URL``, default 127.0.0.1:6379 db 9), the
search servers (osmem-server and noida-db, started here on free loopback
ports), and the ONNX model from ``../shared/models`` (``GATEWAY_TEST_MODEL_DIR``).
Every test starts from an environment without ``GATEWAY_*`` variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from osmem_server import OsmemServer

from gateway.app import create_app, wait_ready
from gateway.model.base import CrossEncoder
from gateway.model.embedder import Embedder
from gateway.settings import Settings
from gateway.web.protocol import GatewayRunner
from ops.harness.servers import noida_binary, noida_db

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
DEFAULT_MODEL = REPO.parent / "shared" / "models" / "all-minilm-l6-v2-pair"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("GATEWAY_") and not key.startswith("GATEWAY_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = Path(os.environ.get("GATEWAY_TEST_MODEL_DIR", DEFAULT_MODEL))
    if not (path / "tokenizer.json").is_file():
        pytest.fail(f"model not found at {path}: set GATEWAY_TEST_MODEL_DIR")
    return path


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(method: str, url: str, body: Any = None, ndjson: bool = False) -> Any:
    """Blocking JSON request for fixtures (seeding), raising on error status."""
    if ndjson:
        data = body.encode()
        ctype = "application/x-ndjson"
    else:
        data = None if body is None else json.dumps(body).encode()
        ctype = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read()
    return json.loads(text) if text else None


def load_docs() -> list[dict[str, Any]]:
    with (DATA / "docs.jsonl").open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def seed_index(base_url: str, index: str, docs: list[dict[str, Any]], mappings: Any = None) -> None:
    props = mappings or {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    http("PUT", f"{base_url}/{index}", {"mappings": props})
    lines = []
    for doc in docs:
        body = {k: v for k, v in doc.items() if k != "_id"}
        lines.append(json.dumps({"index": {"_index": index, "_id": doc["_id"]}}))
        lines.append(json.dumps(body))
    http("POST", f"{base_url}/_bulk?refresh=true", "\n".join(lines) + "\n", ndjson=True)


@pytest.fixture(scope="session")
def osmem() -> Iterator[str]:
    """A session-wide osmem-server (OpenSearch API), seeded with ``docs``."""
    server = OsmemServer.start()
    seed_index(server.url, "docs", load_docs())
    yield server.url
    server.close()
    if server.process.stdout is not None:  # the launcher leaves its pipe open
        server.process.stdout.close()


@contextlib.contextmanager
def start_noida() -> Iterator[str]:
    """A fresh, empty noida-db (``--only elasticsearch``) on a free port; its URL."""
    if noida_binary() is None:
        pytest.fail("noida-db is not installed (pip install noida-db)")
    with noida_db() as url:
        yield url


@pytest.fixture(scope="session")
def noida() -> Iterator[str]:
    """A session-wide noida-db presenting Elasticsearch 8.15, seeded with ``docs``."""
    with start_noida() as url:
        seed_index(url, "docs", load_docs())
        yield url


GatewayFactory = Callable[..., Awaitable[str]]


class GatewayTestServer(TestServer):
    """``TestServer`` with the gateway's own runner (ES-shaped protocol errors)."""

    async def _make_runner(self, **kwargs: Any) -> GatewayRunner:
        return GatewayRunner(self.app, **kwargs)


def make_settings(upstream: str, **sections: dict[str, Any]) -> Settings:
    """Settings for tests, built explicitly (no environment involved)."""
    values: dict[str, Any] = {"upstream": {"urls": [upstream]}}
    for name, section in sections.items():
        values[name] = {**values.get(name, {}), **section}
    return Settings.model_validate(values)


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayFactory]:
    """Start gateways on free ports: ``url = await gateway(settings, encoder=None)``
    (``embedder=``: the retrievers' query embedder)."""
    servers: list[TestServer] = []

    async def start(
        settings: Settings,
        encoder: CrossEncoder | None = None,
        embedder: Embedder | None = None,
        **options: Any,
    ) -> str:
        app = create_app(settings, encoder=encoder, embedder=embedder, **options)
        server = GatewayTestServer(app, host="127.0.0.1", port=free_port())
        await server.start_server()
        servers.append(server)
        await wait_ready(app)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture(scope="session")
def embedder_cache(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An embedder cache holding the pair model's embedding graph, cut once per session."""
    from gateway.model.embedder_export import export

    cache = str(tmp_path_factory.mktemp("embedders"))
    export(model_dir, "model.onnx", cache)
    return cache
