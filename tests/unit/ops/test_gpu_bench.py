"""ops/gpu_bench.sh and ops/gpu_sweep.py where no GPU is: the arguments, the clear stop
without a CUDA device, and the sweep's table on the CPU provider with the real model."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ops import gpu_sweep
from tests.doubles.corpora import REPO, SHARED

SCRIPT = REPO / "ops" / "gpu_bench.sh"
MODEL = SHARED / "models" / "all-minilm-l6-v2-pair"
DATA = SHARED / "data" / "scifact"
needs_model = pytest.mark.skipif(
    not (MODEL / "model.onnx").is_file() or not (DATA / "corpus.jsonl").is_file(),
    reason=f"no model at {MODEL} or no SciFact at {DATA}",
)


def bench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
    )


def test_help_names_every_option() -> None:
    got = bench("--help")
    assert got.returncode == 0
    for option in ("--model-dir", "--data", "--wheels", "--dry-run", "--skip-install"):
        assert option in got.stdout


def test_unknown_argument_is_refused() -> None:
    got = bench("--gpu", "0")
    assert got.returncode == 2 and "unknown argument --gpu" in got.stderr


@needs_model
def test_missing_paths_stop_before_any_step(tmp_path: Path) -> None:
    got = bench("--data", DATA)
    assert got.returncode == 1 and "--model-dir is required" in got.stderr
    got = bench("--model-dir", tmp_path, "--data", DATA)
    assert got.returncode == 1 and f"no model.onnx in {tmp_path}" in got.stderr
    assert "== 1 device" not in got.stdout


@needs_model
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU driver is here")
def test_no_cuda_device_fails_fast_with_the_reason(tmp_path: Path) -> None:
    got = bench("--model-dir", MODEL, "--data", DATA, "--work", tmp_path)
    assert got.returncode == 1
    assert "no CUDA device: nvidia-smi not found (use --dry-run on a CPU)" in got.stderr
    assert not (tmp_path / "venv").exists()  # nothing installed


def test_sweep_arguments_are_checked() -> None:
    with pytest.raises(SystemExit):
        gpu_sweep.parse_args(["--model-dir", "m", "--data", "d", "--batches", "0,4"])
    with pytest.raises(SystemExit):
        gpu_sweep.parse_args(["--model-dir", "m", "--data", "d", "--batches", "8", "--pairs", "4"])
    args = gpu_sweep.parse_args(["--model-dir", "m", "--data", "d"])
    assert (args.device, args.file, args.max_length) == ("cuda", "model_fp16.onnx", 256)


@needs_model
def test_sweep_prints_one_row_per_cell_on_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--model-dir", str(MODEL), "--data", str(DATA), "--device", "cpu"]
    argv += ["--file", "model.onnx", "--batches", "1,2", "--pairs", "2", "--rounds", "1"]
    assert gpu_sweep.main([*argv, "--threads", "2", "--max-length", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# gpu_sweep:") and "on cpu" in lines[0]
    rows = [line.split() for line in lines[2:]]
    cells = [("1", "on"), ("1", "off"), ("2", "on"), ("2", "off")]
    assert [(r[0], r[1]) for r in rows] == [*cells, ("2", "on")]  # the last: 2 threads
    assert all(float(r[2]) > 0 for r in rows)
    assert rows[-1][3:5] == ["2", "threads"]
