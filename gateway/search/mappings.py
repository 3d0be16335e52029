"""Which fields hold an index's text, read from its mapping when the configured ones are absent.

``RERANK__FIELDS`` (``title,text`` by default) names the text to score. An index
whose mapping has none of them would be skipped on every search (``no_doc_text``)
without a word, so the gateway reads ``GET /{index}/_mapping`` (through the one
upstream client, cached for ``RERANK__MAPPING_TTL_S``) and, for such an index
only, scores its ``text`` / ``match_only_text`` fields instead: top level and
inside objects (dotted paths), not multi-fields (the same text again) nor
``nested`` ones, title-like names first (``title``, ``headline``, ``name``,
``subject``, ...), then in mapping order, at most ``_MAX_FIELDS``. Each decision
is logged once per index, at WARNING, naming the fields found or, when there are
none, the fields that exist.

An index expression (``a,b``, ``logs-*``, an alias) maps to several concrete
indices: each one is decided alone and the search reads the union (a hit only
has its own index's fields). A mapping that cannot be read (cluster error,
403, timeout) leaves the configured fields, and is asked again after
``_RETRY_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from multidict import CIMultiDict

from gateway.errors import GatewayError
from gateway.settings import RerankSettings
from gateway.upstream.client import Upstream

log = logging.getLogger(__name__)

TEXT_TYPES = frozenset({"text", "match_only_text"})
_TITLE_LIKE = ("title", "headline", "heading", "name", "subject", "caption", "summary")
_MAX_FIELDS = 6
_RETRY_S = 10.0  # a mapping that could not be read is asked again after this
_LENIENT = "ignore_unavailable=true&allow_no_indices=true"  # what exists of the expression
_LISTED = 20  # fields named in a "no text fields" warning, at most
_CACHED = 1024  # index expressions whose mapping is kept, at most (the oldest read go first)


@dataclass(frozen=True, slots=True)
class IndexMapping:
    """One concrete index's fields (dotted paths, mapping order) and their types; whether
    its ``_source`` is kept whole (not disabled, no includes / excludes) and holds only
    mapped fields (``dynamic`` neither ``false`` nor ``runtime``)."""

    index: str
    types: tuple[tuple[str, str], ...]
    whole_source: bool = False
    # With a whole _source: its top-level text fields (not an alias, an object, a
    # multi-field, a runtime field, a ``copy_to`` target or one left unmapped).
    source_fields: frozenset[str] = frozenset()
    runtime: frozenset[str] = frozenset()  # the mapping's runtime fields
    # Multi-fields (``title.english``): not paths of ``_source``, but ``fields`` returns them.
    multi: frozenset[str] = frozenset()
    stored: frozenset[str] = frozenset()  # ``store: true``: what ``stored_fields`` returns
    # Every name ``has_any`` answers yes to: each path and each object above one, and the
    # multi-fields. Worked out once per mapping read, not per search.
    _mapped: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = set(self.multi)
        for path, _ in self.types:
            parts = path.split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        object.__setattr__(self, "_mapped", frozenset(names))

    def in_source(self, field: str) -> bool:
        """Whether a hit's ``_source`` holds ``field`` as the ``fields`` option would
        return it."""
        return field in self.source_fields

    def reads_alike(self, field: str) -> bool:
        """Whether reading ``field`` from a whole ``_source`` gives what the ``fields``
        option gives: the same text, or nothing either way (a field this index neither
        maps nor computes)."""
        if not self.whole_source:
            return False
        unknown = field not in self.runtime and not self.has_any([field])
        return self.in_source(field) or unknown

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(path for path, _ in self.types)

    def has_any(self, fields: Sequence[str]) -> bool:
        """Whether one of ``fields`` (or an object path below it, or a multi-field) is mapped."""
        return any(f in self._mapped for f in fields)

    def text_fields(self) -> tuple[str, ...]:
        """Its text fields, title-like names first, at most ``_MAX_FIELDS``."""
        found = [path for path, kind in self.types if kind in TEXT_TYPES]

        def rank(path: str) -> int:
            last = path.rsplit(".", 1)[-1].lower()
            return next((i for i, t in enumerate(_TITLE_LIKE) if t in last), len(_TITLE_LIKE))

        return tuple(sorted(found, key=rank)[:_MAX_FIELDS])


@dataclass(frozen=True, slots=True)
class Choice:
    """The fields a search on an index expression reads, and what each index got."""

    fields: tuple[str, ...]
    found: Mapping[str, tuple[str, ...]]  # index → text fields read from its mapping
    textless: Mapping[str, tuple[str, ...]]  # index → its fields, none of them text
    configured: tuple[str, ...]  # indices that have a configured field


def _kind(spec: dict[str, Any]) -> str:
    return str(spec.get("type", "object" if "properties" in spec else ""))


def _specs(properties: Any, prefix: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every field's (dotted path, mapping, whether it is a multi-field such as
    ``title.english``), in mapping order: objects' fields included, not ``nested`` ones."""
    if not isinstance(properties, dict):
        return
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            continue
        path = f"{prefix}{name}"
        yield path, spec, False
        subs = spec.get("fields")
        if isinstance(subs, dict):
            yield from ((f"{path}.{k}", v, True) for k, v in subs.items() if isinstance(v, dict))
        if _kind(spec) == "object":
            yield from _specs(spec.get("properties"), path + ".")


def _copy_targets(properties: Any) -> Iterator[str]:
    """The fields ``copy_to`` fills, anywhere in ``properties`` (multi-fields included)."""
    if not isinstance(properties, dict):
        return
    for spec in properties.values():
        if not isinstance(spec, dict):
            continue
        target = spec.get("copy_to")
        yield from [target] if isinstance(target, str) else target or []
        yield from _copy_targets(spec.get("properties"))
        yield from _copy_targets(spec.get("fields"))


def parse(body: Any) -> list[IndexMapping]:
    """The indices of a ``_mapping`` answer (``{index: {"mappings": {...}}}``), sorted.

    Also reads the pre-7 shape with one type level (``mappings: {_doc: {...}}``).
    """
    out = []
    for index, value in sorted(body.items()) if isinstance(body, dict) else []:
        mappings = value.get("mappings") if isinstance(value, dict) else None
        if not isinstance(mappings, dict):
            continue
        if "properties" not in mappings and len(mappings) == 1:
            mappings = next(iter(mappings.values()))
        props = mappings.get("properties") if isinstance(mappings, dict) else None
        source = mappings.get("_source", {}) if isinstance(mappings, dict) else None
        whole = source == {} or (
            isinstance(source, dict)
            and source.get("enabled", True) is True
            and not source.get("includes")
            and not source.get("excludes")
            and source.get("mode") in (None, "stored")
        )
        # ``dynamic: false`` / ``runtime`` keep values in ``_source`` that the mapping
        # (and so the ``fields`` option) does not have: read this index as before.
        dynamic = mappings.get("dynamic", True) if isinstance(mappings, dict) else None
        whole = whole and str(dynamic).lower() not in ("false", "runtime")
        specs = list(_specs(props))
        types = tuple((path, _kind(spec)) for path, spec, multi in specs if not multi)
        copied = {t for t in _copy_targets(props) if isinstance(t, str)}
        runtime = mappings.get("runtime") if isinstance(mappings, dict) else None
        computed = frozenset(runtime) if isinstance(runtime, dict) else frozenset()
        # Only text: ``fields`` formats or fills other types (``ignore_above``, dates,
        # ``null_value``, ``constant_keyword``), so their ``_source`` may read otherwise.
        in_source = frozenset(
            path
            for path, kind in types
            if whole
            and "." not in path
            and kind in TEXT_TYPES
            and path not in copied
            and path not in computed
        )
        multi = frozenset(path for path, _, is_multi in specs if is_multi)
        stored = frozenset(path for path, spec, _ in specs if spec.get("store") is True)
        out.append(IndexMapping(index, types, whole, in_source, computed, multi, stored))
    return out


def choose(configured: Sequence[str], indices: Sequence[IndexMapping]) -> Choice:
    """Configured fields for indices that have one; their own text fields for the others."""
    fields = list(configured)
    found: dict[str, tuple[str, ...]] = {}
    textless: dict[str, tuple[str, ...]] = {}
    having: list[str] = []
    for mapping in indices:
        if mapping.has_any(configured):
            having.append(mapping.index)
            continue
        own = mapping.text_fields()
        if own:
            found[mapping.index] = own
            fields += [f for f in own if f not in fields]
        else:
            textless[mapping.index] = mapping.paths
    if found and not having:  # no index reads the configured fields: don't ask for them
        fields = [f for f in fields if f not in configured]
    return Choice(tuple(fields), found, textless, tuple(having))


def describe(choice: Choice, configured: Sequence[str]) -> str:
    """One line: which fields are scored in which indices."""
    parts = []
    if choice.configured:
        parts.append(f"{', '.join(configured)} in [{', '.join(choice.configured)}]")
    for index, own in choice.found.items():
        parts.append(f"{', '.join(own)} (from its mapping) in [{index}]")
    for index, paths in choice.textless.items():
        parts.append(f"nothing in [{index}] (no text fields; it has: {_listed(paths)})")
    return "; ".join(parts) or f"{', '.join(configured)} (no index matches yet)"


def _listed(paths: Sequence[str]) -> str:
    if not paths:
        return "no fields"
    more = f", ... {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return ", ".join(paths[:_LISTED]) + more


@dataclass(slots=True)
class _Entry:
    expires: float
    task: asyncio.Task[list[IndexMapping] | None]


class IndexFields:
    """Per index expression, its mappings (cached) and the fields a search reads."""

    def __init__(
        self,
        upstream: Upstream,
        settings: RerankSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.ttl_s = settings.mapping_ttl_s
        self.timeout_s = settings.timeout_s
        self.enabled = settings.discover_fields
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._told: dict[str, object] = {}  # index → what it was last logged with

    async def mappings(
        self, index: str | None, headers: Mapping[str, str] | None = None
    ) -> list[IndexMapping] | None:
        """The concrete indices behind ``index`` (cached), or None when unreadable."""
        key = index or "_all"
        now = self._clock()
        entry = self._cache.get(key)
        if entry is None or entry.expires <= now:
            self._evict()
            auth = {k: v for k, v in (headers or {}).items() if k.lower() == "authorization"}
            task = asyncio.create_task(self._read(key, auth), name=f"mapping {key}")
            self._cache.pop(key, None)  # re-inserted last: the newest read
            entry = self._cache[key] = _Entry(now + self.ttl_s, task)
        result = await asyncio.shield(entry.task)
        if result is None and entry.expires > now + _RETRY_S:
            entry.expires = now + _RETRY_S
        return result

    def _evict(self) -> None:
        """Keep at most ``_CACHED`` expressions (clients name any they like): drop the
        oldest finished reads; one still in flight is kept for the searches awaiting it."""
        excess = len(self._cache) - _CACHED + 1
        for key in [k for k, e in self._cache.items() if e.task.done()][: max(excess, 0)]:
            del self._cache[key]

    async def _read(self, key: str, auth: Mapping[str, str]) -> list[IndexMapping] | None:
        path = f"/{quote(key, safe=',*-_.+')}/_mapping?{_LENIENT}"
        headers = self.upstream.outgoing_headers(CIMultiDict(auth))
        headers["Accept"] = "application/json"
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self.upstream.fetch("GET", path, headers)
        except (GatewayError, TimeoutError) as exc:
            log.warning("mapping of [%s] unreadable (%s): scoring the configured fields", key, exc)
            return None
        if reply.status != 200:
            log.warning(
                "mapping of [%s] unreadable (HTTP %s): scoring the configured fields",
                key,
                reply.status,
            )
            return None
        try:
            return parse(json.loads(reply.body))
        except ValueError:
            log.warning("mapping of [%s] is not JSON: scoring the configured fields", key)
            return None

    async def choose(
        self, index: str | None, configured: Sequence[str], headers: Mapping[str, str]
    ) -> tuple[str, ...]:
        """The fields a search on ``index`` reads (``configured`` when nothing better)."""
        if not self.enabled:
            return tuple(configured)
        indices = await self.mappings(index, headers)
        if indices is None:
            return tuple(configured)
        choice = choose(configured, indices)
        self._tell(choice, configured)
        return choice.fields

    async def in_source(
        self, index: str | None, fields: Sequence[str], headers: Mapping[str, str]
    ) -> bool:
        """Whether every index behind ``index`` returns each of ``fields`` in its hits'
        ``_source`` (``IndexMapping.in_source``), so that asking for them in ``fields``
        would only send the text twice. False when the mapping is unread or unreadable."""
        indices = await self._local(index, fields, headers)
        if not indices:
            return False
        return all(m.reads_alike(f) for m in indices for f in fields)

    async def unstored(
        self, index: str | None, fields: Sequence[str], headers: Mapping[str, str]
    ) -> tuple[str, ...]:
        """Those of ``fields`` that no index behind ``index`` stores (``store: true``), so
        that ``stored_fields`` brings none of them back; none when the mapping is unread."""
        indices = await self._local(index, fields, headers)
        if not indices:
            return ()
        return tuple(f for f in fields if not any(f in m.stored for m in indices))

    async def _local(
        self, index: str | None, fields: Sequence[str], headers: Mapping[str, str]
    ) -> list[IndexMapping] | None:
        """The mappings to answer a question about ``fields`` from; None when there is none
        to ask (discovery off, no fields) or to trust (a remote cluster's indices are not in
        this mapping), or when it is unread."""
        if not self.enabled or not fields or ":" in (index or ""):
            return None
        return await self.mappings(index, headers)

    def _tell(self, choice: Choice, configured: Sequence[str]) -> None:
        """Warn once per index (again if its fields change) about a non-configured choice."""
        wanted = ", ".join(configured)
        for index in choice.configured:
            self._told.pop(index, None)
        news = [
            (
                index,
                own,
                f": scoring its text fields {', '.join(own)}"
                " (set GATEWAY_RERANK__FIELDS to choose)",
            )
            for index, own in choice.found.items()
        ] + [
            (
                index,
                paths,
                " and no text fields: its searches are not reranked (no_doc_text);"
                f" its fields: {_listed(paths)}",
            )
            for index, paths in choice.textless.items()
        ]
        for index, decision, what in news:
            if self._told.get(index) != decision:
                self._told[index] = decision
                log.warning(
                    "index [%s] has none of GATEWAY_RERANK__FIELDS (%s)%s", index, wanted, what
                )

    async def report(self, patterns: Sequence[str], configured: Sequence[str]) -> list[str]:
        """Per include pattern (excludes applied), a line saying what will be scored."""
        excludes = [p for p in patterns if p.startswith("-")]
        lines = []
        for pattern in (p for p in patterns if not p.startswith("-")):
            expression = ",".join([pattern, *excludes])
            if not self.enabled:
                what = f"{', '.join(configured)} (GATEWAY_RERANK__DISCOVER_FIELDS is off)"
            else:
                indices = await self.mappings(expression)
                if indices is None:
                    what = f"{', '.join(configured)} (mapping unreadable)"
                else:
                    choice = choose(configured, indices)
                    self._tell(choice, configured)
                    what = describe(choice, configured)
            lines.append(f"index pattern [{expression}] scores {what}")
        return lines

    async def close(self) -> None:
        for entry in self._cache.values():
            entry.task.cancel()
        await asyncio.gather(*(e.task for e in self._cache.values()), return_exceptions=True)
        self._cache.clear()
