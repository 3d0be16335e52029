"""Fixtures shared by every tier.

Real parts: Redis (``GATEWAY_TEST_REDIS_URL``, default 127.0.0.1:6379 db 9), the
search servers (osmem-server and noida-db, started here on free loopback
ports), and the ONNX model from ``../shared/models`` (``GATEWAY_TEST_MODEL_DIR``).
Every test starts from an environment without ``GATEWAY_*`` variables.

Fixtures only: the doubles and corpora they use are in ``tests.doubles``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from osmem_server import OsmemServer

from gateway.app import create_app, wait_ready
from gateway.model.base import CrossEncoder
from gateway.model.embedder import Embedder
from gateway.settings import Settings
from tests.doubles.corpora import POPULATION_DOCS, SCIFACT, SHARED, load_docs
from tests.doubles.gateway import GatewayFactory, GatewayTestServer
from tests.doubles.net import free_port
from tests.doubles.search_servers import seed_index, start_noida
from tests.doubles.upstream import ScriptedUpstream

DEFAULT_MODEL = SHARED / "models" / "all-minilm-l6-v2-pair"


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
def scifact() -> Path:
    """The SciFact BEIR directory (``../shared/data/scifact``) with its train split."""
    if not (SCIFACT / "qrels" / "train.tsv").is_file():
        pytest.fail(f"SciFact not found at {SCIFACT} (../shared/data/scifact)")
    return SCIFACT


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture(scope="session")
def osmem() -> Iterator[str]:
    """A session-wide osmem-server (OpenSearch API), seeded with ``docs``."""
    server = OsmemServer.start()
    seed_index(server.url, "docs", load_docs())
    yield server.url
    server.close()
    if server.process.stdout is not None:  # the launcher leaves its pipe open
        server.process.stdout.close()


@pytest.fixture(scope="session")
def noida() -> Iterator[str]:
    """A session-wide noida-db presenting Elasticsearch 8.15, seeded with ``docs``."""
    with start_noida() as url:
        seed_index(url, "docs", load_docs())
        yield url


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


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    """A scripted upstream serving ``POPULATION_DOCS`` (the fault and security suites)."""
    upstream = ScriptedUpstream(POPULATION_DOCS)
    await upstream.start()
    yield upstream
    await upstream.close()
