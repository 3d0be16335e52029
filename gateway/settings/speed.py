"""How the models run fast: the batcher's budget and onnxruntime's session (docs/speed.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.settings.base import Section


class BatcherSettings(Section):
    """How the pairs of concurrent searches are batched for the model."""

    max_batch_tokens: int = Field(
        4096,
        gt=0,
        description=(
            "Padded tokens per model run (batch size x longest pair). On CPU 16 pairs of 256"
            " tokens run as fast per pair as 64, in a third of the memory; raise it for cuda."
        ),
    )
    max_batch_pairs: int = Field(64, gt=0, description="Pairs per model run at most.")
    sweep_pairs: tuple[int, ...] = Field(
        (1, 2, 4, 8, 16, 32),
        description=(
            "Batch sizes (pairs at MODEL__MAX_LENGTH) a local model is timed at during warm-up;"
            " the best pairs/s sets the token budget. Empty, or MAX_BATCH_TOKENS set"
            " explicitly: the budget stays as configured."
        ),
    )
    max_wait_ms: float = Field(
        2.0, ge=0, description="How long the batcher waits to fill a batch from other requests."
    )
    max_queue_pairs: int = Field(
        4096, gt=0, description="Pairs waiting at most; a search beyond it is not reranked."
    )


class SpeedSettings(Section):
    """How models run: the deadline a search may ask for, warm-up, onnxruntime's session."""

    max_timeout_s: float = Field(
        30.0,
        gt=0,
        description=(
            "Longest rerank deadline a search may ask for with `ext.rerank.timeout_ms` or the"
            " header `X-Rerank-Timeout-Ms` (longer asks are cut to it)."
        ),
    )
    warm_up: Literal["auto", "shapes", "one"] = Field(
        "auto",
        description=(
            "Model runs at start-up before readiness: `one` tiny run; `shapes` also the largest"
            " configured batch (BATCHER__MAX_BATCH_PAIRS x MODEL__MAX_LENGTH within the token"
            " budget); `auto`: `shapes` on cuda, `one` on cpu."
        ),
    )
    graph_optimization: Literal["all", "extended", "basic", "disabled"] = Field(
        "all", description="onnxruntime graph optimization level."
    )
    io_binding: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "Bind model inputs/outputs with onnxruntime IO binding (inputs copied to the device"
            " while the previous batch runs); `auto`: on for cuda."
        ),
    )
    provider_options: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Options of the first execution provider, JSON, e.g. `{"device_id": "1"}` for cuda.'
        ),
    )
    pair_lanes: int = Field(
        0,
        ge=0,
        description=(
            "Pairs scored at once, one thread each, when the model runs one pair per run"
            " (dynamic int8 on onnxruntime's CPU; OpenVINO int8 or bf16); 0: one per model"
            " thread (MODEL__INTRA_OP_THREADS, else the CPUs). A pair's score does not"
            " depend on it (docs/speed.md)."
        ),
    )
    openvino_precision: Literal["bf16", "f32"] = Field(
        "bf16",
        description=(
            "OpenVINO's inference precision on the CPU (MODEL__DEVICE=openvino); it uses f32"
            " where the CPU has no bf16 instructions."
        ),
    )
