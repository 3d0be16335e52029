"""The Kubernetes manifests (ops/k8s), rendered and validated without a cluster.

Each overlay is rendered the way ``kubectl kustomize`` does for the features
used here (``resources``, ``images``, strategic-merge ``patches``; any other
kustomization field fails the test, so the renderer cannot silently diverge),
then every core object is validated against the Kubernetes OpenAPI schemas
bundled in ``kubernetes-validate`` (strict: unknown fields are errors). The
ServiceMonitor (a prometheus-operator CRD, not in those schemas) and the
wiring between objects are checked field by field: the probes hit the health
endpoints, the HPA's custom metric is one the gateway exports, every
``GATEWAY_*`` name is a real setting.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.metrics import Metrics
from gateway.settings import ServerSettings, iter_variables
from tests.doubles.corpora import REPO

K8S = REPO / "ops" / "k8s"
OVERLAYS = ["cpu", "gpu"]
K8S_VERSION = "1.30.0"
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "resources", "images", "patches"}
# Strategic-merge keys of the lists these manifests patch (Kubernetes API patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
Obj = dict[str, Any]


def merge(base: Any, patch: Any, key: str = "") -> Any:
    """Strategic merge for maps and for the keyed lists above; other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        out_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            at = [i for i, b in enumerate(out_list) if b[mk] == item[mk]]
            if at:
                out_list[at[0]] = merge(out_list[at[0]], item, key)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def set_images(obj: Obj, images: list[Obj]) -> None:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def render(directory: Path) -> list[Obj]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= KUSTOMIZE_FIELDS, set(kustomization) - KUSTOMIZE_FIELDS
    objects: list[Obj] = []
    for resource in kustomization["resources"]:
        path = directory / resource
        if path.is_dir():
            objects += render(path)
        else:
            objects += [o for o in yaml.safe_load_all(path.read_text()) if o]
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"path"}
        patch = yaml.safe_load((directory / entry["path"]).read_text())
        targets = [i for i, o in enumerate(objects) if ident(o) == ident(patch)]
        assert len(targets) == 1, f"{entry['path']} patches {ident(patch)}: not one object"
        objects[targets[0]] = merge(objects[targets[0]], patch)
    for obj in objects:
        set_images(obj, kustomization.get("images", []))
    return objects


def ident(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def by_kind(objects: list[Obj]) -> dict[str, Obj]:
    kinds = {o["kind"]: o for o in objects}
    assert len(kinds) == len(objects), "one object of each kind"
    return kinds


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> dict[str, Obj]:
    return by_kind(render(K8S / "overlays" / request.param))


def test_core_objects_match_the_kubernetes_schemas(rendered: dict[str, Obj]) -> None:
    assert set(rendered) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    }
    for kind, obj in rendered.items():
        if kind != "ServiceMonitor":
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_schema_validation_catches_mistakes(rendered: dict[str, Obj]) -> None:
    broken = copy.deepcopy(rendered["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def gateway_container(deployment: Obj) -> Obj:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "gateway"
    return dict(container)


def test_probes_port_and_shutdown(rendered: dict[str, Obj]) -> None:
    deployment = rendered["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    gw = gateway_container(deployment)
    port = ServerSettings.model_fields["port"].default
    assert gw["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert gw["readinessProbe"]["httpGet"] == {"path": "/_gateway/health/ready", "port": "http"}
    assert gw["livenessProbe"]["httpGet"] == {"path": "/_gateway/health/live", "port": "http"}
    assert gw["startupProbe"]["httpGet"]["path"] == "/_gateway/health/live"
    config = rendered["ConfigMap"]["data"]
    shutdown_s = float(config["GATEWAY_SERVER__SHUTDOWN_TIMEOUT_S"])
    pre_stop_s = float(gw["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > shutdown_s + pre_stop_s
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
    # Resources sized, with a memory limit above the request (measured RSS in the README).
    res = gw["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"]
    assert _mib(res["limits"]["memory"]) > _mib(res["requests"]["memory"]) >= 512


def _mib(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_model_volume_is_filled_by_the_init_container(rendered: dict[str, Obj]) -> None:
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    gw = gateway_container(rendered["Deployment"])
    model_path = rendered["ConfigMap"]["data"]["GATEWAY_MODEL__PATH"]
    mounts = {m["mountPath"]: m for m in gw["volumeMounts"]}
    assert mounts[model_path]["readOnly"] is True
    assert any(m["name"] == mounts[model_path]["name"] for m in init["volumeMounts"])
    assert model_path + "/" in init["command"][-1]
    assert {v["name"] for v in pod["volumes"]} >= {m["name"] for m in gw["volumeMounts"]}
    for container in (init, gw):
        assert container["image"].startswith("registry.example.com/")


def test_every_gateway_variable_is_a_setting(rendered: dict[str, Obj]) -> None:
    known = {name for name, _, _ in iter_variables()}
    gw = gateway_container(rendered["Deployment"])
    names = set(rendered["ConfigMap"]["data"]) | {e["name"] for e in gw["env"]}
    assert names - known == set()
    # Secrets come from the Secret, not the ConfigMap.
    assert {"GATEWAY_UPSTREAM__API_KEY", "GATEWAY_CACHE__REDIS_PASSWORD"} <= {
        e["name"] for e in gw["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert not any("PASSWORD" in n or "API_KEY" in n for n in rendered["ConfigMap"]["data"])
    assert rendered["ConfigMap"]["data"]["GATEWAY_CACHE__REDIS_URL"].startswith("redis")


def test_selectors_service_monitor_pdb_and_hpa_agree(rendered: dict[str, Obj]) -> None:
    deployment = rendered["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = rendered["Service"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        rendered["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()

    monitor = rendered["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    service_labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/_gateway/metrics"

    hpa = rendered["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 1 < hpa["spec"]["maxReplicas"]
    (custom,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    exported = {m.name for m in Metrics().registry.collect()}
    assert custom["metric"]["name"] in exported
    assert custom["metric"]["name"] == "gateway_batcher_queue_pairs"


def test_adapter_rule_serves_the_hpa_metric() -> None:
    adapter = yaml.safe_load((K8S / "prometheus-adapter.yaml").read_text())
    hpa = by_kind(render(K8S / "base"))["HorizontalPodAutoscaler"]
    (name,) = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    (rule,) = adapter["rules"]["custom"]
    assert rule["seriesQuery"].startswith(name + "{")
    assert rule["name"]["as"] == name
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_gpu_overlay_changes_only_what_it_says() -> None:
    cpu = by_kind(render(K8S / "overlays" / "cpu"))
    gpu = by_kind(render(K8S / "overlays" / "gpu"))
    gw_gpu = gateway_container(gpu["Deployment"])
    assert gw_gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gw_gpu["image"].endswith("-cuda")
    assert gpu["ConfigMap"]["data"]["GATEWAY_MODEL__DEVICE"] == "cuda"
    # The strategic merge kept the probes, env and mounts of the base container.
    gw_cpu = gateway_container(cpu["Deployment"])
    for field in ("readinessProbe", "livenessProbe", "env", "volumeMounts", "envFrom"):
        assert gw_gpu[field] == gw_cpu[field]
    redis_url = "GATEWAY_CACHE__REDIS_URL"
    assert gpu["ConfigMap"]["data"][redis_url] == cpu["ConfigMap"]["data"][redis_url]
