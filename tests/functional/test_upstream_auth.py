"""Credentials, TLS and failover toward the cluster, seen from a scripted cluster."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.model.fake import FakeEncoder
from tests.doubles.commands import run_main  # `python -m gateway` as a subprocess
from tests.doubles.corpora import CAPITALS as DOCS
from tests.doubles.gateway import GatewayFactory, settings_with
from tests.doubles.net import free_port
from tests.doubles.pki import make_certs
from tests.doubles.upstream import ScriptedUpstream

SEARCH = {"query": {"match": {"text": "capital of Italy"}}, "size": 2}


@pytest.fixture
async def cluster() -> AsyncIterator[ScriptedUpstream]:
    async with ScriptedUpstream(DOCS) as upstream:
        yield upstream


async def call(method: str, url: str, body: Any = None, **headers: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, json=body, headers=headers) as r,
    ):
        await r.read()
        return r.status


def auth_seen(cluster: ScriptedUpstream) -> list[str | None]:
    return [seen.headers.get("Authorization") for seen in cluster.seen]


def auth_by_path(cluster: ScriptedUpstream) -> dict[str, str | None]:
    return {seen.path: seen.headers.get("Authorization") for seen in cluster.seen}


async def test_basic_auth_is_added_to_every_request(
    cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    settings = settings_with([cluster.url], upstream={"username": "elastic", "password": "pw"})
    url = await gateway(settings, encoder=FakeEncoder())
    assert await call("POST", f"{url}/docs/_search", SEARCH) == 200
    assert await call("GET", f"{url}/docs/_doc/1", Authorization="Bearer client-token") == 200
    expected = "Basic " + base64.b64encode(b"elastic:pw").decode()
    # The start-up probe, the mapping reads (start-up report, the search's index), the
    # search and the passthrough: the gateway's credential wins.
    assert auth_by_path(cluster) == dict.fromkeys(
        ["/", "/*/_mapping", "/docs/_mapping", "/docs/_search", "/docs/_doc/1"], expected
    )
    assert set(auth_seen(cluster)) == {expected}


async def test_api_key_is_sent(cluster: ScriptedUpstream, gateway: GatewayFactory) -> None:
    url = await gateway(
        settings_with([cluster.url], upstream={"api_key": "a2V5OnNlY3JldA=="}),
        encoder=FakeEncoder(),
    )
    assert await call("POST", f"{url}/docs/_search", SEARCH) == 200
    assert set(auth_seen(cluster)) == {"ApiKey a2V5OnNlY3JldA=="}


async def test_client_bearer_passes_through_without_gateway_credential(
    cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    url = await gateway(settings_with([cluster.url]), encoder=FakeEncoder())
    assert await call("POST", f"{url}/docs/_search", SEARCH, Authorization="Bearer abc") == 200
    assert await call("GET", f"{url}/_cat/indices", Authorization="Bearer abc") == 200
    # The gateway's own calls (probe, start-up mapping report) carry nothing; the search's
    # mapping read carries the client's credential, as the search does.
    assert auth_by_path(cluster) == {
        "/": None,
        "/*/_mapping": None,
        "/docs/_mapping": "Bearer abc",
        "/docs/_search": "Bearer abc",
        "/_cat/indices": "Bearer abc",
    }


async def test_dead_first_url_fails_over(
    cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    url = await gateway(settings_with([dead, cluster.url]), encoder=FakeEncoder())
    async with aiohttp.ClientSession() as s:
        ready = await s.get(f"{url}/_gateway/health/ready")
        assert ready.status == 200
        for _ in range(2):
            async with s.post(f"{url}/docs/_search", json=SEARCH) as r:
                assert r.status == 200
                assert r.headers["X-Rerank"] == "full"
    paths = [seen.path for seen in cluster.seen]
    assert [p for p in paths if not p.endswith("/_mapping")] == ["/", *["/docs/_search"] * 2]
    assert paths.count("/docs/_mapping") == 1  # read once, then cached


# --- TLS: a private CA, a server certificate, a client certificate (openssl CLI). ---


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("pki"), ("server", "client"))


@pytest.fixture
async def tls_cluster(pki: Path) -> AsyncIterator[ScriptedUpstream]:
    """A cluster on https that requires a client certificate signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "server.crt"), str(pki / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED
    async with ScriptedUpstream(DOCS, tls=context) as upstream:
        yield upstream


async def test_ca_bundle_and_client_certificate(
    pki: Path, tls_cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    upstream = tls_cluster.url
    tls = {
        "ca_bundle": str(pki / "ca.crt"),
        "client_cert": str(pki / "client.crt"),
        "client_key": str(pki / "client.key"),
    }
    url = await gateway(settings_with([upstream], upstream=tls), encoder=FakeEncoder())
    assert await call("GET", f"{url}/_gateway/health/ready") == 200
    assert await call("POST", f"{url}/docs/_search", SEARCH) == 200

    # Without the client certificate the cluster refuses the handshake: 502, not a hang.
    no_cert = settings_with([upstream], upstream={"ca_bundle": str(pki / "ca.crt")})
    url2 = await gateway(no_cert, encoder=FakeEncoder())
    assert await call("GET", f"{url2}/_gateway/health/ready") == 503
    assert await call("GET", f"{url2}/docs/_doc/1") == 502
    # Without the CA the server certificate is not trusted.
    url3 = await gateway(settings_with([upstream]), encoder=FakeEncoder())
    assert await call("GET", f"{url3}/docs/_doc/1") == 502
    assert len([seen for seen in tls_cluster.seen if seen.path.endswith("/_search")]) == 1


# --- Credentials in the URL: http://user:password@host, percent-decoded like the official
# clients (elastic-transport's url_to_node_config) do. ---


def with_userinfo(url: str, userinfo: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{userinfo}@{rest}"


async def test_url_credentials_are_the_gateways_basic_auth(
    cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    upstream = with_userinfo(cluster.url, "el%40stic:p%3Ass%2Fw%C3%B6rd")
    url = await gateway(settings_with([upstream]), encoder=FakeEncoder())
    assert await call("POST", f"{url}/docs/_search", SEARCH) == 200
    assert await call("POST", f"{url}/docs/_search", SEARCH, Authorization="Bearer mine") == 200
    assert await call("GET", f"{url}/docs/_doc/1", Authorization="Basic dTpw") == 200
    expected = "Basic " + base64.b64encode("el@stic:p:ss/wörd".encode()).decode()
    # Probe, mapping reads, searches, passthrough: the URL's credential, replacing the
    # client's (as the configured USERNAME/PASSWORD would).
    paths = [seen.path for seen in cluster.seen]
    assert {"/", "/docs/_search", "/docs/_doc/1"} <= set(paths)
    assert auth_seen(cluster) == [expected] * len(paths)
    assert all("@" not in seen.headers.get("Host", "") for seen in cluster.seen)


async def test_url_credentials_on_every_url_fail_over(
    cluster: ScriptedUpstream, gateway: GatewayFactory
) -> None:
    dead = with_userinfo(f"http://127.0.0.1:{free_port()}", "u:p")
    url = await gateway(
        settings_with([dead, with_userinfo(cluster.url, "u:p")]), encoder=FakeEncoder()
    )
    assert await call("GET", f"{url}/docs/_doc/1", Authorization="Bearer mine") == 200
    assert set(auth_seen(cluster)) == {"Basic " + base64.b64encode(b"u:p").decode()}


URLS = "GATEWAY_UPSTREAM__URLS"


@pytest.mark.parametrize(
    "env",
    [
        {URLS: "http://u:Secr3tPw@es:9200", "GATEWAY_UPSTREAM__USERNAME": "elastic"},
        {URLS: "http://u:Secr3tPw@es:9200", "GATEWAY_UPSTREAM__PASSWORD": "Secr3tPw"},
        {URLS: "http://u:Secr3tPw@es:9200", "GATEWAY_UPSTREAM__API_KEY": "Secr3tPw"},
        {URLS: "http://u:Secr3tPw@es1:9200,http://u:other@es2:9200"},
        {URLS: "http://u:Secr3tPw@es1:9200,http://es2:9200"},
        {"GATEWAY_UPSTREAM__API_KEY": "Secr3tPw", "GATEWAY_UPSTREAM__USERNAME": "elastic"},
        {"GATEWAY_UPSTREAM__PASSWORD": "Secr3tPw"},
    ],
    ids=[
        "url_and_username",
        "url_and_password",
        "url_and_api_key",
        "urls_differ",
        "only_some_urls",
        "api_key_and_username",
        "password_without_username",
    ],
)
def test_conflicting_credentials_stop_start_up(env: dict[str, str]) -> None:
    done = run_main(env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rerank-gateway: GATEWAY_UPSTREAM")
    assert "Secr3tPw" not in done.stderr
    assert "Traceback" not in done.stderr
