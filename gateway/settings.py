"""All configuration, read from environment variables (prefix ``GATEWAY_``).

``Settings()`` is built once, in ``gateway.cli.config``; every component receives
only its own frozen section. Nested sections use ``__``:
``GATEWAY_UPSTREAM__URLS``, ``GATEWAY_MODEL__PATH``, ``GATEWAY_RERANK__WINDOW`` ...
Lists accept either JSON (``["a","b"]``) or a comma-separated string (``a,b``).

Every field's description is the documentation: the README's variable table is
generated from it and a test keeps the two in sync.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "GATEWAY_"
ENV_DELIMITER = "__"


def _split_commas(value: Any) -> Any:
    """Accept ``a,b`` as well as a JSON list for list-valued variables."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]

# Protocol `oip`: the tensor roles of MODEL__OIP_TENSORS and their default names.
OIP_ROLES = {
    "input_ids": "input_ids",
    "attention_mask": "attention_mask",
    "token_type_ids": "token_type_ids",
    "query": "query",
    "documents": "documents",
    "pairs": "pairs",
    "output": "logits",
}


_UP = "GATEWAY_UPSTREAM__"


def split_userinfo(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host`` → (``http://host``, ``user:pw`` still percent-encoded)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not sep or not at:
        return url, None
    return f"{scheme}://{host}{slash}{path}", userinfo


def _redis_url(value: SecretStr | None) -> SecretStr | None:
    """A URL redis-py can use; the messages never repeat it (it may hold a password)."""
    if value is None:
        return value
    try:
        url = urlsplit(value.get_secret_value())
        port_ok = url.scheme == "unix" or url.port is None or url.port >= 0
    except ValueError:
        raise ValueError("not a valid URL (bad port or host)") from None
    if url.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("not a Redis URL (redis://, rediss:// or unix://)")
    if url.scheme == "unix":
        if not url.path:
            raise ValueError("not a usable unix:// URL (no socket path)")
        return value
    db = url.path.strip("/")
    if not url.hostname or not port_ok or (db and not db.isdigit()):
        raise ValueError("not a valid Redis URL: redis[s]://[user:password@]host[:port][/db]")
    return value


RedisUrl = Annotated[SecretStr | None, AfterValidator(_redis_url)]


def _model_dir(value: Path | None) -> Path | None:
    if value is not None and not (value / "tokenizer.json").is_file():
        raise ValueError(f"{value} is not a model directory (no tokenizer.json in it)")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(9201, ge=0, le=65535, description="Port the gateway listens on.")
    max_body_bytes: int = Field(
        100 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted (413 above it); ES's default is 100mb.",
    )
    shutdown_timeout_s: float = Field(
        10.0, ge=0, description="How long in-flight requests may finish at shutdown."
    )
    start_without_model: bool = Field(
        False,
        description=(
            "Start even when the model cannot load (it then loads in the background; until it"
            " is ready, or if it fails, searches pass through unreranked). Off: `serve` loads"
            " the model before it listens and a model that fails stops start-up."
        ),
    )


class UpstreamSettings(_Section):
    urls: CsvList = Field(
        default_factory=lambda: ["http://127.0.0.1:9200"],
        description=(
            "Search cluster base URL(s); later ones are failover targets. A `user:password@`"
            " (percent-encoded, the same on every URL) is the gateway's basic-auth credential."
        ),
    )
    flavor: Literal["auto", "elasticsearch", "opensearch"] = Field(
        "auto",
        description=(
            "Upstream product. `auto` asks `GET /` at start-up. With `opensearch` the "
            "gateway rewrites the ES clients' vendor media type to application/json."
        ),
    )
    username: str | None = Field(None, description="Basic-auth user the gateway adds upstream.")
    password: SecretStr | None = Field(None, description="Basic-auth password (never logged).")
    api_key: SecretStr | None = Field(
        None, description="ES API key the gateway adds upstream (`Authorization: ApiKey ...`)."
    )
    ca_bundle: Path | None = Field(None, description="CA bundle to verify the upstream's TLS.")
    client_cert: Path | None = Field(
        None, description="Client certificate (PEM) for mutual TLS with the upstream."
    )
    client_key: Path | None = Field(
        None, description="Private key (PEM) of CLIENT_CERT; unset when the cert file holds it."
    )
    verify_tls: bool = Field(True, description="Verify the upstream's TLS certificate.")
    connect_timeout_s: float = Field(
        5.0,
        gt=0,
        description="TCP connect timeout to upstream; past it the next URL is tried.",
    )
    dead_backoff_s: float = Field(
        1.0,
        gt=0,
        description=(
            "A URL that could not be connected to is tried after the others this long,"
            " doubled per failure in a row (up to DEAD_BACKOFF_MAX_S)."
        ),
    )
    dead_backoff_max_s: float = Field(
        30.0, gt=0, description="Longest back-off of an unreachable upstream URL."
    )
    timeout_s: float = Field(
        60.0, gt=0, description="Total time allowed for one upstream request (504 after)."
    )
    max_connections: int = Field(100, gt=0, description="Connection pool size to upstream.")

    @field_validator("urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("ca_bundle", "client_cert", "client_key")
    @classmethod
    def _pem_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one upstream URL is required")
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return [url.rstrip("/") for url in value]

    @model_validator(mode="after")
    def _one_credential(self) -> UpstreamSettings:
        """The gateway's own credential comes from one place: the URLs' ``user:password@``
        (the same on each), USERNAME/PASSWORD, or API_KEY. The message names no secret."""
        in_urls = {split_userinfo(url)[1] for url in self.urls}
        conflict = None
        if len(in_urls) > 1:
            conflict = f"{_UP}URLS: every URL must carry the same user:password@, or none"
        elif in_urls != {None} and (self.username or self.password or self.api_key):
            conflict = (
                f"{_UP}URLS carry user:password@, so {_UP}USERNAME, {_UP}PASSWORD and"
                f" {_UP}API_KEY must be unset"
            )
        elif self.api_key is not None and (self.username or self.password):
            conflict = f"{_UP}API_KEY and {_UP}USERNAME/PASSWORD are both set: use one"
        elif self.password is not None and self.username is None:
            conflict = f"{_UP}PASSWORD is set without {_UP}USERNAME"
        if conflict is not None:
            raise PydanticCustomError("conflicting_credentials", conflict)
        return self


class ModelSettings(_Section):
    path: Path | None = Field(
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
            " (`python -m gateway.model.quantize`; batch-invariant, the fast CPU path);"
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
            "Run a dynamically quantized model on whole batches: faster, but a pair's score"
            " then depends on its batch-mates (cached under its own fingerprint). Off: one"
            " pair per run."
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
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads (0: one per physical core)."
    )
    inter_op_threads: int = Field(1, ge=0, description="onnxruntime inter-op threads.")
    score_mode: Literal["logit", "sigmoid"] = Field(
        "logit", description="`logit` keeps the raw model output; `sigmoid` maps it to (0, 1)."
    )
    backend: Literal["onnx", "tei", "pool"] = Field(
        "onnx",
        description=(
            "`onnx` runs the model in the gateway; `tei` sends pairs to a Hugging Face"
            " text-embeddings-inference server's `/rerank` (MODEL__TEI_URL); `pool` splits"
            " them over several remote scorers (MODEL__POOL_URLS)."
        ),
    )
    tei_url: str | None = Field(
        None, description="Base URL of the text-embeddings-inference server (backend `tei`)."
    )
    tei_api_key: SecretStr | None = Field(
        None, description="Bearer token for the TEI server (its `--api-key`)."
    )
    tei_timeout_s: float = Field(10.0, gt=0, description="Time allowed for one TEI `/rerank` call.")
    tei_max_batch: int = Field(
        32, ge=1, description="Texts per TEI call at most (TEI's `--max-client-batch-size`)."
    )
    pool_urls: CsvList = Field(
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

    # --- end of protocol `oip` ---

    @field_validator("pool_urls", mode="before")
    @classmethod
    def _pool_list(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("pool_urls")
    @classmethod
    def _pool_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @field_validator("tei_url")
    @classmethod
    def _tei_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _tei_needs_url(self) -> ModelSettings:
        if self.backend == "tei" and self.tei_url is None:
            raise ValueError("MODEL__BACKEND=tei needs MODEL__TEI_URL")
        if self.backend == "pool" and not self.pool_urls:
            raise ValueError("MODEL__BACKEND=pool needs MODEL__POOL_URLS")
        return self

    @field_validator("path")
    @classmethod
    def _model_dir(cls, value: Path | None) -> Path | None:
        return _model_dir(value)


class EmbedderSettings(_Section):
    """The query/document embedder (a bi-encoder): its own model, never MODEL__*'s."""

    path: Path | None = Field(
        None,
        description=(
            "Directory with an embedding ONNX (output `sentence_embedding`, or"
            " `last_hidden_state` mean-pooled here) and `tokenizer.json`; a pair model with a"
            " `query_embedding` output is cut down to its embedding graph in CACHE_DIR."
            " Unset: no embedder (`query_vector_builder` goes upstream unchanged)."
        ),
    )
    file: str = Field("model.onnx", description="ONNX file inside EMBEDDER__PATH.")
    cache_dir: str = Field(
        "~/.cache/rerank-gateway/embedders",
        description=(
            "Where embedding graphs cut from pair models are written (PATH may be read-only)."
        ),
    )
    device: Literal["cpu", "cuda", "openvino"] = Field(
        "cpu", description="Execution provider, as MODEL__DEVICE."
    )
    max_length: int = Field(256, ge=8, le=8192, description="Tokens per text; longer is cut.")
    batch_size: int = Field(32, ge=1, le=4096, description="Texts per model run.")
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads (0: one per physical core)."
    )
    inter_op_threads: int = Field(1, ge=0, description="onnxruntime inter-op threads.")
    model_id: str | None = Field(
        None,
        description=(
            "`query_vector_builder.text_embedding.model_id` the gateway fills with a"
            " `query_vector`; unset: every model id."
        ),
    )
    field: str = Field("embedding", description="Vector field the backfill command fills.")
    text_fields: CsvList = Field(
        default_factory=lambda: ["title", "text"],
        description="Document `_source` fields (dotted paths) joined as the text to embed.",
    )
    max_doc_chars: int = Field(
        4000, gt=0, description="Document text is cut to this many characters before tokenizing."
    )
    write_indices: CsvList = Field(
        default_factory=list,
        description=(
            "Index patterns whose documents written through the gateway (`_doc`, `_create`,"
            " `_update`, `_bulk`) get FIELD embedded from TEXT_FIELDS; empty: none."
        ),
    )

    @field_validator("text_fields", "write_indices", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("path")
    @classmethod
    def _model_dir(cls, value: Path | None) -> Path | None:
        return _model_dir(value)


class RerankSettings(_Section):
    enabled: bool = Field(True, description="Master switch; off makes every search passthrough.")
    indices: CsvList = Field(
        default_factory=lambda: ["*"],
        description="Index patterns whose searches are reranked (`*` wildcard, `-x` excludes).",
    )
    window: int = Field(
        20,
        ge=1,
        le=10_000,
        description=(
            "Candidates fetched from upstream and reranked. 20 answers `full` within"
            " TIMEOUT_S with 3 searches at once on 2 CPU cores (fp32 model); raise it with"
            " more cores, `model_int8.onnx` or a GPU (README: Speed)."
        ),
    )
    fields: CsvList = Field(
        default_factory=lambda: ["title", "text"],
        description="Document `_source` fields (dotted paths) joined as the text to score.",
    )
    discover_fields: bool = Field(
        True,
        description=(
            "An index whose mapping has none of FIELDS is scored on its own `text` fields"
            " (read from `GET /{index}/_mapping`; logged once per index)."
        ),
    )
    mapping_ttl_s: float = Field(
        300.0, gt=0, description="How long an index's mapping is reused before it is read again."
    )
    max_doc_chars: int = Field(
        4000, gt=0, description="Document text is cut to this many characters before tokenizing."
    )
    timeout_s: float = Field(
        5.0, gt=0, description="Rerank deadline per search; past it upstream order is kept."
    )
    max_request_pairs: int = Field(
        4096,
        gt=0,
        description=(
            "Pairs one request may score (the windows of all sub-searches of a `_msearch`"
            " together); a request past it is not reranked (`too_many_pairs`)."
        ),
    )
    opt_in: bool = Field(
        False,
        description=(
            "When true, only searches that ask (`X-Rerank: on` or `?rerank=true`) are reranked."
        ),
    )

    @field_validator("indices", "fields", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_commas(value)


LongDocs = Literal["truncate", "chunk"]
Pooling = Literal["max", "mean", "first"]
ScoreUse = Literal["replace", "linear", "rrf"]
Normalize = Literal["minmax", "zscore"]


class HybridOptions(_Section):
    """A profile's hybrid first stage: a plain `match` / `multi_match` search runs as
    BM25 ‖ kNN (concurrently), fused, then reranked (README "Retrievers")."""

    vector_field: str = Field(description="The `dense_vector` / `knn_vector` field searched.")
    fusion: Literal["rrf", "linear"] = Field("rrf", description="How the two lists are fused.")
    rank_constant: int = Field(60, ge=1, description="`rrf`: k in `1 / (k + rank)`.")
    bm25_weight: float = Field(1.0, ge=0, description="`linear`: the BM25 list's weight.")
    knn_weight: float = Field(1.0, ge=0, description="`linear`: the kNN list's weight.")
    normalizer: Literal["none", "minmax", "l2_norm"] = Field(
        "minmax", description="`linear`: each list's normalizer."
    )
    num_candidates: int | None = Field(
        None, ge=1, description="kNN candidates per shard (unset: 1.5 x the window)."
    )


class RelevanceOptions(_Section):
    """How hits become text and how scores are used; the defaults of every profile."""

    template: str | None = Field(
        None,
        description=(
            "Document text template, e.g. `{title}. {text}` (dotted paths; arrays joined)."
            " Unset: RERANK__FIELDS joined by spaces."
        ),
    )
    field_max_chars: dict[str, int] = Field(
        default_factory=dict,
        description='Character cap per field before it enters the text, JSON `{"text": 2000}`.',
    )
    highlight: bool = Field(
        False,
        description=(
            "Score the hits' `highlight` fragments (as chunks) when the upstream returns them."
        ),
    )
    long_docs: LongDocs = Field(
        "truncate",
        description=(
            "`truncate`: the document side is cut at MODEL__MAX_LENGTH. `chunk`: overlapping"
            " token windows, scored separately and pooled."
        ),
    )
    chunk_tokens: int = Field(
        200, ge=8, le=8192, description="Document tokens per chunk (leave room for the query)."
    )
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by consecutive chunks.")
    max_chunks: int = Field(8, ge=1, le=64, description="Chunks scored per document at most.")
    pooling: Pooling = Field(
        "max", description="Chunk scores → document score: `max`, `mean` or `first`."
    )
    score_use: ScoreUse = Field(
        "replace",
        description=(
            "`replace`: the reranker score is `_score`. `linear`: weighted sum with the"
            " first-stage score, both normalized over the window. `rrf`: reciprocal-rank fusion."
        ),
    )
    normalize: Normalize = Field(
        "minmax", description="Normalization for `linear`: `minmax` or `zscore`."
    )
    weight: float = Field(
        0.7, ge=0, le=1, description="Reranker weight in `linear` (first stage gets 1 - weight)."
    )
    rrf_k: int = Field(60, ge=1, description="k in `1 / (k + rank)` for `rrf`.")
    min_score: float | None = Field(
        None,
        description=(
            "Hits whose reranker score (after SCORE_MODE) is below this leave the window;"
            " `hits.total` stays the upstream's count."
        ),
    )
    model: str = Field(
        "default",
        description="Model that scores: `default` (MODEL__*) or a name from RELEVANCE__MODELS.",
    )
    hybrid: HybridOptions | None = Field(
        None,
        description=(
            'Hybrid first stage, JSON `{"vector_field": "vec", "fusion": "rrf"}`: plain'
            " match / multi_match searches run as BM25 ‖ kNN, fused, then reranked."
        ),
    )
    learned: str | None = Field(
        None,
        description=(
            "A trained second stage from RELEVANCE__REGISTRY (`name`: its serving revision,"
            " or `name@rN`); it replaces SCORE_USE's fusion. See `gateway.learning`."
        ),
    )

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap(cls, value: int, info: ValidationInfo) -> int:
        tokens = info.data.get("chunk_tokens")
        if isinstance(tokens, int) and value >= tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        return value


class ProfileSettings(RelevanceOptions):
    """A named profile: RELEVANCE defaults, overridden by what it sets, for some indices."""

    indices: list[str] = Field(
        default_factory=list, description="Index patterns served by this profile."
    )
    window: int | None = Field(None, ge=1, le=10_000, description="Rerank window.")
    fields: list[str] | None = Field(None, description="Document fields to read.")
    max_doc_chars: int | None = Field(None, gt=0, description="Document character cap.")
    timeout_s: float | None = Field(None, gt=0, description="Rerank deadline.")


class RelevanceSettings(RelevanceOptions):
    profiles: dict[str, ProfileSettings] = Field(
        default_factory=dict,
        description=(
            'Named profiles, JSON: `{"papers": {"indices": ["papers-*"], "window": 50,'
            ' "score_use": "linear"}}`; the first whose pattern matches the index is used.'
        ),
    )
    models: dict[str, ModelSettings] = Field(
        default_factory=dict,
        description=(
            'Extra models loaded beside MODEL__*, JSON: `{"int8": {"path": "/m",'
            ' "file": "model_int8.onnx"}}`; profiles name them.'
        ),
    )
    registry: Path | None = Field(
        None, description="Directory of trained rankers (`rerank-gateway train` writes it)."
    )
    request_profiles: CsvList = Field(
        default_factory=lambda: ["*"],
        description=(
            "Profiles a search may pick with `ext.rerank.profile` (`*`: all; empty: none)."
        ),
    )

    @field_validator("request_profiles", mode="before")
    @classmethod
    def _request_profiles(cls, value: Any) -> Any:
        return _split_commas(value)

    @model_validator(mode="after")
    def _known_models(self) -> RelevanceSettings:
        known = {"default", *self.models}
        for name, profile in {"": self, **self.profiles}.items():
            if profile.model not in known:
                where = f"profile {name!r}" if name else "RELEVANCE__MODEL"
                raise ValueError(f"{where} names unknown model {profile.model!r}")
        return self


class RetrieverSettings(_Section):
    run: Literal["gateway", "cluster"] = Field(
        "gateway",
        description=(
            "Who runs a search's `retriever` tree: `gateway` (leaves on the cluster, fusion"
            " and reranking here, with cache and fallback) or `cluster` (sent as is: for an"
            " Elasticsearch cluster with the licence for it; OpenSearch always gets `gateway`)."
        ),
    )
    max_leaves: int = Field(
        16, ge=1, le=256, description="Leaf searches one retriever tree may run (400 above)."
    )


class BatcherSettings(_Section):
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


class SpeedSettings(_Section):
    """How models run: deadlines a search may ask for, warm-up, onnxruntime session details."""

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
    openvino_precision: Literal["bf16", "f32"] = Field(
        "bf16",
        description=(
            "OpenVINO's inference precision on the CPU (MODEL__DEVICE=openvino); it uses f32"
            " where the CPU has no bf16 instructions."
        ),
    )


class CacheSettings(_Section):
    redis_url: RedisUrl = Field(
        None,
        description="Redis URL (`redis://`, `rediss://` for TLS); unset: in-process LRU cache.",
    )
    memory_entries: int = Field(
        100_000, ge=0, description="Entries in the in-process LRU cache (0 disables it)."
    )
    ttl_s: int = Field(7 * 24 * 3600, gt=0, description="Lifetime of a cached score in Redis.")
    timeout_s: float = Field(
        0.05, gt=0, description="Redis call budget; past it the search is scored uncached."
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis password (AUTH); overrides one in the URL. Never logged."
    )
    redis_username: str | None = Field(None, description="Redis ACL user name (Redis 6+).")
    redis_cluster: bool = Field(
        False, description="Talk to a Redis Cluster (the URL names any one node)."
    )
    redis_ca_bundle: Path | None = Field(
        None, description="CA bundle to verify Redis's TLS certificate (`rediss://`)."
    )
    redis_verify_tls: bool = Field(
        True, description="Verify Redis's TLS certificate and host name (`rediss://`)."
    )
    breaker_backoff_s: float = Field(
        1.0,
        gt=0,
        description="After a Redis failure, skip Redis this long before trying it again.",
    )


class AccessSettings(_Section):
    """Who may use the gateway: optional keys and an allow-list of indices (all open by default)."""

    api_key: SecretStr | None = Field(
        None,
        description=(
            "When set, every request but `/_gateway/health/*` needs the header"
            " `X-Gateway-Api-Key: <key>` (401 otherwise). The header never goes upstream."
        ),
    )
    admin_api_key: SecretStr | None = Field(
        None,
        description=(
            "When set, the reserved `/_gateway/...` endpoints (health excepted) need"
            " `X-Gateway-Api-Key: <admin key>` instead of the client key."
        ),
    )
    indices: CsvList = Field(
        default_factory=lambda: ["*"],
        description=(
            "Index patterns clients may reach, reranked and passthrough routes alike (`-x`"
            " excludes; 403 otherwise). With anything but `*`, only the endpoints listed in"
            ' README "Access control" are let through, each with its indices in the path'
            " (`GET /` excepted), and every index their bodies name is checked too."
        ),
    )

    @field_validator("indices", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_commas(value)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    json_lines: bool = Field(False, description="One JSON object per log line.")
    tracing: bool = Field(
        False,
        description=(
            "OpenTelemetry traces over OTLP/HTTP (the `otel` extra), configured by the "
            "standard `OTEL_*` variables."
        ),
    )

    @field_validator("tracing")
    @classmethod
    def _otel_installed(cls, value: bool) -> bool:
        if value and not _installed(OTLP_EXPORTER):
            raise ValueError("needs the otel extra: pip install 'rerank-gateway[otel]'")
        return value


OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, not imported: parents only)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class Variant(_Section):
    """One arm of an experiment; written ``name:share`` or ``name:share:window`` in a list."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    share: float = Field(ge=0)
    rerank: bool = True
    window: Annotated[int | None, Field(ge=1, le=10_000)] = None
    profile: str | None = None  # a relevance profile (its model, text, window)

    @model_validator(mode="before")
    @classmethod
    def _baseline_is_control(cls, value: Any) -> Any:
        if isinstance(value, dict) and "rerank" not in value and value.get("name") == "baseline":
            return {**value, "rerank": False}
        return value

    def __str__(self) -> str:
        share = f"{self.share:g}"
        return f"{self.name}:{share}" + (f":{self.window}" if self.window else "")


def _variants(value: Any) -> Any:
    if isinstance(value, str) and not value.strip().startswith("["):
        out = []
        for item in _split_commas(value):
            name, share, *rest = [*item.split(":"), ""][:3]
            spec: dict[str, Any] = {"name": name, "share": share or 0}
            if rest and rest[0]:
                spec["window"] = rest[0]
            out.append(spec)
        return out
    return _split_commas(value)


class ExperimentSettings(_Section):
    mode: Literal["off", "ab", "interleave", "shadow"] = Field(
        "off",
        description=(
            "`ab` serves each user one variant; `interleave` merges the control's and the first "
            "rerank variant's lists (team draft); `shadow` serves the control and reranks in the "
            "background to measure the change; `off` disables experiments."
        ),
    )
    name: str = Field(
        "exp1",
        pattern=r"^[A-Za-z0-9_.-]{1,60}$",
        description="Experiment name: salts the assignment hash and names the event stream.",
    )
    variants: Annotated[list[Variant], NoDecode] = Field(
        default_factory=lambda: [
            Variant(name="baseline", share=50, rerank=False),
            Variant(name="rerank", share=50),
        ],
        description=(
            "Arms as `name:share[:window]` (or JSON objects with `rerank: false` for a control); "
            "`baseline` is the control (upstream order). Shares are relative weights."
        ),
    )
    key: str = Field(
        "header:X-User-Id",
        pattern=r"^(header|cookie|param):[A-Za-z0-9_.-]+$",
        description=(
            "Where the sticky assignment key is read: `header:NAME`, `cookie:NAME` or "
            "`param:NAME` (the parameter is removed before forwarding). Requests without one "
            "are assigned per request."
        ),
    )
    override_header: str | None = Field(
        "X-Experiment-Override",
        description="Request header naming the variant to serve (QA); empty disables overrides.",
    )
    k: int = Field(10, ge=1, le=1000, description="Depth of CTR@k, overlap@k and impressions.")
    shadow_timeout_s: float = Field(
        2.0, gt=0, description="Budget of one background (shadow) rerank."
    )
    shadow_max_inflight: int = Field(
        8, ge=1, description="Shadow reranks running at once at most; more are not measured."
    )
    events_redis_url: RedisUrl = Field(
        None,
        description=(
            "Redis for experiment events (a Stream), reached with the CACHE__REDIS_* settings;"
            " unset: GATEWAY_CACHE__REDIS_URL, and without either an in-process ring."
        ),
    )
    events_max: int = Field(
        100_000, ge=10, description="Events kept (Redis `MAXLEN ~`, or the ring's size)."
    )

    @field_validator("variants", mode="before")
    @classmethod
    def _parse_variants(cls, value: Any) -> Any:
        return _variants(value)

    @field_validator("variants")
    @classmethod
    def _check_variants(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if not value or sum(v.share for v in value) <= 0:
            raise ValueError("at least one variant needs a positive share")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        frozen=True,
        extra="forbid",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)  # type: ignore[arg-type]
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)  # type: ignore[arg-type]
    model: ModelSettings = Field(default_factory=ModelSettings)  # type: ignore[arg-type]
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)  # type: ignore[arg-type]
    rerank: RerankSettings = Field(default_factory=RerankSettings)  # type: ignore[arg-type]
    batcher: BatcherSettings = Field(default_factory=BatcherSettings)  # type: ignore[arg-type]
    cache: CacheSettings = Field(default_factory=CacheSettings)  # type: ignore[arg-type]
    speed: SpeedSettings = Field(default_factory=SpeedSettings)  # type: ignore[arg-type]
    log: LogSettings = Field(default_factory=LogSettings)  # type: ignore[arg-type]
    access: AccessSettings = Field(default_factory=AccessSettings)  # type: ignore[arg-type]
    relevance: RelevanceSettings = Field(default_factory=RelevanceSettings)  # type: ignore[arg-type]
    experiment: ExperimentSettings = Field(default_factory=ExperimentSettings)  # type: ignore[arg-type]
    retrievers: RetrieverSettings = Field(default_factory=RetrieverSettings)  # type: ignore[arg-type]


def env_name(section: str, field: str) -> str:
    """The environment variable that sets ``section.field``."""
    return f"{ENV_PREFIX}{section}{ENV_DELIMITER}{field}".upper()


def iter_variables() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting, for the README table."""
    rows: list[tuple[str, str, str]] = []
    for section, info in Settings.model_fields.items():
        sub = info.annotation
        assert isinstance(sub, type) and issubclass(sub, BaseModel)
        for name, field in sub.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, list):
                shown = ",".join(str(x) for x in default)
            elif default is None:
                shown = "(unset)"
            else:
                shown = str(default)
            rows.append((env_name(section, name), shown, field.description or ""))
    return rows
