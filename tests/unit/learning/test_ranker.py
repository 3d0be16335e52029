"""Serving-time features, the two learners, the registry and its fingerprint, serving in-process."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ir_measures
import numpy as np
import pytest
from ir_measures import nDCG

from gateway.learning import features
from gateway.learning.ranker import Ranker, train_lightgbm, train_linear
from gateway.learning.registry import Registry, RegistryError
from gateway.learning.significance import ndcg, paired_test
from gateway.model.fake import FakeEncoder
from gateway.rerank.batcher import Batcher
from gateway.rerank.cache import MemoryCache
from gateway.rerank.fusion import FusionSpec
from gateway.rerank.profiles import Profiles
from gateway.rerank.relevance import score_window
from gateway.rerank.reranker import Reranker
from gateway.settings import BatcherSettings, RelevanceSettings, RerankSettings

FIELDS = ("title",)


def test_window_rows_by_hand() -> None:
    hits = [{"_source": {"title": "abcd"}}, {"_source": {"title": ""}}, {"_source": {}}]
    taking, rows = features.window_rows(
        [[1.0, 3.0], [2.0], [None]], [10.0, None, 5.0], hits, FIELDS
    )
    assert taking == [0, 1]  # the third hit has no model score
    assert features.names(FIELDS) == (*features.BASE, "len:title")
    # ce (max), ce_max, ce_mean, ce_norm, ce_rank, fs (missing → window's lowest), fs_norm, rank
    assert rows[0].tolist() == [3.0, 3.0, 2.0, 1.0, 1.0, 10.0, 0.0, 1.0, math.log1p(4)]
    assert rows[1].tolist() == [2.0, 2.0, 2.0, 0.0, 2.0, 10.0, 0.0, 2.0, 0.0]
    # a profile pooling by mean gives that as ``ce``
    _, mean_rows = features.window_rows(
        [[1.0, 3.0], [2.0]], [1.0, 2.0], hits[:2], FIELDS, [2.0, 2.0]
    )
    assert mean_rows[:, 0].tolist() == [2.0, 2.0]


def synthetic(
    n_queries: int = 60, n_docs: int = 10, seed: int = 0
) -> tuple[Any, list[int], list[int]]:
    """The grade depends on the second feature only (the first is noise)."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n_queries * n_docs, 3))
    labels = np.clip(np.floor(rows[:, 1] * 1.5 + 2), 0, 4).astype(int).tolist()
    return rows, labels, [n_docs] * n_queries


def mean_ndcg(model: Ranker, rows: Any, labels: list[int], groups: list[int]) -> float:
    out, start = [], 0
    for n in groups:
        docs = [str(i) for i in range(n)]
        scores = model.predict(rows[start : start + n]).tolist()
        ranked = [d for _, d in sorted(zip(scores, docs, strict=True), key=lambda x: -x[0])]
        out.append(ndcg(ranked, {str(i): float(labels[start + i]) for i in range(n)}))
        start += n
    return float(np.mean(out))


@pytest.mark.parametrize("kind", ["lightgbm", "linear"])
def test_learners_find_the_feature_that_matters(kind: str) -> None:
    rows, labels, groups = synthetic()
    names = ("noise", "signal", "more_noise")
    train = train_lightgbm if kind == "lightgbm" else train_linear
    model = train(rows, labels, groups, names)
    test_rows, test_labels, test_groups = synthetic(seed=1)
    learned = mean_ndcg(model, test_rows, test_labels, test_groups)
    by_noise = Ranker("linear", names, None, [1.0, 0.0, 0.0], [0.0] * 3, [1.0] * 3)
    assert learned > 0.9
    assert learned > mean_ndcg(by_noise, test_rows, test_labels, test_groups) + 0.2


def test_ndcg_is_trec_evals() -> None:
    qrels = {"q": {"a": 2, "b": 0, "c": 1, "z": 3}}
    ranked = ["b", "c", "a", "x"]
    run = {"q": {d: float(10 - i) for i, d in enumerate(ranked)}}
    expected = ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]
    assert ndcg(ranked, {k: float(v) for k, v in qrels["q"].items()}) == pytest.approx(expected)


def test_paired_test() -> None:
    a = {str(i): 0.5 for i in range(30)}
    assert paired_test(a, dict(a)).p == 1.0
    better = {q: v + 0.1 for q, v in a.items()}
    got = paired_test(a, better)
    assert got.p < 0.001 and got.delta == pytest.approx(0.1) and got.wins == 30
    mixed = {q: v + (0.1 if int(q) % 2 else -0.1) for q, v in a.items()}
    assert paired_test(a, mixed).p > 0.5


def trained(seed: int = 0) -> Ranker:
    rows, labels, groups = synthetic(seed=seed)
    names = features.names(FIELDS)[:3]
    return train_linear(rows, labels, groups, names)


def test_registry_revisions_serving_journal_and_fingerprint(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    window = {"from": 1.0, "to": 2.0}
    model = trained()
    first = registry.register("papers", model, data_window=window, metrics={"ndcg@10": 0.5})
    second = registry.register("papers", trained(seed=3), data_window=window, metrics={})
    assert (first.revision, second.revision) == ("r1", "r2")
    assert registry.revisions("papers") == ["r1", "r2"]
    assert first.fingerprint == "ltr:papers@r1" != second.fingerprint
    with pytest.raises(RegistryError, match="no serving revision"):
        registry.load("papers")
    registry.set_serving("papers", "r1", action="promote")
    entry, loaded = registry.load("papers")
    assert entry.metrics == {"ndcg@10": 0.5} and entry.data_window == window
    rows = np.random.default_rng(5).normal(size=(7, 3))
    assert loaded.predict(rows).tolist() == pytest.approx(model.predict(rows).tolist())
    registry.set_serving("papers", None, action="rollback")
    assert registry.serving("papers") is None
    with pytest.raises(RegistryError):
        registry.set_serving("papers", "r9", action="promote")
    with pytest.raises(RegistryError):
        registry.load("../etc")
    actions = [(j["action"], j.get("revision")) for j in registry.journal("papers")]
    assert actions == [
        ("register", "r1"),
        ("register", "r2"),
        ("promote", "r1"),
        ("rollback", None),
    ]
    (tmp_path / "papers" / "r3").mkdir()  # unfinished: no meta.json
    assert registry.revisions("papers") == ["r1", "r2"]


def test_lightgbm_round_trips_through_the_registry(tmp_path: Path) -> None:
    rows, labels, groups = synthetic()
    model = train_lightgbm(rows, labels, groups, ("a", "b:c", "d"))
    registry = Registry(tmp_path)
    registry.register("gbm", model, data_window={}, metrics={})
    _, loaded = registry.load("gbm@r1")
    assert loaded.feature_names == ("a", "b:c", "d")
    assert loaded.predict(rows[:20]).tolist() == pytest.approx(model.predict(rows[:20]).tolist())


def served(registry: Path, ref: str) -> Profiles:
    relevance = RelevanceSettings.model_validate(
        {"registry": str(registry), "profiles": {"ltr": {"indices": ["p*"], "learned": ref}}}
    )
    return Profiles(RerankSettings.model_validate({"fields": list(FIELDS)}), relevance)


def full_model(seed: int) -> Ranker:
    rng = np.random.default_rng(seed)
    names = features.names(FIELDS)
    rows = rng.normal(size=(40, len(names)))
    return train_linear(rows, rng.integers(0, 3, 40).tolist(), [10] * 4, names)


def test_profiles_load_the_named_revision_and_fingerprint_it(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.register("ltr", full_model(0), data_window={}, metrics={})
    registry.register("ltr", full_model(1), data_window={}, metrics={})
    registry.set_serving("ltr", "r2", action="promote")
    pinned, latest = served(tmp_path, "ltr@r1").named["ltr"], served(tmp_path, "ltr").named["ltr"]
    assert pinned.learned is not None and pinned.learned_fingerprint == "ltr:ltr@r1"
    assert latest.learned_fingerprint == "ltr:ltr@r2"
    assert pinned.ranking_fingerprint != latest.ranking_fingerprint
    plain = served(tmp_path, "ltr").default
    assert plain.learned is None and plain.ranking_fingerprint.startswith("fusion:")
    registry.register("other", trained(), data_window={}, metrics={})  # 3 features only
    with pytest.raises(ValueError, match="trained on features"):
        served(tmp_path, "other@r1")
    with pytest.raises(ValueError, match="no registry"):
        Profiles(RerankSettings(), RelevanceSettings.model_validate({"learned": "ltr"}))


@pytest.fixture
async def reranker() -> AsyncIterator[Reranker]:
    encoder = FakeEncoder()
    batcher = Batcher(encoder, BatcherSettings(max_wait_ms=0))
    await batcher.start()
    yield Reranker(batcher, MemoryCache(1000), fingerprint=encoder.fingerprint)
    await batcher.stop()


async def test_a_learned_profile_scores_the_window_with_its_model(
    tmp_path: Path, reranker: Reranker
) -> None:
    registry = Registry(tmp_path)
    model = full_model(2)
    registry.register("ltr", model, data_window={}, metrics={})
    profiles = served(tmp_path, "ltr@r1")
    hits = [
        {"_index": "p", "_id": str(i), "_score": 10.0 - i, "_source": {"title": t}}
        for i, t in enumerate(["whales breathe air", "", "fish swim", "whales sing songs"])
    ]
    fixed = await score_window(reranker, profiles.default, "whales", hits)
    got = await score_window(reranker, profiles.named["ltr"], "whales", hits, explain=True)
    assert fixed.pooled is not None
    chunks = [p.chunk_scores for p in fixed.pooled]
    taking, rows = features.window_rows(chunks, [10.0 - i for i in range(4)], hits, FIELDS)
    assert taking == [0, 2, 3]  # the hit without text keeps its place, unscored
    expected: list[float | None] = [None] * 4
    for i, s in zip(taking, model.predict(rows).tolist(), strict=True):
        expected[i] = s
    assert got.scores == pytest.approx(expected)
    assert got.scores != fixed.scores
    explained = got.explanations[0]
    assert explained is not None and "ltr:ltr@r1" in explained["description"]


async def test_window_of_gives_the_rows_the_learned_profile_serves_from(
    tmp_path: Path, reranker: Reranker
) -> None:
    from gateway.offline.train import fused_order, learned_order, window_of

    registry = Registry(tmp_path)
    model = full_model(4)
    registry.register("ltr", model, data_window={}, metrics={})
    profile = served(tmp_path, "ltr@r1").named["ltr"]
    hits = [
        {"_index": "p", "_id": f"d{i}", "_score": 5.0 - i, "_source": {"title": t}}
        for i, t in enumerate(["whales breathe air", "fish swim", "whales sing songs"])
    ]
    window = await window_of(reranker, profile, "whales", hits)
    served_scores = (await score_window(reranker, profile, "whales", hits)).scores
    assert window["docs"] == ["d0", "d1", "d2"] and window["fs"] == [5.0, 4.0, 3.0]
    assert model.predict(np.asarray(window["rows"])).tolist() == pytest.approx(served_scores)
    by_score = sorted(zip(served_scores, window["docs"], strict=True), key=lambda x: -(x[0] or 0))
    assert learned_order(window, model) == [d for _, d in by_score]
    first_stage_only = fused_order(window, FusionSpec("linear", weight=0.0))
    assert first_stage_only == ["d0", "d1", "d2"]
