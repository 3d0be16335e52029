"""All configuration, read from environment variables (prefix ``GATEWAY_``).

``Settings()`` is built once, in ``gateway.cli.config``; every component receives
only its own frozen section. Nested sections use ``__``:
``GATEWAY_UPSTREAM__URLS``, ``GATEWAY_MODEL__PATH``, ``GATEWAY_RERANK__WINDOW`` ...
Lists accept either JSON (``["a","b"]``) or a comma-separated string (``a,b``).

One module per concern::

    base        the frozen Section, CommaList, URL / path / Redis URL checks
    server      SERVER__* (listening, shutdown) and LOG__* (logs, traces)
    access      ACCESS__*: keys and the indices clients may reach
    upstream    UPSTREAM__*: the search cluster
    model       MODEL__*: ModelSettings, one class per backend (onnx, tei, pool)
    relevance   RERANK__* and RELEVANCE__*: which searches, and the profiles
    retrieval   EMBEDDER__* and RETRIEVERS__*
    speed       BATCHER__* and SPEED__*: how the models run fast
    cache       CACHE__*: the score cache
    experiment  EXPERIMENT__*: arms and their events

Every field's description is the documentation: the variable table of
docs/configuration.md is generated from it (``python -m ops.env_table --write``)
and a test keeps the two in sync.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.settings.access import AccessSettings
from gateway.settings.base import ENV_DELIMITER, ENV_PREFIX, CommaList, RedisUrl, Section
from gateway.settings.cache import CacheSettings
from gateway.settings.experiment import ExperimentSettings, Variant
from gateway.settings.model import (
    BACKEND_ERROR,
    BACKENDS,
    OIP_ROLES,
    ModelBackend,
    ModelSettings,
    OnnxModel,
    PoolModel,
    TeiModel,
)
from gateway.settings.relevance import (
    HybridOptions,
    ProfileSettings,
    RelevanceSettings,
    RerankSettings,
)
from gateway.settings.retrieval import EmbedderSettings, RetrieverSettings
from gateway.settings.server import OTLP_EXPORTER, LogSettings, ServerSettings
from gateway.settings.speed import BatcherSettings, SpeedSettings
from gateway.settings.upstream import UpstreamSettings, split_userinfo

__all__ = [
    "BACKENDS",
    "BACKEND_ERROR",
    "ENV_DELIMITER",
    "ENV_PREFIX",
    "OIP_ROLES",
    "OTLP_EXPORTER",
    "AccessSettings",
    "BatcherSettings",
    "CacheSettings",
    "CommaList",
    "EmbedderSettings",
    "ExperimentSettings",
    "HybridOptions",
    "LogSettings",
    "ModelBackend",
    "ModelSettings",
    "OnnxModel",
    "PoolModel",
    "ProfileSettings",
    "RedisUrl",
    "RelevanceSettings",
    "RerankSettings",
    "RetrieverSettings",
    "Section",
    "ServerSettings",
    "Settings",
    "SpeedSettings",
    "TeiModel",
    "UpstreamSettings",
    "Variant",
    "env_name",
    "iter_sections",
    "iter_variables",
    "section_fields",
    "split_userinfo",
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        frozen=True,
        extra="forbid",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)  # type: ignore[arg-type]
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)  # type: ignore[arg-type]
    model: ModelBackend = Field(default_factory=OnnxModel)  # type: ignore[arg-type]
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


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The model classes a section's annotation names (one, or each member of a union)."""
    if get_origin(annotation) is Annotated:
        return _models(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [model for arg in get_args(annotation) for model in _models(arg)]
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return [annotation]


def _base(annotation: Any) -> type[BaseModel]:
    """The section's model; for a union (MODEL__*), the base all its members share."""
    models = _models(annotation)
    base = next(c for c in models[0].__mro__ if all(issubclass(m, c) for m in models))
    assert issubclass(base, BaseModel)
    return base


def section_fields(annotation: Any) -> dict[str, FieldInfo]:
    """The fields of a section; for a union, its base's first, then each member's own."""
    fields: dict[str, FieldInfo] = dict(_base(annotation).model_fields)
    for model in _models(annotation):
        for name, field in model.model_fields.items():
            fields.setdefault(name, field)
    return fields


Row = tuple[str, str, str]  # variable, default as shown, description


def iter_sections() -> list[tuple[str, str, list[Row]]]:
    """(section, what it is for, its rows) for every section, for the table of variables."""
    return [
        (section, _summary(info.annotation), _rows(section, info.annotation))
        for section, info in Settings.model_fields.items()
    ]


def iter_variables() -> list[Row]:
    """(variable, default, description) for every setting."""
    return [row for _, _, rows in iter_sections() for row in rows]


def _summary(annotation: Any) -> str:
    """The first line of the section's docstring."""
    return (_base(annotation).__doc__ or "").strip().splitlines()[0]


def _rows(section: str, annotation: Any) -> list[Row]:
    rows: list[Row] = []
    for name, field in section_fields(annotation).items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, list):
            shown = ",".join(str(x) for x in default)
        elif default is None:
            shown = "(unset)"
        else:
            shown = str(default)
        rows.append((env_name(section, name), shown, field.description or ""))
    return rows
