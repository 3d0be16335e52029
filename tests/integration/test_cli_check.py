"""``rerank-gateway check`` against the real search servers, the real model and Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.check import text_fields
from tests.doubles.commands import run_cli
from tests.doubles.net import free_port, http

SECRETS = {
    "GATEWAY_UPSTREAM__USERNAME": "reader",
    "GATEWAY_UPSTREAM__PASSWORD": "s3cret-pass",
    "GATEWAY_ACCESS__API_KEY": "k3y-secret",
}


@pytest.mark.parametrize("cluster", ["osmem", "noida"])
def test_check_passes_and_lists_the_indices(
    cluster: str, request: pytest.FixtureRequest, model_dir: Path, redis_url: str
) -> None:
    url: str = request.getfixturevalue(cluster)
    env = {
        **SECRETS,
        "GATEWAY_UPSTREAM__URLS": url,
        "GATEWAY_MODEL__PATH": str(model_dir),
        "GATEWAY_CACHE__REDIS_URL": redis_url,
    }
    port = free_port()  # check binds it (as serve would): never a port someone else holds
    done = run_cli(["check", "--fields", "title,text", "--port", str(port)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for secret in ("s3cret-pass", "k3y-secret"):
        assert secret not in out
    assert "GATEWAY_UPSTREAM__PASSWORD=********" in out
    assert 'GATEWAY_RERANK__FIELDS=["title", "text"]' in out
    product = http("GET", url + "/")["version"].get("distribution", "elasticsearch")
    assert f"ok    cluster {url}: {product} " in out
    # The index's text fields as the cluster's own mapping has them.
    mapping = http("GET", url + "/docs/_mapping")["docs"]["mappings"]["properties"]
    assert f"* docs: {', '.join(text_fields(mapping))}\n" in out
    # The file the default quantization (auto) picked: the per-pair int8 file beside model.onnx.
    assert f"ok    model {model_dir} [model_int8.onnx] (cpu) loaded and scored a pair" in out
    assert f"ok    redis {redis_url} answers PING" in out
    assert f"ok    can listen on 127.0.0.1:{port}\n" in out
    assert out.endswith("ready to serve\n")


def test_check_fails_on_an_unreachable_cluster_a_missing_model_file_and_redis(
    model_dir: Path,
) -> None:
    cluster = f"http://127.0.0.1:{free_port()}"
    redis = f"redis://127.0.0.1:{free_port()}/0"
    env = {
        "GATEWAY_MODEL__PATH": str(model_dir),
        "GATEWAY_MODEL__FILE": "model_int9.onnx",
        "GATEWAY_CACHE__REDIS_URL": redis,
    }
    done = run_cli(["check", "--upstream", cluster, "--port", str(free_port())], env)
    assert done.returncode == 1
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert failed == [
        f"FAIL  cluster {cluster}: the search cluster could not be used (ClientConnectorError)",
        f"FAIL  model {model_dir}: GATEWAY_MODEL__FILE=model_int9.onnx is not in {model_dir};"
        f" it has model.onnx, model_int8.onnx",
        f"FAIL  redis {redis}: ConnectionError",
    ]
    assert done.stdout.endswith("3 problem(s): not ready to serve\n")


def test_check_refuses_a_missing_model_directory(tmp_path: Path) -> None:
    done = run_cli(["check", "--model", str(tmp_path / "gone")])
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"rerank-gateway: GATEWAY_MODEL__PATH (--model): {tmp_path / 'gone'} is not a model"
        " directory (no tokenizer.json in it)"
    ]
