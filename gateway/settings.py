"""All configuration, read from environment variables (prefix ``GATEWAY_``).

``Settings()`` is built once, in ``gateway.__main__``; every component receives
only its own frozen section. Nested sections use ``__``:
``GATEWAY_UPSTREAM__URLS``, ``GATEWAY_MODEL__PATH``, ``GATEWAY_RERANK__WINDOW`` ...
Lists accept either JSON (``["a","b"]``) or a comma-separated string (``a,b``).

Every field's description is the documentation: the README's variable table is
generated from it and a test keeps the two in sync.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
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


class UpstreamSettings(_Section):
    urls: CsvList = Field(
        default_factory=lambda: ["http://127.0.0.1:9200"],
        description="Search cluster base URL(s); later ones are failover targets.",
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
    verify_tls: bool = Field(True, description="Verify the upstream's TLS certificate.")
    connect_timeout_s: float = Field(5.0, gt=0, description="TCP connect timeout to upstream.")
    timeout_s: float = Field(
        60.0, gt=0, description="Total time allowed for one upstream request (504 after)."
    )
    max_connections: int = Field(100, gt=0, description="Connection pool size to upstream.")

    @field_validator("urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one upstream URL is required")
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return [url.rstrip("/") for url in value]


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
        description="Hugging Face Hub model id used when MODEL__PATH is unset.",
    )
    file: str = Field("model.onnx", description="ONNX file inside the model directory.")
    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="`cpu`, or `cuda` (CUDAExecutionProvider; start-up fails if absent)."
    )
    max_length: int = Field(
        256, ge=8, le=8192, description="Token limit per (query, document) pair; doc cut first."
    )
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads (0: one per physical core)."
    )
    inter_op_threads: int = Field(1, ge=0, description="onnxruntime inter-op threads.")
    score_mode: Literal["logit", "sigmoid"] = Field(
        "logit", description="`logit` keeps the raw model output; `sigmoid` maps it to (0, 1)."
    )

    @field_validator("path")
    @classmethod
    def _model_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "tokenizer.json").is_file():
            raise ValueError(f"{value} is not a model directory (no tokenizer.json in it)")
        return value


class RerankSettings(_Section):
    enabled: bool = Field(True, description="Master switch; off makes every search passthrough.")
    indices: CsvList = Field(
        default_factory=lambda: ["*"],
        description="Index patterns whose searches are reranked (`*` wildcard, `-x` excludes).",
    )
    window: int = Field(
        100, ge=1, le=10_000, description="Candidates fetched from upstream and reranked."
    )
    fields: CsvList = Field(
        default_factory=lambda: ["title", "text"],
        description="Document `_source` fields (dotted paths) joined as the text to score.",
    )
    max_doc_chars: int = Field(
        4000, gt=0, description="Document text is cut to this many characters before tokenizing."
    )
    timeout_s: float = Field(
        5.0, gt=0, description="Rerank deadline per search; past it upstream order is kept."
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


class BatcherSettings(_Section):
    max_batch_tokens: int = Field(
        16384, gt=0, description="Padded tokens per model run (batch size x longest pair)."
    )
    max_batch_pairs: int = Field(64, gt=0, description="Pairs per model run at most.")
    max_wait_ms: float = Field(
        2.0, ge=0, description="How long the batcher waits to fill a batch from other requests."
    )
    max_queue_pairs: int = Field(
        4096, gt=0, description="Pairs waiting at most; a search beyond it is not reranked."
    )


class CacheSettings(_Section):
    redis_url: SecretStr | None = Field(
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


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    json_lines: bool = Field(False, description="One JSON object per log line.")


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
    rerank: RerankSettings = Field(default_factory=RerankSettings)  # type: ignore[arg-type]
    batcher: BatcherSettings = Field(default_factory=BatcherSettings)  # type: ignore[arg-type]
    cache: CacheSettings = Field(default_factory=CacheSettings)  # type: ignore[arg-type]
    log: LogSettings = Field(default_factory=LogSettings)  # type: ignore[arg-type]


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
