"""Profile selection by index pattern, per-request choice, and overrides of the defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.errors import ClientRequestError
from gateway.rerank.profiles import Profiles
from gateway.settings import RelevanceSettings, RerankSettings, Settings

RELEVANCE = {
    "score_use": "linear",
    "weight": 0.5,
    "template": "{title}. {text}",
    "models": {"int8": {"file": "model_int8.onnx"}},
    "profiles": {
        "papers": {"indices": ["papers-*", "arxiv"], "window": 20, "long_docs": "chunk"},
        "fast": {"indices": ["logs*"], "model": "int8", "score_use": "rrf", "timeout_s": 0.5},
        "strict": {"min_score": 0.0, "fields": ["body"]},
    },
    "request_profiles": ["papers", "strict"],
}


@pytest.fixture
def profiles() -> Profiles:
    return Profiles(
        RerankSettings(window=50, timeout_s=2.0), RelevanceSettings.model_validate(RELEVANCE)
    )


def test_selected_by_index_pattern(profiles: Profiles) -> None:
    assert profiles.select("papers-2024").name == "papers"
    assert profiles.select("papers-2024,arxiv").name == "papers"
    assert profiles.select("logs-app").name == "fast"
    # every named index must match; otherwise the defaults apply
    assert profiles.select("papers-2024,other").name == "default"
    assert profiles.select(None).name == "default"
    assert profiles.select("docs").name == "default"


def test_profile_overrides_only_what_it_sets(profiles: Profiles) -> None:
    papers = profiles.named["papers"]
    assert papers.window == 20
    assert papers.chunking.strategy == "chunk"
    assert papers.fusion.use == "linear" and papers.fusion.weight == 0.5  # inherited
    assert papers.document.template == "{title}. {text}"
    fast = profiles.named["fast"]
    assert (fast.model, fast.fusion.use, fast.timeout_s, fast.window) == ("int8", "rrf", 0.5, 50)
    assert profiles.named["strict"].document.fields == ("body",)
    assert profiles.models == {"default", "int8"}


def test_request_choice_within_what_the_operator_allows(profiles: Profiles) -> None:
    assert profiles.select("logs-app", "strict").name == "strict"
    with pytest.raises(ClientRequestError, match="not allowed"):
        profiles.select("docs", "fast")
    with pytest.raises(ClientRequestError, match="unknown rerank profile"):
        profiles.select("docs", "nope")
    with pytest.raises(ClientRequestError):
        profiles.select("docs", 3)


def test_profiles_from_env_and_unknown_model_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "GATEWAY_RELEVANCE__PROFILES", '{"docs": {"indices": ["docs"], "score_use": "rrf"}}'
    )
    monkeypatch.setenv("GATEWAY_RELEVANCE__MIN_SCORE", "-2.5")
    settings = Settings()
    profile = Profiles(settings.rerank, settings.relevance).select("docs")
    assert (profile.name, profile.fusion.use, profile.fusion.min_score) == ("docs", "rrf", -2.5)
    with pytest.raises(ValidationError, match="unknown model"):
        RelevanceSettings.model_validate({"profiles": {"x": {"model": "missing"}}})
    with pytest.raises(ValidationError, match="chunk_overlap"):
        RelevanceSettings.model_validate({"chunk_tokens": 16, "chunk_overlap": 16})
