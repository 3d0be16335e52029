"""OpenTelemetry traces: the only module that imports ``opentelemetry`` (the ``otel`` extra).

Off unless ``LOG__TRACING=true``; then the SDK reads the standard ``OTEL_*``
variables itself (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_BSP_*``...) and
spans go out over OTLP/HTTP. The span tree of one search::

    POST /{index}/_search            SERVER, parent: the client's W3C traceparent
    ├─ search docs                   CLIENT, Elasticsearch semantic conventions; the
    │                                cluster gets a traceparent naming this span
    └─ rerank                        rerank.window, .hits, .model, .outcome, .reason
       ├─ rerank.cache_lookup        rerank.pairs, rerank.cache_hits
       ├─ rerank.tokenize            rerank.pairs
       └─ rerank.queue_and_model     rerank.pairs: queue wait plus the model run
          └─ rerank.model_run        rerank.pairs, .padded_tokens, .encoder (OnnxCrossEncoder,
                                     TeiCrossEncoder: the remote backend); one run serves
                                     several searches: a child of the oldest pair's search,
                                     linked to the others

The SERVER span also carries ``rerank.outcome`` and ``rerank.reason`` as the
client got them (``X-Rerank``) and ``gateway.request_id``.

Stage times: while a search collects them (``collect_timings()``), each
``stage(...)`` also adds its wall time to the search's ``timings_ms`` (traced or
not), and the batcher adds each model run that served the search; ``stage_split``
turns them into cache / tokenize / queue / model milliseconds (the
``Server-Timing`` header and the ``gateway_rerank_stage_seconds`` histogram).

The pipeline calls ``stage(name, **attributes)`` and ``cluster_call(...)``; both
are no-ops unless the request runs inside ``Tracing.server_span`` (opened by the
web layer's middleware, ``gateway.web.server_span``), which keeps the app's
``Tracing`` in a context variable for the request's task (so no object is
threaded through the stages, and the gateway runs without the extra). This
module knows nothing of aiohttp's server side nor of the web layer's state.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict
from yarl import URL

_ACTIVE: ContextVar[Tracing | None] = ContextVar("gateway_tracing", default=None)
_TIMINGS: ContextVar[dict[str, float] | None] = ContextVar("gateway_timings", default=None)
# Stage spans whose time a search reports, under the name it reports them by.
_TIMED_STAGES = {
    "rerank.cache_lookup": "cache",
    "rerank.tokenize": "tokenize",
    "rerank.queue_and_model": "queue_and_model",
}
STAGES = ("cache", "queue", "tokenize", "model")
_DOC_OPERATIONS = {"GET": "get", "HEAD": "exists", "DELETE": "delete"}


class Span:
    """What a stage may do with its span: add attributes (``None`` values are left out)."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, **attributes: Any) -> None:
        if self._span is not None:
            self._span.set_attributes(_stage_attrs(attributes))


_NO_SPAN = Span()


class Tracing:
    """A tracer provider of this app's own (no global provider is installed)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self._trace = trace
        self._tracer = provider.get_tracer("rerank-gateway")
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_environment(cls) -> Tracing:
        """OTLP/HTTP export in batches, configured by the SDK from ``OTEL_*``."""
        # Installed: settings refuse LOG__TRACING without the extra.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def shutdown(self) -> None:
        self.provider.shutdown()

    @contextlib.contextmanager
    def server_span(
        self, method: str, path: str, route: str, headers: Mapping[str, str]
    ) -> Iterator[ServerSpan]:
        """The SERVER span of one request (opened by the web layer's tracing middleware,
        ``gateway.web.server_span``): a child of the client's W3C ``traceparent``, with this
        ``Tracing`` active for the request's task so the stages' spans hang below it."""
        parent = self._propagator.extract(dict(headers))
        attributes = {"http.request.method": method, "url.path": path, "http.route": route}
        token = _ACTIVE.set(self)
        try:
            with self._tracer.start_as_current_span(
                f"{method} {route}",
                context=parent,
                kind=self._trace.SpanKind.SERVER,
                attributes=attributes,
            ) as span:
                yield ServerSpan(span, self._trace.StatusCode.ERROR)
        finally:
            _ACTIVE.reset(token)

    @contextlib.contextmanager
    def _stage(self, name: str, attributes: dict[str, Any]) -> Iterator[Span]:
        with self._tracer.start_as_current_span(name, attributes=_stage_attrs(attributes)) as span:
            yield Span(span)

    @contextlib.contextmanager
    def _batch(self, parents: list[_Parent], attributes: dict[str, Any]) -> Iterator[Span]:
        from opentelemetry.trace import Link, NonRecordingSpan

        first = parents[0].context
        others = {p.context.span_id: p.context for p in parents if p.context != first}
        span = self._tracer.start_span(
            "rerank.model_run",
            context=self._trace.set_span_in_context(NonRecordingSpan(first)),
            links=[Link(c) for c in others.values()],
            attributes=_stage_attrs(attributes),
        )
        try:
            yield Span(span)
        finally:
            span.end()

    @contextlib.contextmanager
    def _client(self, method: str, url: URL, headers: Mapping[str, str]) -> Iterator[ClusterCall]:
        operation, index = es_endpoint(method, url.path)
        attributes = {
            "db.system.name": "elasticsearch",
            "db.operation.name": operation,
            "db.collection.name": index,
            "db.operation.parameter.index": index,
            "http.request.method": method,
            "url.full": str(url.with_user(None).with_query(None)),  # no query strings
            "server.address": url.host,
            "server.port": url.port,
        }
        span = self._tracer.start_span(
            f"{operation} {index}" if index else operation,
            kind=self._trace.SpanKind.CLIENT,
            attributes=_attrs(attributes),
        )
        sent = CIMultiDict(headers)
        self._propagator.inject(sent, context=self._trace.set_span_in_context(span))
        call = ClusterCall(sent, span, self._trace.StatusCode.ERROR)
        try:
            yield call
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(call.error)
            raise
        finally:
            span.end()


class ServerSpan:
    """A request's SERVER span: ``answered(status, attributes)`` once its answer is known."""

    def __init__(self, span: Any, error: Any) -> None:
        self._span = span
        self._error = error

    def answered(self, status: int, attributes: Mapping[str, Any] | None = None) -> None:
        """The answer's status, and what the client was told (``None`` values left out);
        a 5xx marks the span failed."""
        self._span.set_attribute("http.response.status_code", status)
        if attributes is not None:
            self._span.set_attributes(_attrs(dict(attributes)))
        if status >= 500:
            self._span.set_status(self._error)


@dataclass(frozen=True, slots=True)
class _Parent:
    tracing: Tracing
    context: Any  # an opentelemetry SpanContext


class ClusterCall:
    """One call to the cluster: the headers to send (``traceparent`` added when traced),
    and ``answered(status)`` to call once the answer's headers are in."""

    def __init__(self, headers: Mapping[str, str], span: Any = None, error: Any = None) -> None:
        self.headers = headers
        self._span = span
        self.error = error

    def answered(self, status: int) -> None:
        if self._span is None:
            return
        self._span.set_attribute("db.response.status_code", str(status))
        self._span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self._span.set_attribute("error.type", str(status))
            self._span.set_status(self.error)


def stage(name: str, **attributes: Any) -> AbstractContextManager[Span]:
    """A child span of the current one, while a traced request runs (else nothing); timed
    into the search's stage times while it collects them (``collect_timings``)."""
    tracing = _ACTIVE.get()
    span = contextlib.nullcontext(_NO_SPAN) if tracing is None else tracing._stage(name, attributes)
    timings, key = _TIMINGS.get(), _TIMED_STAGES.get(name)
    if timings is None or key is None:
        return span
    return _timed(span, timings, key)


@contextlib.contextmanager
def _timed(
    span: AbstractContextManager[Span], timings: dict[str, float], key: str
) -> Iterator[Span]:
    started = time.perf_counter()
    try:
        with span as inner:
            yield inner
    finally:
        add_time(timings, key, time.perf_counter() - started)


def collect_timings() -> dict[str, float]:
    """Start collecting the stage times (ms) of the search running in this task (and the
    tasks it starts); returns the dict they are added to."""
    timings: dict[str, float] = {}
    _TIMINGS.set(timings)
    return timings


def timings() -> dict[str, float] | None:
    """The running search's stage times, for work done for it in another task (the batcher's)."""
    return _TIMINGS.get()


def add_time(timings: dict[str, float], key: str, seconds: float) -> None:
    timings[key] = timings.get(key, 0.0) + seconds * 1000


def stage_split(timings: Mapping[str, float]) -> dict[str, float]:
    """Cache / queue / tokenize / model ms of one search: queue is the wait for the model
    (the queue-and-model stage less the model runs that served the search)."""
    if not timings:
        return {}
    model = timings.get("model", 0.0)
    waited = timings.get("queue_and_model", 0.0)
    split = {
        "cache": timings.get("cache", 0.0),
        "queue": max(waited - model, 0.0),
        "tokenize": timings.get("tokenize", 0.0),
        "model": model,
    }
    return split


def current() -> object | None:
    """The running stage's span, for work done for it in another task (the batcher's)."""
    tracing = _ACTIVE.get()
    if tracing is None:
        return None
    return _Parent(tracing, tracing._trace.get_current_span().get_span_context())


def batch_run(parents: Sequence[object | None], **attributes: Any) -> AbstractContextManager[Span]:
    """The span of one model run shared by several searches: a child of the oldest
    pair's stage (``parents[0]``, from ``current()``), linked to the other searches'."""
    found = [p for p in parents if isinstance(p, _Parent)]
    if not found:
        return contextlib.nullcontext(_NO_SPAN)
    return found[0].tracing._batch(found, attributes)


def cluster_call(
    method: str, url: URL, headers: Mapping[str, str]
) -> AbstractContextManager[ClusterCall]:
    """A CLIENT span around one call to the cluster, while a traced request runs."""
    tracing = _ACTIVE.get()
    if tracing is None:
        return contextlib.nullcontext(ClusterCall(headers))
    return tracing._client(method, url, headers)


def es_endpoint(method: str, path: str) -> tuple[str, str | None]:
    """The Elasticsearch endpoint id (``search``, ``msearch``, ``cat.indices``, ``get``...)
    and the index of a request path, as far as the path tells."""
    parts = [p for p in path.split("/") if p]
    index = parts[0] if parts and not parts[0].startswith("_") else None
    api = [p for p in parts if p.startswith("_")]
    if not api:
        return ("info" if not parts else method.lower()), index
    if api[0] == "_doc":
        return _DOC_OPERATIONS.get(method, "index"), index
    names = [api[0][1:], *(p for p in parts[parts.index(api[0]) + 1 :][:1] if p.isidentifier())]
    return ".".join(names), index


def _attrs(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _stage_attrs(attributes: dict[str, Any]) -> dict[str, Any]:
    """A stage's attributes, named ``rerank.<name>`` (``rerank.window``, ``rerank.pairs``...)."""
    return {f"rerank.{k}": v for k, v in _attrs(attributes).items()}
