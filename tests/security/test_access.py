"""Gateway-side API keys, the index allow-list, and credentials kept out of logs and bodies."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from gateway.app import create_app, wait_ready
from gateway.model.fake import FakeEncoder
from gateway.web.state import HEALTH
from tests.doubles.corpora import POPULATION_QUERY as QUERY
from tests.doubles.gateway import GatewayFactory, settings_with
from tests.doubles.net import free_port
from tests.doubles.upstream import ScriptedUpstream, call

KEY, ADMIN = "client-key-7f3a", "admin-key-91bc"
SEARCH = {"query": {"match": {"text": QUERY}}, "size": 3}


async def start(gateway: GatewayFactory, upstream: str, **access: Any) -> str:
    return await gateway(settings_with([upstream], access=access), encoder=FakeEncoder())


async def test_client_key(scripted: ScriptedUpstream, gateway: GatewayFactory) -> None:
    url = await start(gateway, scripted.url, api_key=KEY)
    for headers in ({}, {"X-Gateway-Api-Key": "wrong"}, {"X-Gateway-Api-Key": KEY + "x"}):
        for method, path, body in (
            ("POST", "/docs/_search", SEARCH),
            ("GET", "/docs/_doc/1", None),
        ):
            got = await call(method, url + path, body, headers=headers)
            assert got.status == 401
            assert got.es_error() == "security_exception"
            assert KEY.encode() not in got.body
    scripted.seen.clear()
    ok = {"X-Gateway-Api-Key": KEY}
    got = await call("POST", f"{url}/docs/_search", SEARCH, headers=ok)
    assert (got.status, got.headers["X-Rerank"]) == (200, "full")
    assert (await call("GET", f"{url}/docs/_doc/1", headers=ok)).status == 200
    assert all("X-Gateway-Api-Key" not in s.headers for s in scripted.seen)
    # Probes stay open; the other reserved endpoints take the client key when no admin key is set.
    assert (await call("GET", f"{url}/_gateway/health/live")).status == 200
    assert (await call("GET", f"{url}/_gateway/metrics")).status == 401
    assert (await call("GET", f"{url}/_gateway/metrics", headers=ok)).status == 200


async def test_admin_key_guards_reserved_endpoints(
    scripted: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    url = await start(gateway, scripted.url, api_key=KEY, admin_api_key=ADMIN)
    for path in ("/_gateway/metrics", "/%5Fgateway/metrics", "/_gateway/anything"):
        for key in (None, KEY):
            got = await call("GET", url + path, headers={"X-Gateway-Api-Key": key} if key else {})
            assert got.status == 401, (path, key)
    got = await call("GET", f"{url}/_gateway/metrics", headers={"X-Gateway-Api-Key": ADMIN})
    assert got.status == 200
    # The admin key is not a client key.
    got = await call("GET", f"{url}/docs/_doc/1", headers={"X-Gateway-Api-Key": ADMIN})
    assert got.status == 401
    assert (await call("GET", f"{url}/_gateway/health/ready")).status in (200, 503)


ALLOWED = ["docs", "logs-*", "-logs-secret"]


@pytest.mark.parametrize(
    "case",
    [
        ("POST", "/docs/_search", SEARCH, 200),
        ("GET", "/docs/_doc/1", None, 200),
        ("GET", "/logs-2024/_search", None, 200),
        ("GET", "/%64ocs/_doc/1", None, 200),
        ("GET", "/", None, 200),
        ("POST", "/other/_search", SEARCH, 403),
        ("POST", "/docs,other/_search", SEARCH, 403),
        ("POST", "/_search", SEARCH, 403),
        ("POST", "/_all/_search", SEARCH, 403),
        ("POST", "/*/_search", SEARCH, 403),
        ("POST", "/doc*/_search", SEARCH, 403),
        ("GET", "/logs-*/_search", None, 403),  # could expand to the excluded index
        ("GET", "/logs-secret/_doc/1", None, 403),
        ("GET", "/%6Fther/_doc/1", None, 403),
        ("GET", "/_cat/indices", None, 403),
        ("DELETE", "/", None, 403),
        ("GET", "/remote:docs/_search", None, 403),
    ],
)
async def test_index_allow_list(
    scripted: ScriptedUpstream, gateway: GatewayFactory, case: tuple[str, str, Any, int]
) -> None:
    method, path, body, status = case
    url = await start(gateway, scripted.url, indices=ALLOWED)
    got = await call(method, url + path, body)
    assert got.status == status, got.body[:200]
    if status == 403:
        assert got.es_error() == "security_exception"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/docs/_msearch", b'{}\n{"size": 1}\n{"index": "logs-1"}\n{"size": 1}\n', 200),
        ("/docs/_msearch", b'{}\n{"size": 1}\n{"index": "other"}\n{"size": 1}\n', 403),
        ("/docs/_msearch", b'{"index": ["docs", "other"]}\n{}\n', 403),
        (
            "/docs/_bulk",
            b'{"index": {"_id": "1"}}\n{"index": "other"}\n{"delete": {"_id": "2"}}\n',
            200,
        ),
        ("/docs/_bulk", b'{"delete": {"_index": "other", "_id": "2"}}\n', 403),
        (
            "/docs/_bulk",
            b'{"update": {"_index": "docs", "_id": "1"}}\n{"doc": {}}\n'
            b'{"create": {"_index": "other"}}\n{}\n',
            403,
        ),
        ("/docs/_bulk", b"{not json\n", 403),
        ("/docs/_bulk", b'{"index": {}}\n{}\n\n{"delete": {"_index": "other", "_id": "1"}}\n', 403),
        ("/docs/_mget", b'{"docs": [{"_id": "1"}, {"_index": "docs", "_id": "2"}]}', 200),
        ("/docs/_mget", b'{"docs": [{"_index": "other", "_id": "1"}]}', 403),
        ("/_bulk", b'{"index": {"_index": "docs"}}\n{}\n', 403),
    ],
)
async def test_bodies_naming_indices(
    scripted: ScriptedUpstream, gateway: GatewayFactory, path: str, body: bytes, status: int
) -> None:
    url = await start(gateway, scripted.url, indices=ALLOWED)
    scripted.behaviour = None
    got = await call(
        "POST", url + path, data=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert got.status == status, got.body[:200]
    if status >= 400:
        assert got.es_error() == "security_exception"


async def test_credentials_never_in_logs_or_bodies(
    scripted: ScriptedUpstream, gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = [
        "upstream-pw-5e1d",
        "es-api-key-77aa",
        "redis-pw-0c4f",
        KEY,
        ADMIN,
        "client-basic-3b",
    ]
    dead = f"127.0.0.1:{free_port()}"
    caplog.set_level(logging.DEBUG)
    settings = settings_with(
        [scripted.url],
        upstream={"username": "gw", "password": secrets[0], "timeout_s": 0.5},
        cache={"redis_url": f"redis://:{secrets[2]}@{dead}/0", "timeout_s": 0.05},
        access={"api_key": KEY, "admin_api_key": ADMIN},
    )
    url = await gateway(settings, encoder=FakeEncoder())
    api_url = await gateway(
        settings_with([f"http://{dead}"], upstream={"api_key": secrets[1]}), encoder=FakeEncoder()
    )
    client = {"X-Gateway-Api-Key": KEY, "Authorization": f"Basic {secrets[5]}"}
    answers = [
        await call("POST", f"{url}/docs/_search", SEARCH, headers=client),  # redis down
        await call("GET", f"{url}/docs/_doc/1", headers={"X-Gateway-Api-Key": KEY + "!"}),
        await call("GET", f"{url}/_gateway/metrics", headers={"X-Gateway-Api-Key": ADMIN}),
        await call("POST", f"{api_url}/docs/_search", SEARCH, headers=client),  # upstream down
    ]
    scripted.behaviour = None
    assert [a.status for a in answers] == [200, 401, 200, 502]
    # The upstream got the gateway's own credential instead of the client's.
    assert scripted.seen[-1].headers["Authorization"].startswith("Basic ")
    assert secrets[5] not in scripted.seen[-1].headers["Authorization"]
    logged = "\n".join(
        f"{r.getMessage()} {r.args!r} {getattr(r, 'fields', '')} {r.exc_text or ''}"
        for r in caplog.records
    )
    assert caplog.records  # something was logged (outage warnings, access lines)
    for secret in secrets:
        assert secret not in logged, secret
        for answer in answers[:2] + answers[3:]:
            assert secret.encode() not in answer.body, secret


async def raw_call(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A request whose path goes out byte for byte (no client-side normalizing)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, URL(url, encoded=True), headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(
    ("path", "key", "status"),
    [
        ("/_gateway/health/anything", None, 404),
        ("/_gateway/health/", None, 404),
        ("/_gateway/health/live/x", None, 404),
        ("//_gateway/health/x", None, 404),
        ("/%5Fgateway/health/x", None, 404),
        ("/_gateway", KEY, 404),
        ("/_gateway/", KEY, 404),
        ("/_gateway/nope", KEY, 404),
        ("/_gateway/metrics/x", KEY, 404),
        ("/_gateway/nope", None, 401),
        ("/_gateway/_search", KEY, 404),
        ("/%5Fgateway/_msearch", KEY, 404),
        ("/_gateway/_doc/1", KEY, 404),
        ("/_gateway%2Fnope", KEY, 404),
    ],
)
async def test_reserved_prefix_is_never_forwarded(
    scripted: ScriptedUpstream, gateway: GatewayFactory, path: str, key: str | None, status: int
) -> None:
    url = await start(gateway, scripted.url, api_key=KEY)
    scripted.seen.clear()
    for method in ("GET", "POST", "DELETE"):
        got, body = await raw_call(method, url + path, {"X-Gateway-Api-Key": key} if key else {})
        assert got == status, (method, body)
        assert body["status"] == status
        assert body["error"]["root_cause"][0]["type"] == body["error"]["type"]
    assert scripted.seen == []


@pytest.mark.parametrize(
    "path",
    [
        "/docs/_doc/1;x=y",
        "/docs;a/_search",
        "/docs/_doc/%252e%252e",
        "/docs/_doc/%25",
        "/docs/%2525/_search",
    ],
)
async def test_path_parameters_and_encoded_percent_refused(
    scripted: ScriptedUpstream, gateway: GatewayFactory, path: str
) -> None:
    for access in ({}, {"indices": ALLOWED}):
        url = await start(gateway, scripted.url, **access)
        scripted.seen.clear()
        status, body = await raw_call("GET", url + path)
        assert (status, body["error"]["type"]) == (400, "illegal_argument_exception")
        assert scripted.seen == []


async def test_health_carries_no_exception_text(scripted: ScriptedUpstream, tmp_path: Path) -> None:
    broken = tmp_path / "private-model-dir"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{}")  # and no model.onnx: loading fails
    app = create_app(settings_with([scripted.url], model={"path": str(broken)}))
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        with pytest.raises(RuntimeError):  # wait_ready: the model failed to load
            await wait_ready(app, 30)
        got = await call("GET", str(server.make_url("/_gateway/health/ready")))
        assert (got.status, got.json()["model"]) == (503, "failed")
        assert b"private-model-dir" not in got.body and str(tmp_path).encode() not in got.body
        assert "private-model-dir" in app[HEALTH].model_error  # the log keeps the detail
    finally:
        await server.close()
