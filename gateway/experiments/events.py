"""Experiment events: impressions (recorded by the gateway), clicks (posted by clients), shadow
measurements. Storage is a Redis Stream (``XADD ... MAXLEN ~ N``) when Redis is configured, an
in-process ring otherwise.

``record`` never waits: it puts the event on a bounded queue (full → the event is
dropped and counted) and one writer task normalises and stores batches. The raw
search answer of an impression is parsed there, off the search path, into the
``[index, id]`` list of its first ``k`` hits. Redis is reached through
``gateway.redis`` (the cache's settings and breaker, with a budget of at least
``EVENTS_TIMEOUT_S``: the cache's 50 ms is for the search path), where its errors
become ``EventStoreError``; reads (the report pages) are tried even while the
breaker is open.

Event shapes (JSON, one per stream entry, field ``e``)::

    {"type": "impression", "search_id", "variant", "mode", "latency_ms", "ts",
     "hits": [[index, id], ...], "teams": ["A", "B", ...] | null, "query"?}
    {"type": "click", "search_id", "ts", "id"?, "index"?, "position"?}
    {"type": "shadow", "search_id", "variant", "status", "ms", "ts",
     "overlap"?, "tau"?, "first_base_pos"?}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import SecretStr

from gateway.errors import EventStoreError
from gateway.redis import RedisBoundary, RedisCounts
from gateway.settings import CacheSettings

log = logging.getLogger(__name__)

STREAM_PREFIX = "rrg:exp:"
_QUEUE_MAX = 10_000
_BATCH = 500
EVENTS_TIMEOUT_S = 1.0  # the least Redis call budget of the event log (bulk calls: 4x)
_READ_CHUNK = 1_000  # entries per XRANGE, each call within the Redis budget
_CLOSE_TIMEOUT_S = 2.0  # what close waits for queued events to be stored

Event = dict[str, Any]


def stream_key(experiment: str) -> str:
    return f"{STREAM_PREFIX}{experiment}:events"


def page_keys(body: bytes, k: int) -> list[list[str]]:
    """``[index, id]`` of the first ``k`` hits of a ``_search`` answer ([] if unreadable)."""
    try:
        value = json.loads(body)
    except ValueError:
        return []
    section = value.get("hits") if isinstance(value, dict) else None
    hits = section.get("hits") if isinstance(section, dict) else None
    if not isinstance(hits, list):
        return []
    return [
        [str(h.get("_index", "")), str(h.get("_id", ""))] for h in hits[:k] if isinstance(h, dict)
    ]


class Backend(Protocol):
    async def append(self, events: Sequence[Event]) -> None: ...

    async def read(self) -> list[Event]: ...

    async def clear(self) -> None: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """The last ``max_events`` events, in this process only."""

    def __init__(self, max_events: int) -> None:
        self._ring: deque[Event] = deque(maxlen=max_events)

    async def append(self, events: Sequence[Event]) -> None:
        self._ring.extend(events)

    async def read(self) -> list[Event]:
        return list(self._ring)

    async def clear(self) -> None:
        self._ring.clear()

    async def close(self) -> None:
        self._ring.clear()


class RedisBackend:
    """A Redis Stream trimmed to about ``max_events`` entries (shared by all replicas)."""

    def __init__(
        self, settings: CacheSettings, key: str, max_events: int, url: SecretStr | None = None
    ) -> None:
        self.key = key
        self.max_events = max_events
        self.stats = RedisCounts()
        # Off the search path: the event log waits longer than the score cache does.
        timeout_s = max(settings.timeout_s, EVENTS_TIMEOUT_S)
        self.redis = RedisBoundary(
            settings.model_copy(update={"timeout_s": timeout_s}),
            name="experiment events (redis)",
            error=EventStoreError,
            stats=self.stats,
            url=url,
        )

    async def append(self, events: Sequence[Event]) -> None:
        pipe = self.redis.pipeline()
        for event in events:
            pipe.xadd(
                self.key,
                {"e": json.dumps(event, separators=(",", ":"))},
                maxlen=self.max_events,
                approximate=True,
            )
        await self.redis.call("XADD", pipe.execute(), bulk=True)

    async def read(self) -> list[Event]:
        out: list[Event] = []
        start = "-"
        while True:
            xrange = self.redis.client.xrange(self.key, start, "+", count=_READ_CHUNK)
            call = self.redis.call("XRANGE", xrange, bulk=True, skip_when_open=False)
            chunk = await call or []
            for _, fields in chunk:
                raw = (fields or {}).get(b"e")
                event = json.loads(raw) if isinstance(raw, bytes) else None
                if isinstance(event, dict):
                    out.append(event)
            if len(chunk) < _READ_CHUNK:
                return out
            last = chunk[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))

    async def clear(self) -> None:
        await self.redis.call("DEL", self.redis.client.delete(self.key))

    async def close(self) -> None:
        await self.redis.close()


class EventLog:
    """Non-blocking event recording in front of a backend."""

    def __init__(self, backend: Backend, *, k: int) -> None:
        self.backend = backend
        self.k = k
        self.dropped = 0
        self.failed = 0
        self._losing = False  # the last batch was lost (logged once per outage)
        self._queue: asyncio.Queue[tuple[Event, bytes | None]] = asyncio.Queue(_QUEUE_MAX)
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="experiment-events")

    def record(self, event: Event, body: bytes | None = None) -> None:
        """Queue an event (``body``: the search answer an impression showed). Never waits."""
        event.setdefault("ts", time.time())
        try:
            self._queue.put_nowait((event, body))
        except asyncio.QueueFull:
            self.dropped += 1

    async def flush(self) -> None:
        """Wait until every queued event is stored (tests, shutdown)."""
        await self._queue.join()

    async def read(self) -> list[Event]:
        return await self.backend.read()

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.backend.append([self._normalise(e, b) for e, b in batch])
                self._losing = False
            except EventStoreError as exc:
                self.failed += len(batch)
                # Once per outage: while Redis is skipped every batch is lost the same way.
                log.log(
                    logging.DEBUG if self._losing else logging.WARNING,
                    "experiment events lost: %s",
                    exc,
                )
                self._losing = True
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _normalise(self, event: Event, body: bytes | None) -> Event:
        if body is not None:
            event["hits"] = page_keys(body, self.k)
        return event

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await self.flush()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self.backend.close()


def create_event_log(
    cache: CacheSettings,
    events_url: SecretStr | None,
    experiment: str,
    max_events: int,
    *,
    k: int,
) -> EventLog:
    """Events in Redis (``events_url``, else the cache's) with the cache's Redis settings."""
    url = events_url or cache.redis_url
    backend: Backend = (
        RedisBackend(cache, stream_key(experiment), max_events, url)
        if url is not None
        else MemoryBackend(max_events)
    )
    return EventLog(backend, k=k)
