"""MODEL__POOL_PROTOCOL=oip: Triton / KServe servers (Open Inference Protocol v2) as the pool.

The servers are ``tests.doubles.oip_server.OipServer``s running the real ONNX model behind
the protocol, as Triton's onnxruntime backend (token ids in) or as a model that
tokenizes itself (text in). Scores must equal in-process scoring; faults (down,
slow, wrong output shape or datatype) degrade as in-process model faults do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.errors import ModelError
from gateway.model.oip import OipCrossEncoder
from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import ModelSettings, Settings
from tests.doubles.corpora import WALL_QUERY as QUERY
from tests.doubles.corpora import WALL_SEARCH as SEARCH
from tests.doubles.gateway import GatewayFactory
from tests.doubles.net import free_port
from tests.doubles.oip_server import OipServer
from tests.doubles.upstream import ScriptedUpstream as Scripted
from tests.doubles.upstream import assert_degraded, call

LOCAL = {"file": "model.onnx", "quantization": "none", "intra_op_threads": 1}


def in_process(model_dir: Path) -> dict[str, Any]:
    return {"path": str(model_dir), **LOCAL}


def oip(model_dir: Path, servers: list[OipServer], **model: Any) -> dict[str, Any]:
    return {
        "path": str(model_dir),
        "backend": "pool",
        "pool_protocol": "oip",
        "pool_urls": [s.url for s in servers],
        "pool_model": "reranker",
        **model,
    }


def settings(upstream: Scripted, model: dict[str, Any]) -> Settings:
    return Settings.model_validate(
        {"upstream": {"urls": [upstream.url]}, "rerank": {"window": 5}, "model": model}
    )


def scores(answer: Any) -> list[tuple[str, float]]:
    return [(h["_id"], h["_score"]) for h in answer.json()["hits"]["hits"]]


@pytest.fixture
async def servers(model_dir: Path) -> AsyncIterator[list[OipServer]]:
    started = [OipServer(model_dir), OipServer(model_dir)]
    for server in started:
        await server.start()
    yield started
    for server in started:
        await server.close()


def forget(servers: list[OipServer]) -> None:
    for server in servers:
        server.forget()


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for a condition another task or thread makes true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            pytest.fail("the condition did not come true")
        await asyncio.sleep(0.02)


async def test_token_ids_over_two_servers_score_like_the_model_in_process(
    upstream: Scripted, gateway: GatewayFactory, model_dir: Path, servers: list[OipServer]
) -> None:
    here = await gateway(settings(upstream, in_process(model_dir)))
    pool = await gateway(settings(upstream, oip(model_dir, servers)))
    forget(servers)
    local = await call("POST", f"{here}/docs/_search", SEARCH)
    remote = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert remote.headers["X-Rerank"] == local.headers["X-Rerank"] == "full"
    assert [i for i, _ in scores(remote)] == [i for i, _ in scores(local)]
    assert [s for _, s in scores(remote)] == pytest.approx([s for _, s in scores(local)], abs=1e-6)
    a, b = servers
    assert sorted(a.calls + b.calls) == [2, 3]  # the window's five pairs, split in two
    assert a.paths == b.paths == ["/v2/models/reranker/infer"]
    (ids, mask, types) = a.bodies[0]["inputs"]
    assert [t["name"] for t in (ids, mask, types)] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
    ]
    assert {t["datatype"] for t in (ids, mask, types)} == {"INT64"}
    n, width = ids["shape"]
    assert len(ids["data"]) == n * width and ids["data"][0] == 101  # [CLS]
    assert a.bodies[0]["outputs"] == [{"name": "logits"}]


PAIRS = [
    (QUERY, "The Berlin Wall fell in 1989."),
    (QUERY, "Berlin is the capital of Germany."),
    (QUERY, "A wall is a structure. " * 200),  # cut at max_length
    (QUERY, ""),
    ("what is the capital of france", "Paris is the capital of France."),
    ("what is the capital of france", "Madrid is in Spain, Lisbon is by the sea."),
    ("what is the capital of france", "ü ß 北京 — unicode survives the JSON round trip"),
]


@pytest.mark.parametrize("inputs", ["tokens", "text", "pairs"])
async def test_every_deployment_shape_gives_the_in_process_logits(
    model_dir: Path, inputs: str
) -> None:
    probability = inputs == "pairs"  # such models often end in a sigmoid
    servers = [OipServer(model_dir, inputs=inputs, probability=probability) for _ in range(2)]
    for server in servers:
        await server.start()
    local = OnnxCrossEncoder(model_dir, ModelSettings.model_validate(in_process(model_dir)))
    remote = await asyncio.to_thread(  # it asks the servers (on this loop) for metadata
        OipCrossEncoder,
        ModelSettings.model_validate(
            oip(
                model_dir,
                servers,
                oip_inputs=inputs,
                oip_output="probability" if probability else "logit",
            )
        ),
    )
    try:
        expected = local.score(local.encode(PAIRS))
        got = await asyncio.to_thread(remote.score, remote.encode(PAIRS))
        assert np.max(np.abs(got - expected)) <= 1e-6
        assert remote.fingerprint.startswith("pool:oip:reranker@-:")
        assert [s.metadata_asked for s in servers] == [1, 1]  # checked at start
        assert sorted(servers[0].calls + servers[1].calls) == [1, 2, 2, 2]  # split per query
        if inputs == "text":
            query, documents = servers[0].bodies[0]["inputs"]
            assert (query["name"], query["datatype"], query["shape"]) == ("query", "BYTES", [1])
            assert (documents["name"], documents["datatype"]) == ("documents", "BYTES")
            assert documents["shape"] == [len(documents["data"])]
        if inputs == "pairs":
            (rows,) = servers[0].bodies[0]["inputs"]
            assert rows["datatype"] == "BYTES" and rows["shape"] == [len(rows["data"]) // 2, 2]
    finally:
        await asyncio.to_thread(remote.close)
        for server in servers:
            await server.close()


async def test_a_model_version_goes_in_the_path(
    upstream: Scripted, gateway: GatewayFactory, model_dir: Path, servers: list[OipServer]
) -> None:
    pool = await gateway(settings(upstream, oip(model_dir, servers, oip_version="3")))
    forget(servers)
    answer = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert answer.headers["X-Rerank"] == "full"
    assert servers[0].paths == ["/v2/models/reranker/versions/3/infer"]


async def test_a_server_down_fails_over_and_all_down_degrades(
    upstream: Scripted, gateway: GatewayFactory, model_dir: Path, servers: list[OipServer]
) -> None:
    a, b = servers
    pool = await gateway(settings(upstream, oip(model_dir, servers)))
    forget(servers)
    a.fail = True
    first = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert first.headers["X-Rerank"] == "full"  # a's part went on to b
    assert a.calls == [] and sorted(b.calls) == [2, 3]
    b.fail = True
    other = {"query": {"match": {"text": "madrid spain"}}}  # nothing of it cached
    await assert_degraded(pool, upstream.url, other)


async def test_a_slow_server_times_out_and_its_part_goes_to_the_other(
    upstream: Scripted, gateway: GatewayFactory, model_dir: Path, servers: list[OipServer]
) -> None:
    a, b = servers
    pool = await gateway(settings(upstream, oip(model_dir, servers, pool_timeout_s=1.0)))
    forget(servers)
    a.hang = True
    answer = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert answer.headers["X-Rerank"] == "full"
    assert sorted(b.calls) == [2, 3] and a.calls == []


@pytest.mark.parametrize(
    "fault", [{"output_shape": "wrong"}, {"output_datatype": "BYTES"}, {"output_datatype": "INT64"}]
)
async def test_a_wrong_output_fails_over_and_everywhere_degrades(
    upstream: Scripted,
    gateway: GatewayFactory,
    model_dir: Path,
    servers: list[OipServer],
    fault: dict[str, str],
) -> None:
    a, b = servers
    pool = await gateway(settings(upstream, oip(model_dir, servers)))
    forget(servers)
    for key, value in fault.items():
        setattr(a, key, value)
    one = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert one.headers["X-Rerank"] == "full"
    assert sorted(b.calls) == [2, 3]  # b scored a's part too
    for key, value in fault.items():
        setattr(b, key, value)
    other = {"query": {"match": {"text": "madrid spain"}}}
    both = await call("POST", f"{pool}/docs/_search", other)
    assert both.headers["X-Rerank"] == "skipped"
    assert both.headers["X-Rerank-Reason"] == "model_error"


async def test_an_unknown_tensor_name_is_a_server_error_that_degrades(
    upstream: Scripted,
    gateway: GatewayFactory,
    model_dir: Path,
    servers: list[OipServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for server in servers:
        server.metadata = False  # no metadata to check at start: the calls find out
    model = oip(model_dir, servers, oip_tensors={"input_ids": "INPUT__0"})
    pool = await gateway(settings(upstream, model))
    answer = await call("POST", f"{pool}/docs/_search", SEARCH)
    assert answer.headers["X-Rerank"] == "skipped"  # both answered 400 {"error"}
    assert answer.headers["X-Rerank-Reason"] == "model_error"
    assert "status 400: unexpected inference input 'INPUT__0'" in caplog.text  # the server's


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ({"oip_tensors": {"input_ids": "INPUT__0"}}, "no input 'INPUT__0' (it has attention_mask"),
        ({"oip_tensors": {"output": "scores"}}, "no output 'scores' (it has logits)"),
        ({"oip_inputs": "text"}, "no input 'query'"),
    ],
)
async def test_a_tensor_map_the_model_metadata_contradicts_stops_start_up(
    model_dir: Path, servers: list[OipServer], model: dict[str, Any], problem: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # not checked: nothing answers there
    urls = {"pool_urls": [dead, servers[0].url]}
    with pytest.raises(ModelError, match="does not fit MODEL__OIP_") as error:
        await asyncio.to_thread(
            OipCrossEncoder,
            ModelSettings.model_validate({**oip(model_dir, servers), **urls, **model}),
        )
    assert problem in str(error.value)
    fine = await asyncio.to_thread(
        OipCrossEncoder, ModelSettings.model_validate({**oip(model_dir, servers), **urls})
    )
    assert servers[0].metadata_asked == 2  # once by each
    await asyncio.to_thread(fine.close)


async def test_the_health_check_asks_the_ready_endpoints(
    model_dir: Path, servers: list[OipServer]
) -> None:
    a, b = servers
    encoder = await asyncio.to_thread(
        OipCrossEncoder, ModelSettings.model_validate(oip(model_dir, servers, pool_backoff_s=0.1))
    )
    try:
        a.fail = True
        batch = encoder.encode(PAIRS[:2])
        await asyncio.to_thread(encoder.score, batch)
        first = encoder.backends[0]
        assert first.open_until > 0 and b.calls == [1, 1]  # a failed over to b
        a.fail, a.ready = False, False  # /infer would work, but the model is not ready
        await until(lambda: "/v2/models/reranker/ready" in a.probes)
        assert first.open_until > 0 and a.calls == []
        a.ready = True
        await until(lambda: first.open_until == 0.0)
        assert "/v2/health/ready" in a.probes
        await asyncio.to_thread(encoder.score, encoder.encode(PAIRS[4:6]))
        assert a.calls == [1]  # back in the split
    finally:
        await asyncio.to_thread(encoder.close)
