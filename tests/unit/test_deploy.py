"""The container files, checked statically (Docker cannot run here).

docker-compose.yml: the services, ports, health checks and wiring an operator
relies on; every ``GATEWAY_*`` name it sets is a real setting. Dockerfiles:
non-root, a health check on readiness, the default port exposed.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.rerank.batcher import warm_up_shapes
from gateway.settings import BatcherSettings, ModelSettings, ServerSettings, iter_variables
from tests.doubles.corpora import REPO

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


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each ``ports`` entry; "" = all addresses."""
    out = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        host = parts[0] if len(parts) == 3 else ""
        out.append((host, int(parts[-2]), int(parts[-1])))
    return out


def redis_options(service: dict[str, Any]) -> dict[str, str]:
    """``--name value`` pairs of a redis-server command line."""
    args = service["command"]
    assert args[0] == "redis-server"
    return {args[i][2:]: args[i + 1] for i in range(1, len(args) - 1, 2)}


def memory_bytes(value: str) -> int:
    found = re.fullmatch(r"(\d+)([kmg]?)b?", str(value).lower())
    assert found is not None, value
    return int(found[1]) * 1024 ** "_kmg".index(found[2] or "_")


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
    assert [(p[1], p[2]) for p in published(gw)] == [(host_port, port)]
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


def test_demo_clusters_run_without_security_on_loopback_only(compose: dict[str, Any]) -> None:
    es = env_names(compose["services"]["elasticsearch"])
    assert es["xpack.security.enabled"] == "false"
    assert es["discovery.type"] == "single-node"
    assert env_names(compose["services"]["opensearch"])["DISABLE_SECURITY_PLUGIN"] == "true"
    # Demo clusters listen on the host's loopback only.
    for name in ("elasticsearch", "opensearch", "redis"):
        assert all(p.startswith("127.0.0.1:") for p in compose["services"][name]["ports"])


def test_gateways_are_published_on_loopback_unless_they_require_a_key(
    compose: dict[str, Any],
) -> None:
    """The clusters' security is off: a gateway open to the network opens all their data."""
    for name in ("gateway", "gateway-opensearch"):
        service = compose["services"][name]
        if "GATEWAY_ACCESS__API_KEY" in env_names(service):
            continue
        assert {host for host, _, _ in published(service)} == {"127.0.0.1"}, name


def test_every_service_has_memory_and_cpu_limits(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        limits = service["deploy"]["resources"]["limits"]
        assert memory_bytes(limits["memory"]) >= 256 << 20, name
        assert 0 < float(limits["cpus"]) <= 2, name
    # Each JVM heap and each Redis maxmemory fits in its container's limit, with room.
    for name, variable in (
        ("elasticsearch", "ES_JAVA_OPTS"),
        ("opensearch", "OPENSEARCH_JAVA_OPTS"),
    ):
        service = compose["services"][name]
        heap = re.search(r"-Xmx(\w+)", env_names(service)[variable])
        assert heap is not None
        limit = memory_bytes(service["deploy"]["resources"]["limits"]["memory"])
        assert memory_bytes(heap.group(1)) <= limit // 2, name
    for name in ("redis", "redis-events"):
        service = compose["services"][name]
        maxmemory = memory_bytes(redis_options(service)["maxmemory"])
        assert maxmemory < memory_bytes(service["deploy"]["resources"]["limits"]["memory"]), name


def test_score_cache_evicts_and_experiment_events_never_do(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("gateway", "gateway-opensearch"):
        env = env_names(services[name])
        cache = urlsplit(env["GATEWAY_CACHE__REDIS_URL"]).hostname
        events = urlsplit(env["GATEWAY_EXPERIMENT__EVENTS_REDIS_URL"]).hostname
        assert cache != events, name
        assert cache in services and events in services
        assert redis_options(services[str(cache)])["maxmemory-policy"] == "allkeys-lru"
        options = redis_options(services[str(events)])
        assert options["maxmemory-policy"] == "noeviction"
        assert options["appendonly"] == "yes"
        assert services[name]["depends_on"][events]["condition"] == "service_healthy"
    assert not {"redis", "redis-events"} & {n for n, s in services.items() if s.get("profiles")}


def dockerfile_env(name: str) -> dict[str, str]:
    env_text = " ".join(rest for word, rest in instructions(name) if word == "ENV")
    return dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", env_text))


def test_cuda_image_batches_for_a_gpu() -> None:
    """The CUDA image runs far larger batches than the CPU defaults, and they are valid."""
    env = dockerfile_env("Dockerfile.cuda")
    prefix = "GATEWAY_BATCHER__"
    values = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    gpu, cpu = BatcherSettings.model_validate(values), BatcherSettings.model_validate({})
    assert gpu.max_batch_tokens >= 4 * cpu.max_batch_tokens
    assert gpu.max_queue_pairs >= 2 * cpu.max_queue_pairs
    model = ModelSettings.model_validate({"device": env["GATEWAY_MODEL__DEVICE"]})
    largest = max(warm_up_shapes(gpu, model, "auto"))
    cpu_largest = max(warm_up_shapes(cpu, model, "auto"))
    # Full-length pairs per run: several times the CPU budget's.
    assert largest[1] == model.max_length == cpu_largest[1]
    assert largest[0] >= 4 * cpu_largest[0]


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
    used = {k for k in dockerfile_env(name) if k.startswith("GATEWAY_")}
    assert "GATEWAY_SERVER__HOST" in used
    assert used <= KNOWN, sorted(used - KNOWN)


def build_args(name: str) -> dict[str, str]:
    """The ``ARG NAME=default`` values of a Dockerfile (quotes removed)."""
    pairs = (rest.partition("=") for word, rest in instructions(name) if word == "ARG")
    return {key: value.strip('"') for key, _, value in pairs}


def build_stage_runs(name: str) -> str:
    """The build stage's ``RUN`` commands, as one line."""
    steps = instructions(name)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return " ".join(rest for word, rest in steps[:last_from] if word == "RUN")


def test_cuda_image_uses_onnxruntime_gpu() -> None:
    args = build_args("Dockerfile.cuda")
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:12.")
    assert args["ORT_GPU"].startswith("onnxruntime-gpu")
    froms = [rest.split()[0] for word, rest in instructions("Dockerfile.cuda") if word == "FROM"]
    assert froms == ["${CUDA_IMAGE}", "${CUDA_IMAGE}"]
    runs = build_stage_runs("Dockerfile.cuda")
    assert "pip uninstall -y onnxruntime" in runs
    assert 'pip install "${ORT_GPU}"' in runs
    assert dockerfile_env("Dockerfile.cuda")["GATEWAY_MODEL__DEVICE"] == "cuda"


def test_cpu_image_can_swap_in_the_openvino_build() -> None:
    assert build_args("Dockerfile")["ORT"] == "onnxruntime"  # the CPU wheel unless asked
    build = build_stage_runs("Dockerfile")
    assert "pip uninstall -y onnxruntime" in build
    assert 'pip install "${ORT}"' in build
