"""The ``rerank-gateway`` command: help, version, and each refused configuration as
exit status 2 with exactly one line on stderr (the console script, a fresh process)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from gateway import __version__
from tests.doubles.commands import CONSOLE_SCRIPT, run_cli
from tests.doubles.net import free_port
from tests.doubles.waits import wait_until

PREFIX = "rerank-gateway: "


@pytest.mark.parametrize("module", [False, True], ids=["console-script", "python-m"])
def test_help_and_version(module: bool, tmp_path: Path) -> None:
    # From a directory outside the repository: the commands ship in the package.
    done = run_cli(["--help"], cwd=tmp_path, module=module)
    assert done.returncode == 0, done.stderr
    for command in ("serve", "check", "seed", "eval", "report", "export-model"):
        assert command in done.stdout
    version = run_cli(["--version"], cwd=tmp_path, module=module)
    assert (version.returncode, version.stdout) == (0, f"rerank-gateway {__version__}\n")


def test_each_command_has_help(tmp_path: Path) -> None:
    for command in ("serve", "check", "seed", "eval", "report"):
        done = run_cli([command, "--help"], cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr)
        assert f"usage: rerank-gateway {command}" in done.stdout
    serve = run_cli(["serve", "--help"], cwd=tmp_path).stdout
    for flag, variable in [
        ("--upstream", "GATEWAY_UPSTREAM__URLS"),
        ("--fields", "GATEWAY_RERANK__FIELDS"),
        ("--model", "GATEWAY_MODEL__HUB_ID"),
        ("--port", "GATEWAY_SERVER__PORT"),
    ]:
        assert flag in serve and variable in serve


def test_export_model_runs_outside_the_checkout(tmp_path: Path, model_dir: Path) -> None:
    """``export-model --from-onnx`` from any directory (it ships in the package): the
    variants are written and the result serves the same fp32 scores as its source."""
    done = run_cli(["export-model", "--help"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--from-onnx" in done.stdout
    out = tmp_path / "exported"
    args = ["export-model", "--from-onnx", str(model_dir), "--out", str(out), "--no-fp16"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "export.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "model_int8.onnx"}
    from gateway.model.onnx import OnnxCrossEncoder
    from gateway.settings import ModelSettings

    pairs = [("who lives in berlin", "Berlin has 3.7 million people."), ("a", "b c")]
    scores = []
    for where in (model_dir, out):
        enc = OnnxCrossEncoder(where, ModelSettings(path=where, quantization="none"))
        scores.append(enc.score(enc.encode(pairs)))
    assert scores[0].tolist() == scores[1].tolist()
    missing = run_cli(
        ["export-model", "--from-onnx", str(tmp_path), "--out", str(out)], cwd=tmp_path
    )
    assert missing.returncode == 2
    assert "model.onnx missing" in missing.stdout


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line of a refused start-up."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(PREFIX)
    return line.removeprefix(PREFIX)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"GATEWAY_RERANK_WINDOW": "50"},
            "GATEWAY_RERANK_WINDOW: unknown setting (did you mean GATEWAY_RERANK__WINDOW?)",
        ),
        (
            {"GATEWAY_RERANKING__WINDOW": "50"},
            "GATEWAY_RERANKING__WINDOW: unknown setting (did you mean GATEWAY_RERANK__WINDOW?)",
        ),
        (
            {"GATEWAY_CACHE__REDIS_URL": "htp://user:s3cret@redis:6379"},
            "GATEWAY_CACHE__REDIS_URL: not a Redis URL (redis://, rediss:// or unix://)",
        ),
        (
            {"GATEWAY_EXPERIMENT__EVENTS_REDIS_URL": "redis://redis:63x9"},
            "GATEWAY_EXPERIMENT__EVENTS_REDIS_URL: not a valid URL (bad port or host)",
        ),
        (
            {"GATEWAY_RELEVANCE__PROFILES": '{"papers": {"window": 50,}}'},
            "GATEWAY_RELEVANCE__PROFILES: not valid JSON (Expecting property name enclosed in"
            " double quotes: line 1 column 26 (char 25))",
        ),
        (
            {"GATEWAY_RERANK__WINDOW": "lots"},
            "GATEWAY_RERANK__WINDOW: Input should be a valid integer, unable to parse string"
            " as an integer",
        ),
    ],
    ids=["single-underscore", "unknown-section", "redis-scheme", "redis-port", "json", "int"],
)
def test_misconfiguration_is_one_line_and_exit_2(env: dict[str, str], line: str) -> None:
    assert refused(run_cli(["serve"], env)) == line


def test_check_refuses_bad_settings_the_same_way() -> None:
    done = run_cli(["check"], {"GATEWAY_RERANK_WINDOW": "50"})
    assert refused(done).startswith("GATEWAY_RERANK_WINDOW: unknown setting")
    assert done.stdout == ""


def test_check_binds_the_port_serve_would_listen_on(model_dir: Path) -> None:
    """``check --host/--port`` are not ignored: a taken port is a problem, a free one is ok."""
    env = {"GATEWAY_MODEL__PATH": str(model_dir), "GATEWAY_UPSTREAM__URLS": "http://127.0.0.1:9"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(["check", "--host", "127.0.0.1", "--port", str(port)], env)
    assert done.returncode == 1, done.stderr
    where = f"127.0.0.1:{port}"
    fail = f"FAIL  GATEWAY_SERVER__PORT: cannot listen on {where} (Address already in use)"
    assert fail in done.stdout.splitlines()
    free = free_port()
    done = run_cli(["check", "--host", "127.0.0.1", "--port", str(free)], env)
    assert f"ok    can listen on 127.0.0.1:{free}" in done.stdout.splitlines()
    assert "GATEWAY_SERVER__PORT" not in "".join(
        line for line in done.stdout.splitlines() if line.startswith("FAIL")
    )


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refused(run_cli(["serve", "--port", str(port)]))
    where = f"127.0.0.1:{port}"
    assert line == f"GATEWAY_SERVER__PORT: cannot listen on {where} (Address already in use)"


def test_a_missing_model_file_is_an_error_not_a_fallback(model_dir: Path) -> None:
    env = {"GATEWAY_MODEL__PATH": str(model_dir), "GATEWAY_MODEL__FILE": "model_int9.onnx"}
    line = refused(run_cli(["serve", "--port", str(free_port())], env))
    assert line.startswith(
        f"model {model_dir} cannot be used: GATEWAY_MODEL__FILE=model_int9.onnx is not in"
        f" {model_dir}; it has "
    )
    assert "model.onnx" in line.rsplit("it has ", 1)[1]


def test_a_missing_model_file_flag_names_the_flag_and_the_directory(model_dir: Path) -> None:
    """Typed as ``--model-file``: the line names that flag as well as its variable."""
    env = {"GATEWAY_MODEL__PATH": str(model_dir)}
    args = ["--model-file", "model_int9.onnx", "--port", str(free_port())]
    line = refused(run_cli(["serve", *args], env))
    assert line.startswith(
        f"model {model_dir} cannot be used: GATEWAY_MODEL__FILE=model_int9.onnx (--model-file)"
        f" is not in {model_dir}; it has "
    )


def test_eval_refuses_a_missing_model_file_before_it_runs(model_dir: Path, tmp_path: Path) -> None:
    """``eval --check-offline --model-file``: one line naming the flag and --model-dir's
    directory, before any query is sent (the gateway URL here answers nothing)."""
    args = ["eval", "--data", str(tmp_path), "--gateway", "http://127.0.0.1:9"]
    args += ["--check-offline", "--model-dir", str(model_dir), "--model-file", "nope.onnx"]
    done = run_cli(args)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"eval: --model-file nope.onnx is not in {model_dir}; it has ")
    assert done.stdout == ""


def test_cuda_without_a_gpu_stops_start_up(model_dir: Path) -> None:
    import onnxruntime as ort

    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # this machine's case
    env = {"GATEWAY_MODEL__PATH": str(model_dir)}
    line = refused(run_cli(["serve", "--device", "cuda", "--port", str(free_port())], env))
    assert line.startswith(
        f"model {model_dir} cannot be used: GATEWAY_MODEL__DEVICE=cuda (--device) but this"
        " onnxruntime has no CUDAExecutionProvider"
    )


@pytest.fixture
def broken_model(model_dir: Path, tmp_path: Path) -> Path:
    """A model directory whose model.onnx is not an ONNX graph."""
    shutil.copy(model_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "model.onnx").write_bytes(b"not a protobuf")
    return tmp_path


def test_a_model_that_cannot_load_stops_start_up(broken_model: Path) -> None:
    line = refused(run_cli(["serve", "--model", str(broken_model), "--port", str(free_port())]))
    assert line == (
        f"model {broken_model} cannot be used: could not load model from {broken_model}:"
        " InvalidProtobuf"
    )


def test_passthrough_without_a_model_when_allowed(broken_model: Path, osmem: str) -> None:
    port = free_port()
    env = {"GATEWAY_SERVER__START_WITHOUT_MODEL": "true", "GATEWAY_SERVER__PORT": str(port)}
    args = ["serve", "--model", str(broken_model), "--upstream", osmem]
    with subprocess.Popen(
        [str(CONSOLE_SCRIPT), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        try:
            health = _ready_answer(f"http://127.0.0.1:{port}/_gateway/health/ready")
            assert health["model"] == "failed"  # the reason is in the log, never in health
            body = json.dumps({"query": {"match": {"text": "berlin"}}}).encode()
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/docs/_search",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.headers["X-Rerank"] == "skipped"
                assert json.loads(resp.read())["hits"]["hits"]
        finally:
            proc.terminate()
            proc.wait(30)


def _ready_answer(url: str) -> dict[str, str]:
    """Readiness once the model has failed (503 with the reason)."""

    def failed() -> dict[str, str] | None:
        try:
            urllib.request.urlopen(url, timeout=2)
        except urllib.error.HTTPError as exc:
            answer: dict[str, str] = json.loads(exc.read())
            if answer["model"] != "loading":
                return answer
        except OSError:
            pass
        return None

    return wait_until(failed, 60, what="the gateway reporting the model's failure")
