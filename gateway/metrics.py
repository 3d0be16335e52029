"""Prometheus metrics, one ``CollectorRegistry`` per application (no global registry).

Two kinds of figures:

- counted as requests happen (the access middleware calls ``request_done``;
  experiments call ``variant``): request counts and latency by route kind and
  outcome, upstream and model latency, rerank outcomes;
- read at scrape time from the stats objects the components already keep
  (``Batcher.stats``, ``Batcher.queued_pairs``, the cache's ``stats``), by a
  custom collector, so the hot paths carry no metric calls. This module knows
  them only by the protocols below (``BatcherFigures``, ``CacheFigures``): the
  wiring (app.py) attaches them, so nothing here imports the layers that keep
  them. The batcher figures
  carry ``model`` (``default`` or a RELEVANCE__MODELS name) and ``backend``
  (``onnx``, ``tei``) labels, one series per loaded model.

Served as text at ``/_gateway/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MODEL_LABELS = ["model", "backend"]
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RunTotals(Protocol):
    """A batcher's running totals (``rerank.batcher.BatchStats``)."""

    batches: int
    pairs: int
    padded_tokens: int
    real_tokens: int
    skipped_pairs: int
    truncated_pairs: int
    model_seconds: float


class BatcherFigures(Protocol):
    """What a scrape reads of one model's batcher (``rerank.batcher.Batcher``)."""

    @property
    def stats(self) -> RunTotals: ...
    @property
    def queued_pairs(self) -> int: ...


class CacheFigures(Protocol):
    """What a scrape reads of the score cache: its stats dataclass, every numeric field a
    ``result`` label (``rerank.cache.CacheStats``)."""

    @property
    def stats(self) -> DataclassInstance: ...


class _ComponentCollector(Collector):
    """Reads the batcher's and the cache's running totals when Prometheus scrapes."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        queued = GaugeMetricFamily(
            "gateway_batcher_queue_pairs", "Pairs waiting for a model run.", labels=_MODEL_LABELS
        )
        pairs = _summary("gateway_batch_pairs", "Pairs per model run.")
        padded = _summary(
            "gateway_batch_padded_tokens", "Padded tokens per model run (pairs x longest)."
        )
        seconds = _summary("gateway_model_run_seconds", "Time of one model run (one batch).")
        real = _labelled("gateway_batch_real_tokens", "Unpadded tokens run.")
        skipped = _labelled(
            "gateway_batch_skipped_pairs", "Queued pairs dropped because their search had given up."
        )
        truncated = _labelled(
            "gateway_batch_truncated_pairs",
            "Pairs whose document was cut to the model's token limit.",
        )
        for (model, backend), batcher in sorted(self._metrics.batchers.items()):
            key = [model, backend]
            s = batcher.stats
            queued.add_metric(key, batcher.queued_pairs)
            pairs.add_metric(key, count_value=s.batches, sum_value=s.pairs)
            padded.add_metric(key, count_value=s.batches, sum_value=s.padded_tokens)
            seconds.add_metric(key, count_value=s.batches, sum_value=s.model_seconds)
            real.add_metric(key, s.real_tokens)
            skipped.add_metric(key, s.skipped_pairs)
            truncated.add_metric(key, s.truncated_pairs)
        yield from (queued, pairs, padded, seconds, real, skipped, truncated)
        cache = self._metrics.cache
        if cache is not None:
            ops = CounterMetricFamily(
                "gateway_cache_operations",
                "Score cache operations, by cache stats field (hits, misses, errors, writes...).",
                labels=["result"],
            )
            for f in fields(cache.stats):
                value = getattr(cache.stats, f.name)
                if isinstance(value, int | float):
                    ops.add_metric([f.name], value)
            yield ops


def _summary(name: str, doc: str) -> SummaryMetricFamily:
    return SummaryMetricFamily(name, doc, labels=_MODEL_LABELS)


def _labelled(name: str, doc: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=_MODEL_LABELS)


class Metrics:
    """The application's metrics. Batchers (one per loaded model, keyed by ``(model name,
    backend)``) and the cache are attached once they exist."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.batchers: dict[tuple[str, str], BatcherFigures] = {}
        self.cache: CacheFigures | None = None
        r = self.registry

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def seconds(name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
            return Histogram(name, doc, labels, buckets=_LATENCY_BUCKETS, registry=r)

        self.requests = counter(
            "gateway_requests",
            "Requests answered, by route kind (search, msearch, rerank, passthrough, gateway) and"
            " outcome (status class).",
            ["route", "outcome"],
        )
        self.request_seconds = seconds(
            "gateway_request_seconds", "Time to answer a request, by route kind.", ("route",)
        )
        self.upstream_seconds = seconds(
            "gateway_upstream_seconds",
            "Time the search cluster took to answer (to headers for passthrough), by route kind.",
            ("route",),
        )
        self.model_seconds = seconds(
            "gateway_rerank_seconds", "Time spent scoring one search (cache + queue + model)."
        )
        self.stage_seconds = seconds(
            "gateway_rerank_stage_seconds",
            "Time one reranked search spent per stage: cache (lookup), queue (waiting for the"
            " model), tokenize, model (the runs that scored its pairs).",
            ("stage",),
        )
        self.rerank = counter(
            "gateway_rerank",
            "Search answers by rerank outcome (full, partial, skipped) and reason.",
            ["status", "reason"],
        )
        self.rerank_api_documents = counter(
            "gateway_rerank_api_documents",
            "Documents scored through the rerank API, by API (v1, v2, tei).",
            ["api"],
        )
        self.variants = counter(
            "gateway_experiment_variant",
            "Searches served per experiment arm.",
            ["experiment", "variant"],
        )
        r.register(_ComponentCollector(self))

    def request_done(
        self,
        route: str,
        status: int,
        seconds: float,
        *,
        upstream_s: float | None = None,
        rerank_s: float | None = None,
        rerank: str | None = None,
        reason: str | None = None,
        stages_s: Mapping[str, float] | None = None,
    ) -> None:
        """One answered request (called by the access middleware)."""
        self.requests.labels(route, f"{status // 100}xx").inc()
        self.request_seconds.labels(route).observe(seconds)
        if upstream_s is not None:
            self.upstream_seconds.labels(route).observe(upstream_s)
        if rerank_s is not None:
            self.model_seconds.observe(rerank_s)
        if rerank is not None:
            self.rerank.labels(rerank, reason or "").inc()
        for stage, spent in (stages_s or {}).items():
            self.stage_seconds.labels(stage).observe(spent)

    def variant(self, name: str, experiment: str = "") -> None:
        """Count one search served by arm ``name`` (the experiments module calls this)."""
        self.variants.labels(experiment, name).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
