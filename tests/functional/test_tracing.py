"""OpenTelemetry span trees (gateway/tracing.py), read from the SDK's in-memory exporter.

The app gets a ``Tracing`` over its own ``TracerProvider`` with a
``SimpleSpanProcessor`` into an ``InMemorySpanExporter``; each test sends
requests with a W3C ``traceparent`` as a client would and checks the tree:
the SERVER span continues the client's trace, the cluster call is a CLIENT
span (Elasticsearch semantic conventions) whose id the cluster received in its
own ``traceparent``, and the rerank stages hang under the server span.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError

from gateway.model.fake import FakeEncoder
from gateway.settings import Settings
from gateway.settings import server as server_settings
from gateway.tracing import Tracing, es_endpoint, stage
from tests.doubles.corpora import WALL_SEARCH as SEARCH
from tests.doubles.gateway import GatewayFactory
from tests.doubles.net import start_app, url_of
from tests.doubles.upstream import Canned, call
from tests.doubles.upstream import ScriptedUpstream as Scripted

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    out = InMemorySpanExporter()
    yield out
    out.clear()


async def traced_gateway(
    gateway: GatewayFactory,
    upstream: Scripted,
    exporter: InMemorySpanExporter,
    **sections: dict[str, Any],
) -> str:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings.model_validate(
        {
            "upstream": {"urls": [upstream.url], "flavor": "elasticsearch"},
            "rerank": {"window": 5},
            **sections,
        }
    )
    return await gateway(settings, encoder=FakeEncoder(), tracing=Tracing(provider))


class Tree:
    """The finished spans of one trace, by name, with parent links."""

    def __init__(self, spans: tuple[ReadableSpan, ...]) -> None:
        self.spans = [s for s in spans if s.context is not None]
        assert {format(s.context.trace_id, "032x") for s in self.spans} == {TRACE_ID}
        self.by_id = {s.context.span_id: s for s in self.spans}

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.spans])
        return found[0]

    def parent(self, span: ReadableSpan) -> str | None:
        if span.parent is None:
            return None
        parent = self.by_id.get(span.parent.span_id)
        return parent.name if parent is not None else format(span.parent.span_id, "016x")

    def shape(self) -> set[tuple[str, str | None]]:
        return {(s.name, self.parent(s)) for s in self.spans}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def search(url: str, **headers: str) -> tuple[int, CIMultiDict[str]]:
    sent = {"traceparent": TRACEPARENT, **headers}
    answer = await call("POST", f"{url}/docs/_search", SEARCH, headers=sent)
    return answer.status, CIMultiDict(answer.headers)


def check_server_and_client(tree: Tree, upstream: Scripted, status: int) -> None:
    server = tree.one("POST /{index}/_search")
    assert server.kind == SpanKind.SERVER
    assert tree.parent(server) == CLIENT_SPAN  # continues the client's trace
    assert attrs(server)["http.route"] == "/{index}/_search"
    assert attrs(server)["http.response.status_code"] == status
    client = tree.one("search docs")
    assert client.kind == SpanKind.CLIENT
    assert tree.parent(client) == server.name
    assert client.context is not None
    assert {
        "db.system.name": "elasticsearch",
        "db.operation.name": "search",
        "db.collection.name": "docs",
        "db.operation.parameter.index": "docs",
        "http.request.method": "POST",
        "url.full": f"{upstream.url}/docs/_search",
        "server.address": "127.0.0.1",
    }.items() <= attrs(client).items()
    # The cluster got a traceparent naming the gateway's CLIENT span, in the same trace.
    sent = upstream.last("/docs/_search").headers.getall("traceparent")
    assert sent == [f"00-{TRACE_ID}-{client.context.span_id:016x}-01"]


async def test_reranked_then_cached_search(
    gateway: GatewayFactory, upstream: Scripted, exporter: InMemorySpanExporter
) -> None:
    url = await traced_gateway(gateway, upstream, exporter)
    status, headers = await search(url)
    assert (status, headers["X-Rerank"]) == (200, "full")
    tree = Tree(exporter.get_finished_spans())
    check_server_and_client(tree, upstream, 200)
    assert tree.shape() == {
        ("POST /{index}/_search", CLIENT_SPAN),
        # The first search of an index reads its mapping (which fields hold text), once.
        ("mapping docs", "POST /{index}/_search"),
        ("search docs", "POST /{index}/_search"),
        ("rerank", "POST /{index}/_search"),
        ("rerank.cache_lookup", "rerank"),
        ("rerank.tokenize", "rerank"),
        ("rerank.queue_and_model", "rerank"),
        ("rerank.model_run", "rerank.queue_and_model"),
    }
    assert attrs(tree.one("rerank")) == {
        "rerank.window": 5,
        "rerank.hits": 5,
        "rerank.model": "default",
        "rerank.outcome": "full",
    }
    assert attrs(tree.one("rerank.cache_lookup")) == {"rerank.pairs": 5, "rerank.cache_hits": 0}
    assert attrs(tree.one("rerank.queue_and_model")) == {"rerank.pairs": 5}
    run = tree.one("rerank.model_run")
    assert attrs(run)["rerank.pairs"] == 5
    assert attrs(run)["rerank.padded_tokens"] >= 5
    assert attrs(run)["rerank.encoder"] == "FakeEncoder"
    assert run.links == ()
    server = attrs(tree.one("POST /{index}/_search"))
    assert (server["rerank.outcome"], server["gateway.request_id"]) == (
        "full",
        headers["X-Request-Id"],
    )

    exporter.clear()  # the same search again: every score from the cache, no model stages
    status, headers = await search(url)
    assert (status, headers["X-Rerank"]) == (200, "full")
    tree = Tree(exporter.get_finished_spans())
    assert {name for name, _ in tree.shape()} == {
        "POST /{index}/_search",
        "search docs",
        "rerank",
        "rerank.cache_lookup",
    }
    assert attrs(tree.one("rerank.cache_lookup")) == {"rerank.pairs": 5, "rerank.cache_hits": 5}


async def test_a_model_run_shared_by_two_searches_links_them(
    gateway: GatewayFactory, upstream: Scripted, exporter: InMemorySpanExporter
) -> None:
    # The batcher waits up to 1 s for more pairs, so the two searches likely share a run.
    url = await traced_gateway(gateway, upstream, exporter, batcher={"max_wait_ms": 1000})
    bodies = [{"query": {"match": {"text": q}}} for q in ("berlin wall", "capital city")]
    answers = await asyncio.gather(
        *(
            call("POST", f"{url}/docs/_search", b, headers={"traceparent": TRACEPARENT})
            for b in bodies
        )
    )
    assert [a.headers["X-Rerank"] for a in answers] == ["full", "full"]
    tree = Tree(exporter.get_finished_spans())
    waits = {s.context.span_id for s in tree.spans if s.name == "rerank.queue_and_model"}
    runs = [s for s in tree.spans if s.name == "rerank.model_run"]
    assert len(waits) == 2
    # Each run is a child of one search's wait and linked to the other searches it served.
    served = [{r.parent.span_id, *(link.context.span_id for link in r.links)} for r in runs]
    assert all(r.parent is not None and r.parent.span_id in waits for r in runs)
    assert set().union(*served) == waits
    assert sum(attrs(r)["rerank.pairs"] for r in runs) == 10
    if len(runs) == 1:
        assert len(runs[0].links) == 1


async def test_skipped_search_has_no_rerank_spans(
    gateway: GatewayFactory, upstream: Scripted, exporter: InMemorySpanExporter
) -> None:
    url = await traced_gateway(gateway, upstream, exporter)
    status, headers = await search(url, **{"X-Rerank": "off"})
    assert (status, headers["X-Rerank"]) == (200, "skipped")
    tree = Tree(exporter.get_finished_spans())
    check_server_and_client(tree, upstream, 200)
    assert {name for name, _ in tree.shape()} == {"POST /{index}/_search", "search docs"}
    server = attrs(tree.one("POST /{index}/_search"))
    assert (server["rerank.outcome"], server["rerank.reason"]) == ("skipped", "opted_out")


async def test_cluster_error_marks_the_client_span(
    gateway: GatewayFactory, upstream: Scripted, exporter: InMemorySpanExporter
) -> None:
    url = await traced_gateway(gateway, upstream, exporter)
    error = {"error": {"type": "search_phase_execution_exception", "reason": "all shards failed"}}
    upstream.script("/docs/_search", Canned(503, json.dumps({**error, "status": 503}).encode()))
    status, _ = await search(url)
    assert status == 503
    tree = Tree(exporter.get_finished_spans())
    check_server_and_client(tree, upstream, 503)
    client = tree.one("search docs")
    assert attrs(client)["db.response.status_code"] == "503"
    assert attrs(client)["error.type"] == "503"
    assert client.status.status_code == StatusCode.ERROR
    assert tree.one("POST /{index}/_search").status.status_code == StatusCode.ERROR
    assert "rerank" not in {name for name, _ in tree.shape()}

    exporter.clear()  # the cluster gone: the CLIENT span names the transport error
    await upstream.close()
    status, _ = await search(url)
    assert status >= 500
    client = Tree(exporter.get_finished_spans()).one("search docs")
    assert client.status.status_code == StatusCode.ERROR
    assert "Connect" in attrs(client)["error.type"]
    assert "db.response.status_code" not in attrs(client)


async def test_untraced_requests_and_the_gateway_endpoints_make_no_spans(
    gateway: GatewayFactory, upstream: Scripted, exporter: InMemorySpanExporter
) -> None:
    url = await traced_gateway(gateway, upstream, exporter)
    for path in ("/_gateway/health/ready", "/_gateway/metrics"):
        assert (await call("GET", url + path)).status == 200
    assert exporter.get_finished_spans() == ()
    # Outside a traced request the hooks do nothing (and need no tracer).
    with stage("rerank", window=3) as span:
        span.set(outcome="full")
    assert exporter.get_finished_spans() == ()


async def test_untraced_gateway_passes_the_clients_traceparent_on(
    gateway: GatewayFactory, upstream: Scripted
) -> None:
    settings = Settings.model_validate({"upstream": {"urls": [upstream.url]}})
    url = await gateway(settings, encoder=FakeEncoder())
    assert (await search(url))[0] == 200
    assert upstream.last("/docs/_search").headers.getall("traceparent") == [TRACEPARENT]


async def test_log_tracing_exports_over_otlp_configured_by_otel_variables(
    gateway: GatewayFactory, upstream: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LOG__TRACING=true without a ``tracing`` argument: the SDK's OTLP/HTTP exporter,
    pointed by OTEL_EXPORTER_OTLP_TRACES_ENDPOINT at a collector stand-in."""
    received: list[ExportTraceServiceRequest] = []
    names: set[str] = set()
    complete = asyncio.Event()

    async def collect(request: web.Request) -> web.Response:
        received.append(ExportTraceServiceRequest.FromString(await request.read()))
        names.update(exported_names(received[-1]))
        if names >= {"POST /{index}/_search", "search docs", "rerank"}:
            complete.set()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    collector = await start_app(app)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{url_of(collector)}/v1/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-under-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    try:
        settings = Settings.model_validate(
            {"upstream": {"urls": [upstream.url]}, "log": {"tracing": True}}
        )
        url = await gateway(settings, encoder=FakeEncoder())
        assert (await search(url))[0] == 200
        await asyncio.wait_for(complete.wait(), 20)
        (resource,) = {
            a.value.string_value
            for r in received
            for rs in r.resource_spans
            for a in rs.resource.attributes
            if a.key == "service.name"
        }
        assert resource == "gateway-under-test"
    finally:
        await collector.close()


def test_log_tracing_without_the_extra_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings.model_validate({"log": {"tracing": True}}).log.tracing
    monkeypatch.setattr(server_settings, "OTLP_EXPORTER", "no_such_package.exporter")
    with pytest.raises(ValidationError, match="otel extra"):
        Settings.model_validate({"log": {"tracing": True}})
    assert not Settings.model_validate({"log": {"tracing": False}}).log.tracing


def exported_names(request: ExportTraceServiceRequest) -> set[str]:
    return {s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/docs/_search", ("search", "docs")),
        ("POST", "/_msearch", ("msearch", None)),
        ("GET", "/_cat/indices", ("cat.indices", None)),
        ("GET", "/docs/_doc/1", ("get", "docs")),
        ("PUT", "/docs/_doc/1", ("index", "docs")),
        ("GET", "/", ("info", None)),
        ("PUT", "/docs", ("put", "docs")),
    ],
)
def test_endpoint_ids(method: str, path: str, expected: tuple[str, str | None]) -> None:
    assert es_endpoint(method, path) == expected
