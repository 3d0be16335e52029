"""``--model HUB_ID``: the real huggingface_hub client against a scripted Hub (tests/hub.py).

A repository's ONNX export is downloaded (only the chosen file and the tokenizer),
checked and used; each failure (network, no such repository, no ONNX file, no
such MODEL__FILE) stops ``serve`` with exit status 2 and one line saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doubles.commands import run_cli
from tests.doubles.hub import ScriptedHub
from tests.doubles.net import free_port


@pytest.fixture(scope="module")
def hub(model_dir: Path) -> Iterator[ScriptedHub]:
    small = (model_dir / "model_int8.onnx").read_bytes()  # a real graph, the smaller one
    tokenizer = (model_dir / "tokenizer.json").read_bytes()
    repos = {
        "org/ce": {
            "config.json": b"{}",
            "pytorch_model.bin": b"never fetched",
            "tokenizer.json": tokenizer,
            "onnx/model.onnx": small,
            "onnx/model_qint8_avx512.onnx": small,
        },
        "org/torch-only": {"pytorch_model.bin": b"weights", "tokenizer.json": tokenizer},
    }
    with ScriptedHub(repos) as server:
        yield server


def hub_env(url: str, home: Path, upstream: str = "http://127.0.0.1:1") -> dict[str, str]:
    return {"HF_ENDPOINT": url, "HF_HOME": str(home), "GATEWAY_UPSTREAM__URLS": upstream}


def fetched(hub: ScriptedHub) -> set[str]:
    prefix = "GET /org/ce/resolve/main/"
    return {r.removeprefix(prefix) for r in hub.requests if r.startswith(prefix)}


def test_the_onnx_export_is_downloaded_and_then_served_from_the_cache(
    hub: ScriptedHub, osmem: str, tmp_path: Path
) -> None:
    hub.requests.clear()
    done = run_cli(["check", "--model", "org/ce"], hub_env(hub.url, tmp_path, osmem))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    model hub:org/ce [model.onnx] (cpu) loaded and scored a pair" in done.stdout
    assert fetched(hub) == {"tokenizer.json", "onnx/model.onnx"}

    # The Hub is gone (here: nothing listens); the cached copy serves.
    offline = hub_env(f"http://127.0.0.1:{free_port()}", tmp_path, osmem)
    again = run_cli(["check", "--model", "org/ce"], offline)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ok    model hub:org/ce" in again.stdout


def test_a_quantized_variant_is_the_only_graph_fetched(
    hub: ScriptedHub, osmem: str, tmp_path: Path
) -> None:
    hub.requests.clear()
    args = ["check", "--model", "org/ce", "--model-file", "model_qint8_avx512.onnx"]
    done = run_cli(args, hub_env(hub.url, tmp_path, osmem))
    assert done.returncode == 0, done.stdout + done.stderr
    assert fetched(hub) == {"tokenizer.json", "onnx/model_qint8_avx512.onnx"}


@pytest.mark.parametrize(
    ("model", "file", "reason"),
    [
        (
            "org/missing",
            "model.onnx",
            "org/missing was not found on the Hub (404: no such repository, or a private one"
            " that needs HF_TOKEN)",
        ),
        (
            "org/torch-only",
            "model.onnx",
            "org/torch-only has no ONNX export (no .onnx file in the repository); export one"
            " with `rerank-gateway export-model --model org/torch-only --out DIR` and set"
            " GATEWAY_MODEL__PATH",
        ),
        (
            "org/ce",
            "model_int8.onnx",
            "GATEWAY_MODEL__FILE=model_int8.onnx (--model-file) is not in org/ce; its ONNX files:"
            " onnx/model.onnx, onnx/model_qint8_avx512.onnx",
        ),
    ],
    ids=["404", "no-onnx", "no-such-file"],
)
def test_a_failed_download_says_why(
    hub: ScriptedHub, tmp_path: Path, model: str, file: str, reason: str
) -> None:
    args = ["serve", "--model", model, "--model-file", file, "--port", str(free_port())]
    done = run_cli(args, hub_env(hub.url, tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"rerank-gateway: model hub:{model} cannot be used: {reason}"
    ]


def test_no_network_says_so(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    args = ["serve", "--model", "org/ce", "--port", str(free_port())]
    done = run_cli(args, hub_env(endpoint, tmp_path))
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        f"rerank-gateway: model hub:org/ce cannot be used: could not reach the Hugging Face Hub"
        f" at {endpoint} ("
    )
    assert line.endswith(") and org/ce is not in the local cache")
