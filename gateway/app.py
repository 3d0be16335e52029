"""``create_app(settings)``: wiring only. Each component gets its own settings section.

The wings are attached here, from outside: the experiments (their arms on the app
state the handlers read, their pages on the ``/_gateway`` sub-app), the rerank API,
and the batchers and the cache as the metrics' collectors, so none of the modules
they plug into imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.errors import GatewayError
from gateway.experiments import web as experiment_pages
from gateway.metrics import Metrics
from gateway.model.base import Closable, CrossEncoder
from gateway.model.embedder import Embedder, OnnxEmbedder
from gateway.model.embedder_export import load_embedder
from gateway.model.loader import load_encoder
from gateway.rerank import batch_shape
from gateway.rerank.batcher import Batcher, warm_up_shapes
from gateway.rerank.cache import create_cache
from gateway.rerank.profiles import DEFAULT, Profiles
from gateway.rerank.reranker import Passage, Reranker
from gateway.rerank_api import setup_rerank_api
from gateway.retrievers.flow import RetrieverFlow
from gateway.search.mappings import IndexFields
from gateway.search.pipeline import SearchFlow
from gateway.settings import ModelSettings, Settings
from gateway.tracing import Tracing
from gateway.upstream.client import Upstream
from gateway.vectors.query import QueryVectors
from gateway.vectors.write import WriteVectors
from gateway.web import handlers
from gateway.web.access_log import access_middleware, observe
from gateway.web.admin import admin_app, mount_admin
from gateway.web.guard import guard_middleware
from gateway.web.middlewares import error_middleware
from gateway.web.server_span import tracing_middleware
from gateway.web.state import (
    EXPERIMENTS,
    FLOW,
    HEALTH,
    QUERY_VECTORS,
    UPSTREAM,
    WRITE_VECTORS,
    Health,
)

log = logging.getLogger(__name__)

_SEARCH_PATHS = ("/_search", "/{index}/_search", "/_msearch", "/{index}/_msearch")


def create_app(
    settings: Settings,
    *,
    encoder: CrossEncoder | None = None,
    embedder: Embedder | None = None,
    tracing: Tracing | None = None,
) -> web.Application:
    """The gateway application. ``encoder``: the default model, already loaded (``serve``
    loads it before listening; tests pass a fake); without it the model loads in the
    background. ``embedder`` replaces the configured EMBEDDER model (tests): it fills
    ``query_vector_builder``, the hybrid profile's kNN leg and vectors on writes.
    ``tracing`` replaces the OTLP exporter LOG__TRACING sets up (tests)."""
    metrics = Metrics()
    if tracing is None and settings.log.tracing:
        tracing = Tracing.from_environment()
    traced = [tracing_middleware(tracing)] if tracing is not None else []
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[
            access_middleware(metrics),
            *traced,
            error_middleware(settings.server.max_body_bytes),
            guard_middleware(settings.access),
        ],
    )
    if tracing is not None:
        app.on_cleanup.append(lambda _: asyncio.to_thread(tracing.shutdown))
    observe(app, metrics)
    upstream = Upstream(settings.upstream)
    health = Health()
    index_fields = IndexFields(upstream, settings.rerank)
    flow = SearchFlow(
        upstream,
        None,
        settings.rerank,
        Profiles(settings.rerank, settings.relevance),
        settings.speed,
        index_fields=index_fields,
        retrievers=settings.retrievers,
        embedder=embedder,
    )
    app[UPSTREAM] = upstream
    app[HEALTH] = health
    app[FLOW] = flow
    app.cleanup_ctx.append(_upstream_ctx(upstream, health, flow, index_fields))
    app.cleanup_ctx.append(_models_ctx(settings, flow, health, metrics, encoder))
    app[QUERY_VECTORS] = QueryVectors(settings.embedder, embedder)
    app[WRITE_VECTORS] = WriteVectors(settings.embedder, embedder)
    if embedder is None and settings.embedder.path is not None:
        users: list[QueryVectors | WriteVectors | RetrieverFlow] = [
            app[QUERY_VECTORS],
            app[WRITE_VECTORS],
            flow.retrievers,
        ]
        app.cleanup_ctx.append(_embedder_ctx(settings, users))

    experiments = experiment_pages.create_experiments(settings)
    app[EXPERIMENTS] = experiments
    flow.experiment = experiments  # the pipeline's hook, implemented by the arms
    app.cleanup_ctx.append(experiment_pages.experiments_ctx(experiments))

    for path in _SEARCH_PATHS:
        app.router.add_route("GET", path, handlers.search)
        app.router.add_route("POST", path, handlers.search)
    setup_rerank_api(app, settings.access.api_key)
    mount_admin(app, admin_app(experiment_pages.routes(experiments)))
    app.router.add_route("*", "/{tail:.*}", handlers.passthrough)
    return app


Context = Callable[[web.Application], AsyncIterator[None]]


def _upstream_ctx(
    upstream: Upstream, health: Health, flow: SearchFlow, index_fields: IndexFields
) -> Context:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await upstream.start()
        health.upstream_flavor = await upstream.probe()
        report = asyncio.create_task(_log_fields(flow, index_fields), name="fields-report")
        yield
        report.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await report
        await index_fields.close()
        await upstream.close()

    return ctx


async def _log_fields(flow: SearchFlow, index_fields: IndexFields) -> None:
    """The start-up log line per index pattern: which fields each profile will score."""
    if not flow.settings.enabled:
        return
    for profile in flow.profiles.named.values():
        if profile.document.template is not None:
            log.info("profile %s scores its template %r", profile.name, profile.document.template)
            continue
        patterns = profile.indices or tuple(flow.settings.indices)
        for line in await index_fields.report(patterns, profile.document.fields):
            log.info("profile %s: %s", profile.name, line)


def _models_ctx(
    settings: Settings,
    flow: SearchFlow,
    health: Health,
    metrics: Metrics,
    encoder: CrossEncoder | None,
) -> Context:
    """Load the default model, then the ones profiles name (RELEVANCE__MODELS), in the
    background: until the default one is warm, searches pass through (``model_not_ready``)
    and readiness says so. An extra model that fails leaves its profiles unreranked."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        cache = create_cache(settings.cache)
        metrics.cache = cache
        started: list[Reranker] = []

        async def start(name: str, model: CrossEncoder, model_settings: ModelSettings) -> Reranker:
            batcher = Batcher(model, settings.batcher)
            await batcher.start()
            metrics.batchers[(name, model_settings.backend)] = batcher
            reranker = Reranker(
                batcher, cache, fingerprint=model.fingerprint, score_mode=model_settings.score_mode
            )
            started.append(reranker)
            await _warm_up(reranker, settings, model_settings)
            return reranker

        async def load() -> None:
            try:
                model = (
                    encoder
                    if encoder is not None
                    else await asyncio.to_thread(load_encoder, settings.model, settings.speed)
                )
                default = await start(DEFAULT, model, settings.model)
            except GatewayError as exc:
                health.model_error = str(exc)
                log.error("model unavailable, searches pass through unreranked: %s", exc)
                return
            for name in sorted(flow.profiles.models - {DEFAULT}):
                extra = settings.relevance.models[name]
                try:
                    model = await asyncio.to_thread(load_encoder, extra, settings.speed)
                    flow.rerankers[name] = await start(name, model, extra)
                except GatewayError as exc:
                    log.error("model %s unavailable, its profiles pass through: %s", name, exc)
            flow.reranker = default
            health.model_ready = True
            log.info("model ready: searches are reranked")

        task = asyncio.create_task(load(), name="model-load")
        yield
        await _stop(task)
        for reranker in started:
            await reranker.drain()
            await reranker.batcher.stop()
            if isinstance(reranker.batcher.encoder, Closable):
                await asyncio.to_thread(reranker.batcher.encoder.close)
        await cache.close()

    return ctx


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _embedder_ctx(
    settings: Settings, users: list[QueryVectors | WriteVectors | RetrieverFlow]
) -> Context:
    """Load the embedder in the background; until then builders go upstream unfilled."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        loaded: list[OnnxEmbedder] = []

        async def load() -> None:
            try:
                model = await asyncio.to_thread(load_embedder, settings.embedder, settings.speed)
            except GatewayError as exc:
                log.error("embedder unavailable, query_vector_builder goes upstream: %s", exc)
                return
            loaded.append(model)
            for user in users:
                user.embedder = model
            log.info(
                "embedder ready: the gateway fills query vectors (and document vectors on writes)"
            )

        task = asyncio.create_task(load(), name="embedder-load")
        yield
        await _stop(task)
        for model in loaded:
            model.close()

    return ctx


async def _warm_up(reranker: Reranker, settings: Settings, model: ModelSettings) -> None:
    """One real search's worth of work, the batch-size sweep (``batch_shape``), then
    (SPEED__WARM_UP) the configured batch shapes, so the first searches do not pay for
    lazy initialisation."""
    await reranker.score("warm up", [Passage("_warmup", "0", "warm up the model")], 60.0)
    await batch_shape.tune(reranker.batcher, model)
    shapes = warm_up_shapes(reranker.batcher.settings, model, settings.speed.warm_up)
    await reranker.batcher.warm_up(shapes)


async def wait_ready(app: web.Application, timeout_s: float = 120.0) -> None:
    """Wait until the model is loaded (tests, benchmarks)."""
    health = app[HEALTH]
    async with asyncio.timeout(timeout_s):
        while not health.model_ready:
            if health.model_error:
                raise RuntimeError(health.model_error)
            await asyncio.sleep(0.02)
