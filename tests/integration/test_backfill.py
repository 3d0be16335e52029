"""The backfill command against the real search servers and the real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.model.embedder import OnnxEmbedder
from gateway.model.embedder_export import load_embedder
from gateway.settings import EmbedderSettings, UpstreamSettings
from gateway.upstream.client import Upstream
from gateway.vectors.backfill import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_STOPPED,
    Options,
    State,
    backfill,
    load_state,
)
from tests.doubles.corpora import load_docs
from tests.doubles.net import http
from tests.doubles.search_servers import seed_index
from tests.doubles.waits import wait_until

pytestmark = pytest.mark.integration

FIELD = "embedding"
DOCS = load_docs()  # one of them, "no-text", has empty title and text: nothing to embed
WITH_TEXT = {d["_id"]: f"{d['title']} {d['text']}" for d in DOCS if d["title"] or d["text"]}


@pytest.fixture(params=["noida", "osmem"])
def cluster(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.fixture(scope="module")
def embedder(model_dir: Path, embedder_cache: str) -> OnnxEmbedder:
    return load_embedder(EmbedderSettings(path=model_dir, cache_dir=embedder_cache))


@pytest.fixture
def index(cluster: str) -> str:
    name = f"bf-{uuid.uuid4().hex[:8]}"
    seed_index(cluster, name, DOCS)
    return name


@pytest.fixture
async def upstream(cluster: str) -> AsyncIterator[Upstream]:
    client = Upstream(UpstreamSettings(urls=[cluster]))
    await client.start()
    yield client
    await client.close()


def options(index: str, tmp_path: Path, **kw: Any) -> Options:
    return Options(
        index, FIELD, ("title", "text"), tmp_path / "state.json", **{"batch_size": 3, **kw}
    )


def stored(cluster: str, index: str) -> dict[str, dict[str, Any]]:
    """Every document of the index with its ``_version`` (fetched one by one)."""
    return {d["_id"]: http("GET", f"{cluster}/{index}/_doc/{d['_id']}") for d in DOCS}


def assert_filled_once(cluster: str, index: str, embedder: OnnxEmbedder) -> None:
    """Each document with text holds its own text's vector and was updated exactly once."""
    docs = stored(cluster, index)
    vectors = embedder.embed_sync(list(WITH_TEXT.values()))
    expected = dict(zip(WITH_TEXT, vectors, strict=True))
    for doc_id, doc in docs.items():
        if doc_id not in WITH_TEXT:
            assert FIELD not in doc["_source"] and doc["_version"] == 1
            continue
        np.testing.assert_allclose(doc["_source"][FIELD], expected[doc_id], atol=1e-6)
        assert doc["_version"] == 2, doc_id  # indexed once, updated once


async def test_a_clean_start_fills_every_document(
    cluster: str, index: str, upstream: Upstream, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    report = await backfill(upstream, embedder, options(index, tmp_path), None)
    n = len(WITH_TEXT)
    assert n == len(DOCS) - 1
    assert (report.complete, report.resumed, report.updated, report.skipped) == (True, False, n, 1)
    assert report.batches == -(-len(DOCS) // 3) and report.failed == 0
    assert report.exit_code == EXIT_OK
    assert not (tmp_path / "state.json").exists()
    assert_filled_once(cluster, index, embedder)
    again = await backfill(upstream, embedder, options(index, tmp_path), None)
    assert (again.complete, again.updated, again.skipped) == (True, 0, 1)  # nothing left


async def test_a_stopped_run_resumes_and_updates_each_document_once(
    cluster: str, index: str, upstream: Upstream, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    first = await backfill(upstream, embedder, options(index, tmp_path, max_batches=3), None)
    assert (first.complete, first.batches, first.exit_code) == (False, 3, EXIT_STOPPED)
    state = load_state(options(index, tmp_path))
    assert state is not None and state.after is not None and state.updated == first.updated
    http("POST", f"{cluster}/{index}/_refresh")
    missing = {"query": {"bool": {"must_not": {"exists": {"field": FIELD}}}}}
    left = http("POST", f"{cluster}/{index}/_count", missing)["count"]
    assert left == len(DOCS) - first.updated
    second = await backfill(upstream, embedder, options(index, tmp_path), None)
    assert second.complete and second.resumed
    assert first.updated + second.updated == len(WITH_TEXT)
    assert second.total.updated == len(WITH_TEXT)
    assert_filled_once(cluster, index, embedder)


async def test_a_resume_after_the_point_in_time_expired_starts_over_on_what_is_left(
    cluster: str, index: str, upstream: Upstream, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    first = await backfill(upstream, embedder, options(index, tmp_path, max_batches=2), None)
    state = load_state(options(index, tmp_path))
    assert state is not None and state.pit_id is not None
    if upstream.flavor == "elasticsearch":
        http("DELETE", f"{cluster}/_pit", {"id": state.pit_id})
    else:
        http("DELETE", f"{cluster}/_search/point_in_time", {"pit_id": [state.pit_id]})
    http("POST", f"{cluster}/{index}/_refresh")
    second = await backfill(upstream, embedder, options(index, tmp_path), None)
    assert second.complete and second.resumed and second.reopened == 1
    assert first.updated + second.updated == len(WITH_TEXT)
    assert_filled_once(cluster, index, embedder)


COMMAND = [sys.executable, "-m", "gateway", "backfill"]


def command_env(cluster: str, model_dir: Path, embedder_cache: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_UPSTREAM__URLS": cluster,
        "GATEWAY_EMBEDDER__PATH": str(model_dir),
        "GATEWAY_EMBEDDER__CACHE_DIR": embedder_cache,
    }


def test_the_command_stops_resumes_and_shows_progress(
    cluster: str, index: str, model_dir: Path, embedder_cache: str, tmp_path: Path
) -> None:
    env = command_env(cluster, model_dir, embedder_cache)
    state = tmp_path / "bf.json"
    cmd = [*COMMAND, index, "--batch-size", "4", "--state", str(state)]
    stopped = subprocess.run(
        [*cmd, "--max-batches", "2"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stopped.returncode == EXIT_STOPPED, stopped.stderr
    assert json.loads(stopped.stdout)["updated"] == 8
    assert State(**json.loads(state.read_text())).batches == 2
    assert f"backfill {index}.{FIELD}: [" in stopped.stderr and f"8/{len(DOCS)}" in stopped.stderr
    done = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr
    summary = json.loads(done.stdout)
    assert summary["resumed"] and summary["total"]["updated"] == len(WITH_TEXT)
    assert not state.exists()


def test_a_killed_command_resumes_and_fills_every_document(
    cluster: str, index: str, model_dir: Path, embedder_cache: str, tmp_path: Path
) -> None:
    """SIGKILL after a few batches: the next run goes on from the state file. A batch
    whose ``_bulk`` landed but whose state write did not is written again (documented),
    so each document is updated once, or twice if it was in that one batch."""
    env = command_env(cluster, model_dir, embedder_cache)
    state = tmp_path / "bf.json"
    cmd = [*COMMAND, index, "--batch-size", "1", "--state", str(state), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def three_batches_or_exited() -> bool:
        if proc.poll() is not None:
            return True
        return state.exists() and State(**json.loads(state.read_text())).batches >= 3

    wait_until(three_batches_or_exited, 120, what="three batches written", poll_s=0.005)
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    killed_at = State(**json.loads(state.read_text()))
    assert 3 <= killed_at.batches < len(DOCS)
    done = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr
    assert json.loads(done.stdout)["resumed"]
    docs = stored(cluster, index)
    versions = [docs[i]["_version"] for i in WITH_TEXT]
    assert all(FIELD in docs[i]["_source"] for i in WITH_TEXT)
    assert set(versions) <= {2, 3} and versions.count(3) <= 1


def test_a_field_mapped_with_other_dims_is_exit_2(
    cluster: str, index: str, model_dir: Path, embedder_cache: str, tmp_path: Path
) -> None:
    other = (
        {"type": "knn_vector", "dimension": 3}
        if "opensearch" in json.dumps(http("GET", cluster + "/"))
        else {"type": "dense_vector", "dims": 3}
    )
    http("PUT", f"{cluster}/{index}/_mapping", {"properties": {FIELD: other}})
    env = command_env(cluster, model_dir, embedder_cache)
    cmd = [*COMMAND, index, "--state", str(tmp_path / "s.json")]
    out = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == EXIT_CONFIG
    assert "mapped with 3 dimensions, the embedder gives 384" in out.stderr
    missing = subprocess.run(
        [*COMMAND, "no-such-index", "--state", str(tmp_path / "t.json")],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == EXIT_CONFIG and "index_not_found" in missing.stderr


async def test_without_a_point_in_time_it_pages_by_id_and_resumes(
    osmem: str, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    """OpenSearch sorts on ``_id``: the fallback reads the live index, stops and resumes."""
    index = f"bf-{uuid.uuid4().hex[:8]}"
    seed_index(osmem, index, DOCS)
    client = Upstream(UpstreamSettings(urls=[osmem]))
    await client.start()
    try:
        first = await backfill(
            client, embedder, options(index, tmp_path, max_batches=2, point_in_time=False), None
        )
        state = load_state(options(index, tmp_path))
        assert state is not None and state.pit_id is None and isinstance(state.after[0], str)
        second = await backfill(
            client, embedder, options(index, tmp_path, point_in_time=False), None
        )
    finally:
        await client.close()
    assert not first.complete and second.complete and second.resumed
    assert first.updated + second.updated == len(WITH_TEXT)
    assert_filled_once(osmem, index, embedder)
