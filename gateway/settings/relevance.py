"""Relevance profiles: which searches are reranked, and how a profile scores them
(docs/relevance.md).

A profile is one class, :class:`ProfileSettings`: the candidates it reranks
(window, fields, document cap, deadline) and how their text is built and their
scores used. The default profile is read from RERANK__WINDOW / FIELDS /
MAX_DOC_CHARS / TIMEOUT_S and RELEVANCE__*; each of RELEVANCE__PROFILES takes it
and overrides what it sets (:meth:`ProfileSettings.over`). The two sections carry
the default profile's fields by inheriting the two halves of the profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gateway.settings.base import CommaList, Section
from gateway.settings.model import ModelBackend

LongDocs = Literal["truncate", "chunk"]
Pooling = Literal["max", "mean", "first"]
ScoreUse = Literal["replace", "linear", "rrf"]
Normalize = Literal["minmax", "zscore"]


class HybridOptions(Section):
    """A profile's hybrid first stage: a plain `match` / `multi_match` search runs as
    BM25 ‖ kNN (concurrently), fused, then reranked (docs/retrievers.md)."""

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


class _Candidates(Section):
    """Which candidates a profile reranks and how long it may take (RERANK__* for the default
    profile)."""

    window: int = Field(
        20,
        ge=1,
        le=10_000,
        description=(
            "Candidates fetched from upstream and reranked. 20 answers `full` within"
            " TIMEOUT_S with 3 searches at once on 2 CPU cores (fp32 model); raise it with"
            " more cores, `model_int8.onnx` or a GPU (docs/speed.md)."
        ),
    )
    fields: CommaList = Field(
        default_factory=lambda: ["title", "text"],
        description="Document `_source` fields (dotted paths) joined as the text to score.",
    )
    max_doc_chars: int = Field(
        4000, gt=0, description="Document text is cut to this many characters before tokenizing."
    )
    timeout_s: float = Field(
        5.0, gt=0, description="Rerank deadline per search; past it upstream order is kept."
    )


class _Scoring(Section):
    """How hits become text and how their scores are used (RELEVANCE__* for the default
    profile)."""

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


class ProfileSettings(_Candidates, _Scoring):
    """One relevance profile. A named one (RELEVANCE__PROFILES) serves the indices it lists and
    takes from the default profile what it does not set."""

    indices: CommaList = Field(
        default_factory=list, description="Index patterns served by this profile."
    )

    def over(self, base: ProfileSettings) -> ProfileSettings:
        """``base`` with what this profile sets (validated again, together)."""
        merged = {**base.model_dump(exclude={"indices"}), **self.model_dump(exclude_unset=True)}
        return ProfileSettings.model_validate(merged)


class RerankSettings(_Candidates):
    """Which searches are reranked, and the default profile's candidates and deadline."""

    enabled: bool = Field(True, description="Master switch; off makes every search passthrough.")
    indices: CommaList = Field(
        default_factory=lambda: ["*"],
        description="Index patterns whose searches are reranked (`*` wildcard, `-x` excludes).",
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


class RelevanceSettings(_Scoring):
    """Relevance profiles: the default one's scoring, named ones, their models and rankers.

    The fields of ``_Scoring`` are the default profile's; RELEVANCE__PROFILES are
    ``ProfileSettings`` over it (docs/relevance.md).
    """

    profiles: dict[str, ProfileSettings] = Field(
        default_factory=dict,
        description=(
            'Named profiles, JSON: `{"papers": {"indices": ["papers-*"], "window": 50,'
            ' "score_use": "linear"}}`; the first whose pattern matches the index is used.'
        ),
    )
    models: dict[str, ModelBackend] = Field(
        default_factory=dict,
        description=(
            'Extra models loaded beside MODEL__*, JSON: `{"int8": {"path": "/m",'
            ' "file": "model_int8.onnx"}}`; profiles name them.'
        ),
    )
    registry: Path | None = Field(
        None, description="Directory of trained rankers (`rerank-gateway train` writes it)."
    )
    request_profiles: CommaList = Field(
        default_factory=lambda: ["*"],
        description=(
            "Profiles a search may pick with `ext.rerank.profile` (`*`: all; empty: none)."
        ),
    )

    @model_validator(mode="after")
    def _known_models(self) -> RelevanceSettings:
        known = {"default", *self.models}
        for name, profile in {"": self, **self.profiles}.items():
            if profile.model not in known:
                where = f"profile {name!r}" if name else "RELEVANCE__MODEL"
                raise ValueError(f"{where} names unknown model {profile.model!r}")
        return self

    def default_profile(self, rerank: RerankSettings) -> ProfileSettings:
        """The profile a search gets when no named one serves it."""
        candidates = rerank.model_dump(include=set(_Candidates.model_fields))
        scoring = self.model_dump(include=set(_Scoring.model_fields))
        return ProfileSettings.model_validate({**candidates, **scoring})
