"""A gateway whose scorer is another rerank-gateway *process* (``/v1/rerank``), real ONNX model.

The backend processes are started as operators would (``python -m gateway``,
settings from the environment) in front of osmem; the front gateway's
``MODEL__BACKEND=pool`` points at them. Its answers are compared with a gateway
that runs the same model in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.net import free_port
from tests.doubles.upstream import Answer, call
from tests.doubles.waits import wait_until

pytestmark = pytest.mark.integration

SEARCH = {"query": {"match": {"text": "how many people live in berlin"}}, "size": 10}
BackendStarter = Callable[[], tuple[str, subprocess.Popen[bytes]]]


def _ready(url: str, timeout_s: float) -> None:

    def ready() -> bool:
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/_gateway/health/ready", timeout=1) as r,
        ):
            return r.status == 200
        return False

    wait_until(ready, timeout_s, what=f"the gateway at {url} ready", poll_s=0.2)


@pytest.fixture
def backend_process(osmem: str, model_dir: Path) -> Iterator[BackendStarter]:
    """``url, process = start()``: a rerank-gateway process serving the model (blocks until
    it is ready: call it in a thread)."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env |= {
            "GATEWAY_UPSTREAM__URLS": osmem,
            "GATEWAY_MODEL__PATH": str(model_dir),
            "GATEWAY_MODEL__INTRA_OP_THREADS": "1",
            "GATEWAY_SERVER__PORT": str(port),
            "GATEWAY_CACHE__MEMORY_ENTRIES": "0",  # every call reaches the model
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        _ready(url, 60)
        return url, proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def hits(answer: Answer) -> list[tuple[str, Any]]:
    return [(h["_id"], h["_score"]) for h in answer.json()["hits"]["hits"]]


async def test_scores_through_a_gateway_process_equal_in_process_scoring(
    osmem: str, model_dir: Path, gateway: GatewayFactory, backend_process: BackendStarter
) -> None:
    backend, _ = await asyncio.to_thread(backend_process)
    model = {"path": str(model_dir), "intra_op_threads": 1}
    here = await gateway(make_settings(osmem, model=model))
    pool = {"backend": "pool", "pool_urls": [f"{backend}/v1/rerank"]}
    front = await gateway(make_settings(osmem, model=pool))
    local = await call("POST", f"{here}/docs/_search", SEARCH)
    remote = await call("POST", f"{front}/docs/_search", SEARCH)
    assert remote.headers["X-Rerank"] == "full"
    assert [i for i, _ in hits(remote)] == [i for i, _ in hits(local)]
    assert [s for _, s in hits(remote)] == pytest.approx([s for _, s in hits(local)], abs=1e-5)


async def test_a_killed_backend_process_fails_over_then_the_search_degrades(
    osmem: str, gateway: GatewayFactory, backend_process: BackendStarter
) -> None:
    (a, proc_a), (b, proc_b) = await asyncio.gather(
        asyncio.to_thread(backend_process), asyncio.to_thread(backend_process)
    )
    pool = {"backend": "pool", "pool_urls": [f"{a}/v1/rerank", f"{b}/v1/rerank"]}
    front = await gateway(make_settings(osmem, model=pool, cache={"memory_entries": 0}))
    proc_a.kill()
    proc_a.wait()
    one_left = await call("POST", f"{front}/docs/_search", SEARCH)
    assert one_left.headers["X-Rerank"] == "full"
    proc_b.kill()
    proc_b.wait()
    none_left = await call("POST", f"{front}/docs/_search", SEARCH)
    assert none_left.headers["X-Rerank"] == "skipped"
    assert none_left.headers["X-Rerank-Reason"] == "model_error"
    bare = await call("POST", f"{osmem}/docs/_search", SEARCH)
    assert [i for i, _ in hits(none_left)] == [i for i, _ in hits(bare)]
