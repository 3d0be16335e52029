"""A cross-encoder run by the OpenVINO runtime (``MODEL__BACKEND=openvino``, the ``openvino``
extra): the only module that imports ``openvino`` at serving time.

It reads the same model directory as the onnxruntime backend (``model.onnx`` or
``MODEL__FILE`` + ``tokenizer.json``, through the same ``PairTokenizer``), and with
``MODEL__QUANTIZATION`` ``static`` / ``auto`` the NNCF int8 model generated into
``MODEL__CACHE_DIR`` by ``python -m gateway.model.openvino_quantize``.

Batch invariance: OpenVINO's CPU plugin may quantize activations at run time, over the
whole input (``DYNAMIC_QUANTIZATION_GROUP_SIZE``; the batch dependence of the dynamic
int8 ONNX file): switched off here (group size 0). f32 is then batch-invariant (a pair
alone and among batch-mates of other lengths agree to 1e-5), and runs batched. The
static int8 model carries fixed scales, but its int8 kernels are picked by shape, and
the shapes inside a graph depend on the batch (the stand-in pair graph trims each view
to its longest row): a pair's score moved by up to 2.4e-2 with its batch-mates on an
AVX2 EPYC. So an int8 model runs one pair per run (invariant by construction) unless
``MODEL__ALLOW_BATCH_DEPENDENT=true``, and the fingerprint says which (``runs=``).
bf16 (``SPEED__OPENVINO_PRECISION``) only applies on CPUs with bf16 instructions; on
others OpenVINO computes in f32. ``tests/unit/model/test_openvino.py`` checks all this.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from gateway.errors import ModelError
from gateway.model.base import Scores
from gateway.model.hub import locate_onnx
from gateway.model.local import (
    LocalEncoder,
    check_inputs,
    fingerprint,
    load_tokenizer,
    logits_to_scores,
    model_threads,
    pair_lanes,
    registered_as,
)
from gateway.model.variants import ModelFile, file_digest, inspect
from gateway.settings import OnnxModel, SpeedSettings

log = logging.getLogger(__name__)

# Bumped when the NNCF recipe changes, so an old generated model is never picked up.
OV_RECIPE = "nncf-int8-transformer-mixed-ffnfp32-v1"
OV_FILE = "model.xml"


def ov_static_path(cache_dir: Path, source: ModelFile) -> Path:
    """Where the OpenVINO int8 model generated from ``source`` lives: keyed by its content."""
    return cache_dir / f"{source.sha256[:16]}-{OV_RECIPE}" / OV_FILE


def resolve_ov(directory: Path, settings: OnnxModel) -> tuple[Path, str]:
    """The model file to compile and its quantization kind (``none`` or ``static``)."""
    source_path = locate_onnx(directory, settings.file)  # the root, then onnx/ (Hub layout)
    if settings.quantization == "dynamic":
        raise ModelError(
            "GATEWAY_MODEL__QUANTIZATION=dynamic is not offered with MODEL__BACKEND=openvino "
            "(its scores depend on batch-mates); use static or none"
        )
    source = inspect(source_path)
    if settings.quantization == "none" or source.kind != "none":
        return source_path, source.kind
    if settings.cache_dir is not None:
        generated = ov_static_path(settings.cache_dir, source)
        if generated.is_file():
            return generated, "static"
    if settings.quantization == "static":
        raise ModelError(
            f"no OpenVINO int8 model for {source_path} in {settings.cache_dir}: generate it with "
            f"`python -m gateway.model.openvino_quantize --model-dir {directory} "
            "--cache-dir CACHE --calibration BEIR_DIR` and set GATEWAY_MODEL__CACHE_DIR"
        )
    return source_path, "none"


def compile_config(settings: OnnxModel, speed: SpeedSettings, streams: int = 1) -> dict[str, Any]:
    """The CPU plugin's properties: no run-time activation quantization; one stream with
    every thread (latency), or ``streams`` streams sharing the threads (one pair each)."""
    config: dict[str, Any] = {
        "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
        "NUM_STREAMS": streams,
        "INFERENCE_PRECISION_HINT": speed.openvino_precision,
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
        "INFERENCE_NUM_THREADS": max(model_threads(settings), streams),
    }
    return config


def _precision(compiled: Any) -> str:
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type
    return str(hint.get_type_name() if hasattr(hint, "get_type_name") else hint)


def compile_cpu(
    core: Any, model_file: Path, kind: str, settings: OnnxModel, speed: SpeedSettings
) -> tuple[Any, bool, int, str]:
    """The compiled model, whether it runs one pair per run, its streams and precision.

    Static int8 kernels are picked by shape and bf16 rounds differently per shape (module
    docstring), so both run one pair per run unless MODEL__ALLOW_BATCH_DEPENDENT; such
    pairs run side by side, on streams of one thread each (a 256-token pair keeps a core
    busy), and every stream runs the same kernels, so a pair's score does not depend on
    its stream. bf16 applies where the CPU has bf16 instructions: predicted from the
    plugin's capabilities, checked on the compiled model (compiled again if it differs).
    """
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    precision = "bf16" if speed.openvino_precision == "bf16" and "BF16" in capabilities else "f32"
    for _ in range(2):
        per_pair = (kind != "none" or precision == "bf16") and not settings.allow_batch_dependent
        streams = pair_lanes(settings, speed, per_pair)
        compiled = core.compile_model(
            str(model_file), "CPU", compile_config(settings, speed, streams)
        )
        planned, precision = precision, _precision(compiled)
        if precision == planned:  # runs as planned: per pair where it must be
            return compiled, per_pair, streams, precision
    raise ModelError(f"OpenVINO compiled the model in {planned}, then in {precision}")


class OpenVinoCrossEncoder(LocalEncoder):
    """``score`` = ``run(feed(batch))`` (``LocalEncoder``); one infer request (and, for a
    per-pair model, a queue of one request per stream), used only from the batcher's
    model thread."""

    def __init__(
        self, directory: Path, settings: OnnxModel, speed: SpeedSettings | None = None
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ModelError(
                "GATEWAY_MODEL__BACKEND=openvino needs the openvino package: "
                "pip install 'rerank-gateway[openvino]'"
            ) from exc
        speed = speed or SpeedSettings.model_validate({})
        self._tok = load_tokenizer(directory, settings)
        model_file, kind = resolve_ov(directory, settings)
        try:
            core = ov.Core()
            compiled, self.per_pair, self.streams, precision = compile_cpu(
                core, model_file, kind, settings, speed
            )
        except Exception as exc:  # openvino raises RuntimeError for everything
            raise ModelError(
                f"could not load model from {model_file.parent}: {type(exc).__name__}: {exc}"
            ) from exc
        self._inputs = {name for port in compiled.inputs for name in port.get_names()}
        check_inputs(model_file, self._inputs)
        outputs = compiled.outputs
        named = [port for port in outputs if "logits" in port.get_names()]
        self._output = named[0] if named else outputs[0]
        self._request = compiled.create_infer_request()
        self._queue = ov.AsyncInferQueue(compiled, self.streams) if self.streams > 1 else None
        runs = "per-pair" if self.per_pair else "batched"
        self.execution = (
            f"backend=openvino;precision={precision};quantization={kind};runs={runs};"
            "dynamic_quantization=off"
        )
        weights = [model_file]
        if model_file.suffix == ".xml":
            weights.append(model_file.with_suffix(".bin"))
        self.revision = registered_as(directory)  # a fine-tuned model's registry revision
        self._fingerprint = fingerprint(
            file_digest(*weights),
            directory / "tokenizer.json",
            settings.max_length,
            self.execution,
            self.revision,
        )
        self.model_file = model_file
        log.info(
            "model loaded: %s (OpenVINO %s on CPU, %s, %d stream(s), fingerprint %s)",
            model_file,
            ov.get_version(),
            self.execution,
            self.streams,
            self._fingerprint,
        )

    def _run_pairs(self, feeds: list[object]) -> Scores:
        """One pair per infer request, ``streams`` at a time; scores in ``feeds`` order."""
        queue = self._queue
        if queue is None or len(feeds) < 2:
            return super()._run_pairs(feeds)
        outputs: list[np.ndarray[Any, Any] | None] = [None] * len(feeds)

        def done(request: Any, index: int) -> None:
            outputs[index] = np.array(request.get_tensor(self._output).data)

        queue.set_callback(done)
        try:
            for index, one in enumerate(feeds):
                queue.start_async(one, index)
            queue.wait_all()
        except Exception as exc:
            raise ModelError(f"inference failed: {type(exc).__name__}") from exc
        if any(out is None for out in outputs):
            raise ModelError("inference failed: a pair returned no logits")
        return np.concatenate([logits_to_scores(out) for out in outputs if out is not None])

    def _infer(self, feed: object) -> np.ndarray[Any, Any]:
        result = self._request.infer(feed)
        return np.array(result[self._output])
