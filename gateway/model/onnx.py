"""An ONNX cross-encoder run by onnxruntime over a ``tokenizers`` tokenizer.

The only module that runs onnxruntime (``gateway.model.quantize`` builds a model file
offline with NNCF, which calibrates through onnxruntime). Its exceptions become
``ModelError`` here (the tokenizer's in ``gateway.model.local``, which this backend
shares with ``openvino.py``).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.errors import ModelError
from gateway.model.base import Scores
from gateway.model.local import (
    LocalEncoder,
    check_inputs,
    fingerprint,
    load_tokenizer,
    pair_lanes,
    registered_as,
)
from gateway.model.variants import ModelFile, resolve
from gateway.settings import OnnxModel, SpeedSettings

log = logging.getLogger(__name__)

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
# device setting -> (execution provider, the onnxruntime package that carries it)
_ACCELERATED = {
    "cuda": (_CUDA, "onnxruntime-gpu"),
    "openvino": ("OpenVINOExecutionProvider", "onnxruntime-openvino"),
}
_OPT_LEVEL = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def execution_path(model: ModelFile, settings: OnnxModel, speed: SpeedSettings) -> str:
    """How scores are computed, e.g. ``device=cpu;precision=model;quantization=static;...``."""
    precision = speed.openvino_precision if settings.device == "openvino" else "model"
    runs = "per-pair" if runs_per_pair(model, settings, speed) else "batched"
    # The OpenVINO provider runs with run-time activation quantization off (provider_options_for)
    dynamic = ";dynamic_quantization=off" if settings.device == "openvino" else ""
    return (
        f"device={settings.device};precision={precision};quantization={model.kind};"
        f"runs={runs};graph={speed.graph_optimization}{dynamic}"
    )


def runs_per_pair(model: ModelFile, settings: OnnxModel, speed: SpeedSettings) -> bool:
    """Whether only one pair per run keeps a pair's score independent of its batch-mates:
    a dynamically quantized file, or the OpenVINO execution provider on an int8 or bf16
    path (shape-dependent kernels, see ``gateway.model.openvino``), unless the operator
    allowed batch dependence."""
    lossy = model.per_pair or (
        settings.device == "openvino"
        and (model.kind != "none" or speed.openvino_precision == "bf16")
    )
    return lossy and not settings.allow_batch_dependent


def providers_for(device: str) -> list[str]:
    """Execution providers for a device setting; fails clearly when one is missing."""
    if device == "cpu":
        return [_CPU]
    provider, package = _ACCELERATED[device]
    available = ort.get_available_providers()
    if provider not in available:
        raise ModelError(
            f"GATEWAY_MODEL__DEVICE={device} but this onnxruntime has no {provider} "
            f"(available: {', '.join(available)}); install {package} in place of onnxruntime"
        )
    return [provider, _CPU]


def provider_options_for(device: str, speed: SpeedSettings) -> dict[str, str]:
    """The first provider's options: the operator's, over the gateway's defaults."""
    defaults: dict[str, str] = {}
    if device == "openvino":
        # No run-time activation quantization: it scales over the whole batch.
        hint = {
            "CPU": {
                "INFERENCE_PRECISION_HINT": speed.openvino_precision,
                "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0",
            }
        }
        defaults = {"device_type": "CPU", "load_config": json.dumps(hint)}
    return {**defaults, **speed.provider_options}


def session_options(
    settings: OnnxModel, speed: SpeedSettings, threads: int | None = None
) -> ort.SessionOptions:
    """Threads from MODEL__* (or ``threads`` per run), graph optimization from SPEED__*;
    operators run sequentially inside a run."""
    options = ort.SessionOptions()
    options.graph_optimization_level = _OPT_LEVEL[speed.graph_optimization]
    options.intra_op_num_threads = settings.intra_op_threads if threads is None else threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def open_session(
    model_file: Path,
    settings: OnnxModel,
    speed: SpeedSettings,
    section: str = "MODEL",
    threads: int | None = None,
) -> ort.InferenceSession:
    """An inference session on the configured device (the reranker's and the embedder's)."""
    providers = providers_for(settings.device)
    provider_options: list[dict[str, str]] = [{} for _ in providers]
    provider_options[0] = provider_options_for(settings.device, speed)
    try:
        session = ort.InferenceSession(
            str(model_file),
            session_options(settings, speed, threads),
            providers=providers,
            provider_options=provider_options,
        )
    except Exception as exc:  # onnxruntime raises plain Exception types
        raise ModelError(
            f"could not load model from {model_file.parent}: {type(exc).__name__}"
        ) from exc
    if session.get_providers()[0] != providers[0]:
        # onnxruntime falls back to the CPU with only a warning (missing CUDA libraries,
        # bad provider options): the operator asked for the device, so refuse to start.
        raise ModelError(
            f"GATEWAY_{section}__DEVICE={settings.device}: {providers[0]} failed to start "
            "(see onnxruntime's message above); check the provider's libraries and options"
        )
    return session


def run_session(session: ort.InferenceSession, outputs: list[str], feed: dict[str, Any]) -> Any:
    """``session.run``, its errors as ``ModelError`` (for callers outside this module)."""
    try:
        return session.run(outputs, feed)
    except Exception as exc:
        raise ModelError(f"inference failed: {type(exc).__name__}") from exc


class OnnxCrossEncoder(LocalEncoder):
    """Loads the file MODEL__QUANTIZATION / MODEL__FILE select (``gateway.model.variants``)
    + ``tokenizer.json`` from a directory.

    ``score`` = ``run(feed(batch))`` (``LocalEncoder``). With IO binding (cuda by
    default) ``feed`` also copies the inputs to the device.
    """

    def __init__(
        self, directory: Path, settings: OnnxModel, speed: SpeedSettings | None = None
    ) -> None:
        self.settings = settings
        speed = speed or SpeedSettings.model_validate({})
        model = resolve(directory, settings)
        model_file = model.path
        self._tok = load_tokenizer(directory, settings)
        # A dynamically quantized graph scales activations over its whole input: one pair
        # per run keeps a pair's score independent of its batch-mates. On the CPU such
        # pairs run side by side, one thread each (``SPEED__PAIR_LANES``): a 256-token
        # pair keeps a core busy, and a run's result does not depend on its thread.
        self.per_pair = runs_per_pair(model, settings, speed)
        self.lanes = pair_lanes(settings, speed, self.per_pair and settings.device == "cpu")
        threads = 1 if self.lanes > 1 else None
        self._session = open_session(model_file, settings, speed, threads=threads)
        self._lanes = ThreadPoolExecutor(self.lanes, "pair-lane") if self.lanes > 1 else None
        self._inputs = {i.name for i in self._session.get_inputs()}
        check_inputs(model_file, self._inputs)
        names = [o.name for o in self._session.get_outputs()]
        self._output = "logits" if "logits" in names else names[0]
        self.execution = execution_path(model, settings, speed)
        tokenizer_file = directory / "tokenizer.json"
        self.revision = registered_as(directory)
        self._fingerprint = fingerprint(
            model.sha256, tokenizer_file, settings.max_length, self.execution, self.revision
        )
        self._device = "cuda" if settings.device == "cuda" else "cpu"
        self._device_id = int(speed.provider_options.get("device_id", "0"))
        self.io_binding = not self.per_pair and (
            speed.io_binding == "on" or (speed.io_binding == "auto" and settings.device == "cuda")
        )
        self.model_file = model_file
        log.info(
            "model loaded: %s (providers %s, %s, %d pair lane(s), fingerprint %s)",
            model_file,
            ",".join(self._session.get_providers()),
            self.execution,
            self.lanes,
            self._fingerprint,
        )

    def _run_pairs(self, feeds: list[object]) -> Scores:
        if self._lanes is None or len(feeds) < 2:
            return super()._run_pairs(feeds)
        return np.concatenate(list(self._lanes.map(self._run_one, feeds)))

    def _bind(self, arrays: dict[str, Any]) -> object:
        """With IO binding, the arrays bound on the device."""
        if not self.io_binding:
            return arrays
        try:
            binding = self._session.io_binding()
            for name, array in arrays.items():
                value = ort.OrtValue.ortvalue_from_numpy(array, self._device, self._device_id)
                binding.bind_ortvalue_input(name, value)
            binding.bind_output(self._output, "cpu")
        except Exception as exc:
            raise ModelError(f"input binding failed: {type(exc).__name__}") from exc
        return binding

    def _infer(self, feed: object) -> np.ndarray[Any, Any]:
        if isinstance(feed, dict):
            (out,) = self._session.run([self._output], feed)
        else:
            binding: Any = feed
            self._session.run_with_iobinding(binding)
            (out,) = binding.copy_outputs_to_cpu()
        return np.asarray(out)
