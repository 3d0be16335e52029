"""The container files, checked statically (Docker cannot run here).

docker-compose.yml: the services, ports, health checks and wiring an operator
relies on; every ``GATEWAY_*`` name it sets is a real setting. Dockerfiles:
non-root, a health check on readiness, the default port exposed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import ServerSettings, iter_variables

REPO = Path(__file__).resolve().parents[2]
KNOWN = {name for name, _, _ in iter_variables()}
DEFAULT_PORT = ServerSettings.model_fields["port"].default
DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def env_names(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_has_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"elasticsearch", "redis", "gateway", "opensearch", "gateway-opensearch"} <= set(
        services
    )
    # The default `docker compose up` starts Elasticsearch, Redis and the gateway only.
    assert not {"elasticsearch", "redis", "gateway"} & {
        name for name, s in services.items() if s.get("profiles")
    }
    assert services["opensearch"]["profiles"] == ["opensearch"]
    assert services["gateway-opensearch"]["profiles"] == ["opensearch"]
    assert services["elasticsearch"]["image"].startswith(
        "docker.elastic.co/elasticsearch/elasticsearch:${ES_VERSION:-8."
    )
    assert services["opensearch"]["image"].startswith("opensearchproject/opensearch:")


def test_compose_services_have_health_checks_and_wait_for_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("elasticsearch", "redis", "gateway", "opensearch", "gateway-opensearch"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
    for name in ("gateway", "gateway-opensearch"):
        assert "/_gateway/health/ready" in " ".join(services[name]["healthcheck"]["test"])
        deps = services[name]["depends_on"]
        assert all(d["condition"] == "service_healthy" for d in deps.values())
        assert "redis" in deps


@pytest.mark.parametrize(
    ("service", "cluster", "host_port"),
    [("gateway", "elasticsearch", 9201), ("gateway-opensearch", "opensearch", 9202)],
)
def test_gateway_is_wired_by_env(
    compose: dict[str, Any], service: str, cluster: str, host_port: int
) -> None:
    gw = compose["services"][service]
    env = env_names(gw)
    assert env["GATEWAY_UPSTREAM__URLS"] == f"http://{cluster}:9200"
    assert env["GATEWAY_CACHE__REDIS_URL"].startswith("redis://redis:6379")
    assert env["GATEWAY_SERVER__HOST"] == "0.0.0.0"
    assert env["GATEWAY_MODEL__PATH"].startswith("/models/")
    assert any(v.endswith(":/models:ro") for v in gw["volumes"])
    port = int(env.get("GATEWAY_SERVER__PORT", DEFAULT_PORT))
    assert f"{host_port}:{port}" in gw["ports"]
    assert cluster in gw["depends_on"]
    # Shutdown: docker waits longer than the gateway lets in-flight searches run.
    grace = int(gw["stop_grace_period"].rstrip("s"))
    assert float(env["GATEWAY_SERVER__SHUTDOWN_TIMEOUT_S"]) < grace


def test_every_gateway_variable_in_compose_exists(compose: dict[str, Any]) -> None:
    used = {
        name
        for service in compose["services"].values()
        for name in env_names(service)
        if name.startswith("GATEWAY_")
    }
    assert used
    assert used <= KNOWN, sorted(used - KNOWN)


def test_images_run_the_packaged_commands(compose: dict[str, Any]) -> None:
    assert compose["services"]["seed"]["entrypoint"][:2] == ["rerank-gateway", "seed"]
    for name in DOCKERFILES:
        cmd = [rest for word, rest in final_stage(name) if word == "CMD"]
        assert cmd == ['["rerank-gateway", "serve"]'], name


def test_search_cluster_security_is_stated(compose: dict[str, Any]) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    assert "SECURITY, stated plainly" in text
    es = env_names(compose["services"]["elasticsearch"])
    assert es["xpack.security.enabled"] == "false"
    assert es["discovery.type"] == "single-node"
    # Demo clusters listen on the host's loopback only.
    for name in ("elasticsearch", "opensearch", "redis"):
        assert all(p.startswith("127.0.0.1:") for p in compose["services"][name]["ports"])


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / name).read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage(name: str) -> list[tuple[str, str]]:
    steps = instructions(name)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_runs_as_non_root_with_health_check(name: str) -> None:
    stage = final_stage(name)
    users = [rest for word, rest in stage if word == "USER"]
    assert users, "no USER in the final stage"
    assert users[-1].split(":")[0] not in ("root", "0")
    health = [rest for word, rest in stage if word == "HEALTHCHECK"]
    assert len(health) == 1
    assert "/_gateway/health/ready" in health[0]
    exposed = [int(p) for word, rest in stage if word == "EXPOSE" for p in rest.split()]
    assert exposed == [DEFAULT_PORT]
    assert any(word == "VOLUME" and "/models" in rest for word, rest in stage)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_env_names_exist(name: str) -> None:
    env_text = " ".join(rest for word, rest in instructions(name) if word == "ENV")
    used = set(re.findall(r"\b(GATEWAY_[A-Z_]+)=", env_text))
    assert "GATEWAY_SERVER__HOST" in used
    assert used <= KNOWN, sorted(used - KNOWN)


def test_cuda_image_uses_onnxruntime_gpu() -> None:
    text = (REPO / "Dockerfile.cuda").read_text()
    assert "onnxruntime-gpu" in text
    assert "GATEWAY_MODEL__DEVICE=cuda" in text
    assert "FROM ${CUDA_IMAGE}" in text


def test_cpu_image_can_swap_in_the_openvino_build() -> None:
    build = " ".join(rest for word, rest in instructions("Dockerfile") if word == "RUN")
    assert "pip uninstall -y onnxruntime" in build
    assert 'pip install "${ORT}"' in build
    assert "onnxruntime-openvino" in (REPO / "Dockerfile").read_text()
