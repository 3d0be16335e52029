"""The cross-encoder that scores pairs: one class per backend, chosen by MODEL__BACKEND.

``ModelSettings`` holds what every backend reads; ``OnnxModel`` (a local
directory or a Hub download), ``TeiModel`` (a text-embeddings-inference server)
and ``PoolModel`` (several remote scorers) add their own fields. ``ModelBackend``
is their union, discriminated on ``backend`` (unset: ``onnx``): the type of
MODEL__* and of each RELEVANCE__MODELS entry. ``ModelSettings(...)`` and
``ModelSettings.model_validate(...)`` build the backend the values name.

A section may also hold another backend's fields (an image's MODEL__DEVICE under
MODEL__BACKEND=tei): they are dropped; a name no backend has is still an error.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, cast

from pydantic import (
    Discriminator,
    Field,
    SecretStr,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)

from gateway.settings.base import HttpUrl, HttpUrls, ModelDir, Section

Backend = Literal["onnx", "openvino", "tei", "pool"]
BACKEND_ERROR = "model_backend"  # the error type of a MODEL__BACKEND no backend has
# Pool protocol `oip`: the tensor roles of MODEL__OIP_TENSORS and their default names.
OIP_ROLES = {
    "input_ids": "input_ids",
    "attention_mask": "attention_mask",
    "token_type_ids": "token_type_ids",
    "query": "query",
    "documents": "documents",
    "pairs": "pairs",
    "output": "logits",
}


class ModelSettings(Section):
    """The cross-encoder: fields per MODEL__BACKEND (`onnx`, `tei`, `pool`), others ignored.

    What every backend reads; the base of ``OnnxModel``, ``TeiModel`` and ``PoolModel``.
    """

    backend: Backend = Field(
        "onnx",
        description=(
            "`onnx` runs the model in the gateway on onnxruntime; `openvino` runs the same"
            " files on the OpenVINO runtime (the `openvino` extra, CPU; its int8 model from"
            " `python -m gateway.model.openvino_quantize`); `tei` sends pairs to a Hugging Face"
            " text-embeddings-inference server's `/rerank` (MODEL__TEI_URL); `pool` splits"
            " them over several remote scorers (MODEL__POOL_URLS)."
        ),
    )
    max_length: int = Field(
        256, ge=8, le=8192, description="Token limit per (query, document) pair; doc cut first."
    )
    max_query_tokens: int = Field(
        128,
        ge=1,
        description=(
            "The query is cut to this many tokens before it is paired with documents (at most"
            " MAX_LENGTH - 4), so a long query costs no more than a short one."
        ),
    )
    score_mode: Literal["logit", "sigmoid"] = Field(
        "logit", description="`logit` keeps the raw model output; `sigmoid` maps it to (0, 1)."
    )

    def __new__(cls, *args: Any, **data: Any) -> ModelSettings:
        # The base stands for the union: it builds the backend the values name (whose own
        # ``__init__`` Python then runs on the same values).
        if cls is ModelSettings:
            return MODEL_BACKEND.validate_python(data)
        return super().__new__(cls)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        if cls is ModelSettings:
            return cast(Self, MODEL_BACKEND.validate_python(obj, **kwargs))
        return super().model_validate(obj, **kwargs)

    @model_validator(mode="before")
    @classmethod
    def _drop_other_backends(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls is not ModelSettings:
            others = _backend_fields() - cls.model_fields.keys()
            return {key: value for key, value in data.items() if key not in others}
        return data


class OnnxModel(ModelSettings):
    """``onnx`` / ``openvino``: the model runs in the gateway, from MODEL__PATH or the Hub
    (MODEL__HUB_ID), on onnxruntime or on the OpenVINO runtime (same files and fields)."""

    backend: Literal["onnx", "openvino"] = "onnx"
    path: ModelDir = Field(
        None,
        description=(
            "Directory with `model.onnx` (or the file named by MODEL__FILE) and `tokenizer.json`."
            " When unset, the model is fetched from the Hugging Face Hub (MODEL__HUB_ID)."
        ),
    )
    hub_id: str = Field(
        "cross-encoder/ms-marco-MiniLM-L-6-v2",
        description=(
            "Hugging Face Hub model id used when MODEL__PATH is unset: its ONNX export and"
            " `tokenizer.json` are downloaded (the `hub` extra)."
        ),
    )
    file: str = Field(
        "model.onnx",
        description=(
            "ONNX file in the model directory or Hub repository (its root, then `onnx/`);"
            " one that is not there is an error."
        ),
    )
    quantization: Literal["auto", "none", "static", "dynamic"] = Field(
        "auto",
        description=(
            "`static`: the int8 model generated from MODEL__FILE into MODEL__CACHE_DIR"
            " (`python -m gateway.model.quantize`; batch-invariant, the int8 path closest to fp32);"
            " `dynamic`: `model_int8.onnx` of the model directory, one pair per run unless"
            " MODEL__ALLOW_BATCH_DEPENDENT; `none`: MODEL__FILE as it is;"
            " `auto`: `static` when generated, else (cpu, MODEL__FILE unset) `dynamic` when"
            " the directory has `model_int8.onnx`, else `none`."
        ),
    )
    cache_dir: Path | None = Field(
        None,
        description=(
            "Directory for model files the gateway generates (static int8); the model"
            " directory may stay read-only."
        ),
    )
    allow_batch_dependent: bool = Field(
        False,
        description=(
            "Run a dynamically quantized model (or an int8 model on MODEL__BACKEND=openvino)"
            " on whole batches: faster, but a pair's score then depends on its batch-mates"
            " (cached under its own fingerprint). Off: one pair per run."
        ),
    )
    device: Literal["cpu", "cuda", "openvino"] = Field(
        "cpu",
        description=(
            "`cpu`; `cuda` (CUDAExecutionProvider, onnxruntime-gpu); `openvino` (OpenVINO"
            " execution provider on the CPU, onnxruntime-openvino: bf16 on CPUs with AVX512_BF16"
            " or AMX). Start-up fails if the provider is absent."
        ),
    )
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads (0: one per physical core)."
    )
    inter_op_threads: int = Field(1, ge=0, description="onnxruntime inter-op threads.")

    @model_validator(mode="after")
    def _openvino_on_cpu(self) -> OnnxModel:
        if self.backend == "openvino" and self.device != "cpu":
            raise ValueError(
                "MODEL__BACKEND=openvino runs on the CPU: leave MODEL__DEVICE unset (or cpu)"
            )
        return self


class TeiModel(ModelSettings):
    """``tei``: pairs go to a text-embeddings-inference server's ``/rerank``."""

    backend: Literal["tei"] = "tei"
    tei_url: HttpUrl = Field(
        description="Base URL of the text-embeddings-inference server (backend `tei`)."
    )
    tei_api_key: SecretStr | None = Field(
        None, description="Bearer token for the TEI server (its `--api-key`)."
    )
    tei_timeout_s: float = Field(10.0, gt=0, description="Time allowed for one TEI `/rerank` call.")
    tei_max_batch: int = Field(
        32, ge=1, description="Texts per TEI call at most (TEI's `--max-client-batch-size`)."
    )

    @model_validator(mode="before")
    @classmethod
    def _needs_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("tei_url") is None:
            raise ValueError("MODEL__BACKEND=tei needs MODEL__TEI_URL")
        return data


class PoolModel(ModelSettings):
    """``pool``: pairs are split over several remote scorers serving one model."""

    backend: Literal["pool"] = "pool"
    pool_urls: HttpUrls = Field(
        default_factory=list,
        description=(
            "Backend `pool`: rerank endpoints serving one model, e.g."
            " `http://gw-a:9201/v1/rerank,http://gw-b:9201/v1/rerank`."
        ),
    )
    pool_protocol: Literal["cohere", "tei", "oip"] = Field(
        "cohere",
        description=(
            "What the pool's URLs speak: Cohere/Jina `rerank`, TEI's `/rerank`, or the Open"
            " Inference Protocol v2 (`oip`: Triton, KServe; URLs are server roots)."
        ),
    )
    pool_model: str = Field(
        "default",
        description=(
            "Sent as `model` (protocol `cohere`), the model's name in the path (`oip`);"
            " names the model in cache keys."
        ),
    )
    pool_api_key: SecretStr | None = Field(
        None, description="Bearer token for the pool's backends."
    )
    pool_timeout_s: float = Field(10.0, gt=0, description="Time allowed for one backend call.")
    pool_backoff_s: float = Field(
        1.0,
        gt=0,
        description=(
            "A failed backend gets no pairs for this long (doubling per failure in a row, up"
            " to 30 s) or until a health check, run this often, finds it answering."
        ),
    )

    # --- protocol `oip` (gateway/model/oip.py): POOL_MODEL is the served model's name ---
    path: ModelDir = Field(
        None,
        description=(
            "Protocol `oip` with OIP_INPUTS=tokens: the directory whose `tokenizer.json` makes"
            " the token ids (the served model's own tokenizer)."
        ),
    )
    oip_version: str | None = Field(
        None,
        description="Protocol `oip`: the model version (`/versions/<v>`); unset: the server's.",
    )
    oip_inputs: Literal["tokens", "text", "pairs"] = Field(
        "tokens",
        description=(
            "Protocol `oip`: what the model takes. `tokens`: INT64 `[n, width]` ids, mask and"
            " type ids from MODEL__PATH's tokenizer (a bare ONNX model); `text`: BYTES query"
            " `[1]` and documents `[n]`; `pairs`: BYTES `[n, 2]` (query, document) rows."
        ),
    )
    oip_tensors: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Protocol `oip`: tensor names over the defaults, JSON, roles `input_ids`,"
            " `attention_mask`, `token_type_ids`, `query`, `documents`, `pairs`, `output`;"
            " an empty name is not sent."
        ),
    )
    oip_output: Literal["logit", "probability"] = Field(
        "logit",
        description=(
            "Protocol `oip`: the output tensor (`[n]`, `[n, 1]`, or `[n, 2]` two-class) holds"
            " logits, or probabilities (turned back into logits)."
        ),
    )

    @field_validator("oip_tensors")
    @classmethod
    def _oip_roles(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(OIP_ROLES))
        if unknown:
            raise ValueError(f"unknown tensor roles {unknown}; known: {', '.join(OIP_ROLES)}")
        return value

    @model_validator(mode="after")
    def _needs_urls(self) -> PoolModel:
        if not self.pool_urls:
            raise ValueError("MODEL__BACKEND=pool needs MODEL__POOL_URLS")
        return self


def _tag(value: Any) -> str:
    """The backend ``value`` names; ``onnx`` when it names none."""
    found = value.get("backend") if isinstance(value, dict) else getattr(value, "backend", None)
    return "onnx" if found in (None, "openvino") else str(found)


ModelBackend = Annotated[
    Annotated[OnnxModel, Tag("onnx")]
    | Annotated[TeiModel, Tag("tei")]
    | Annotated[PoolModel, Tag("pool")],
    Discriminator(
        _tag,
        custom_error_type=BACKEND_ERROR,
        custom_error_message="Input should be 'onnx', 'openvino', 'tei' or 'pool'",
    ),
]
MODEL_BACKEND: TypeAdapter[OnnxModel | TeiModel | PoolModel] = TypeAdapter(ModelBackend)
BACKENDS: dict[str, type[ModelSettings]] = {"onnx": OnnxModel, "tei": TeiModel, "pool": PoolModel}


@cache
def _backend_fields() -> frozenset[str]:
    return frozenset(name for model in BACKENDS.values() for name in model.model_fields)
