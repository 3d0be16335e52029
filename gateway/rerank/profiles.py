"""Named relevance profiles bound to index patterns, and the per-request choice among them.

The ``default`` profile is RERANK__* plus RELEVANCE__*; each profile in
RELEVANCE__PROFILES starts from it and overrides what it sets. A search uses,
in order: the profile named in ``ext.rerank.profile`` (when RELEVANCE__
REQUEST_PROFILES allows that name; otherwise a 400), the first profile whose
``indices`` patterns match every index the search names, or ``default``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace

from gateway.errors import ClientRequestError
from gateway.indices import name_allowed
from gateway.learning import features
from gateway.learning.ranker import Ranker
from gateway.learning.registry import Registry
from gateway.rerank.chunking import ChunkSpec
from gateway.rerank.documents import DocumentSpec
from gateway.rerank.fusion import FusionSpec
from gateway.settings import HybridOptions, ProfileSettings, RelevanceSettings, RerankSettings

DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    indices: tuple[str, ...]
    window: int
    timeout_s: float
    model: str
    document: DocumentSpec
    chunking: ChunkSpec
    fusion: FusionSpec
    hybrid: HybridOptions | None = None  # BM25 ‖ kNN first stage (gateway.retrievers.hybrid)
    learned: Ranker | None = None  # a trained second stage in place of the fusion
    learned_fingerprint: str | None = None  # ``ltr:name@rN``

    @property
    def ranking_fingerprint(self) -> str:
        """What the order of a window depends on beyond the model's scores."""
        return self.learned_fingerprint or f"fusion:{self.fusion}"


def _learned(profile: Profile, ref: str | None, registry: Registry | None) -> Profile:
    if ref is None:
        return profile
    if registry is None:
        raise ValueError(f"profile [{profile.name}] names a learned model but no registry is set")
    entry, model = registry.load(ref)
    wanted = features.names(profile.document.fields)
    if tuple(entry.features) != wanted:
        raise ValueError(
            f"learned model [{ref}] was trained on features {entry.features}, profile"
            f" [{profile.name}] serves {list(wanted)}"
        )
    return replace(profile, learned=model, learned_fingerprint=entry.fingerprint)


def _profile(name: str, spec: ProfileSettings) -> Profile:
    return Profile(
        name=name,
        indices=tuple(spec.indices),
        window=spec.window,
        timeout_s=spec.timeout_s,
        model=spec.model,
        document=DocumentSpec(
            fields=tuple(spec.fields),
            template=spec.template,
            field_max_chars=dict(spec.field_max_chars),
            max_chars=spec.max_doc_chars,
            highlight=spec.highlight,
        ),
        chunking=ChunkSpec(
            strategy=spec.long_docs,
            tokens=spec.chunk_tokens,
            overlap=spec.chunk_overlap,
            max_chunks=spec.max_chunks,
            pooling=spec.pooling,
        ),
        fusion=FusionSpec(
            use=spec.score_use,
            normalize=spec.normalize,
            weight=spec.weight,
            rrf_k=spec.rrf_k,
            min_score=spec.min_score,
        ),
        hybrid=spec.hybrid,
    )


def _covers(index: str | None, patterns: tuple[str, ...]) -> bool:
    names = [n for n in (index or "").split(",") if n and not n.startswith("-")]
    return bool(names) and all(name_allowed(n, patterns) for n in names)


class Profiles:
    """All profiles of a deployment; ``select`` picks one per search."""

    def __init__(self, rerank: RerankSettings, relevance: RelevanceSettings) -> None:
        registry = Registry(relevance.registry) if relevance.registry is not None else None
        base = relevance.default_profile(rerank)
        self.default = _learned(_profile(DEFAULT, base), base.learned, registry)
        self.named: dict[str, Profile] = {DEFAULT: self.default}
        for name, named in relevance.profiles.items():
            spec = named.over(base)
            self.named[name] = _learned(_profile(name, spec), spec.learned, registry)
        self.allowed = tuple(relevance.request_profiles)

    @property
    def models(self) -> set[str]:
        """Names of the models some profile uses."""
        return {p.model for p in self.named.values()}

    def select(self, index: str | None, requested: object = None) -> Profile:
        """The profile for a search on ``index``; ``requested`` is ``ext.rerank.profile``."""
        if requested is not None:
            if not isinstance(requested, str) or requested not in self.named:
                raise ClientRequestError(
                    "illegal_argument_exception", f"unknown rerank profile [{requested}]"
                )
            if not any(fnmatch.fnmatchcase(requested, p) for p in self.allowed):
                raise ClientRequestError(
                    "illegal_argument_exception", f"rerank profile [{requested}] is not allowed"
                )
            return self.named[requested]
        for profile in self.named.values():
            if profile.indices and _covers(index, profile.indices):
                return profile
        return self.default
