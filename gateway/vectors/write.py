"""Embed on write: documents written through the gateway get their vector field.

For indices matching EMBEDDER__WRITE_INDICES, before the request goes upstream:

- ``PUT|POST /{index}/_doc[/{id}]`` and ``/{index}/_create/{id}``: the document;
- ``POST /{index}/_update/{id}``: its ``upsert`` document, and its ``doc`` when that
  holds every EMBEDDER__TEXT_FIELDS field (a partial one would give a vector of part of
  the document);
- ``POST /_bulk`` and ``/{index}/_bulk``: the source lines of ``index`` / ``create``
  actions and the bodies of ``update`` actions, as above, each for its action's
  ``_index`` (or the path's).

gain EMBEDDER__FIELD, the embedding of their EMBEDDER__TEXT_FIELDS joined, unless they
hold that field already or have no text. All texts of a request are embedded in one
call. A body it cannot read exactly (not UTF-8 JSON / NDJSON, duplicate keys, a
source line missing) goes upstream unchanged, and so does every body while the
embedder is loading or failing: the backfill command fills what was missed, as it
fills only documents without the field. A ``_bulk`` body keeps its bytes except for
the lines that changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from gateway.errors import GatewayError
from gateway.es import body as es_body
from gateway.indices import name_allowed
from gateway.model.embedder import Embedder
from gateway.rerank.documents import DocumentSpec, render
from gateway.settings import EmbedderSettings

log = logging.getLogger(__name__)

_DOC_ENDPOINTS = {"_doc": ("PUT", "POST"), "_create": ("PUT", "POST"), "_update": ("POST",)}
_SOURCE_ACTIONS = ("index", "create")


@dataclass(slots=True)
class _Slot:
    """A document inside the body that may get a vector."""

    line: int  # NDJSON line (0 for a single JSON body)
    doc: dict[str, Any]
    text: str


class WriteVectors:
    def __init__(self, settings: EmbedderSettings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self._spec = DocumentSpec(
            fields=tuple(settings.text_fields), max_chars=settings.max_doc_chars
        )

    async def fill(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> bytes:
        """The body with vectors added, or the body itself."""
        if self.embedder is None or not self.settings.write_indices or not body.strip():
            return body
        parts = [unquote(p) for p in raw_path.split("?", maxsplit=1)[0].strip("/").split("/")]
        if parts[-1] == "_bulk" and len(parts) <= 2 and method in ("PUT", "POST"):
            return await self._bulk(parts[0] if len(parts) == 2 else None, body)
        if len(parts) in (2, 3) and method in _DOC_ENDPOINTS.get(parts[1], ()):
            if parts[1] != "_doc" and len(parts) != 3:
                return body
            ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype not in ("application/json", "application/vnd.elasticsearch+json"):
                return body
            return await self._single(parts[0], parts[1] == "_update", body)
        return body

    def _wanted(self, index: str | None) -> bool:
        return index is not None and name_allowed(index, self.settings.write_indices)

    def _slots(self, line: int, body: dict[str, Any], update: bool) -> list[_Slot]:
        docs: list[Any] = [body]
        if update:
            docs = [body.get("upsert")]
            partial = body.get("doc")
            if isinstance(partial, dict) and all(f in partial for f in self._spec.fields):
                docs.append(partial)
        out = []
        for doc in docs:
            if not isinstance(doc, dict) or self.settings.field in doc:
                continue
            text = render({"_source": doc}, self._spec)
            if text:
                out.append(_Slot(line, doc, text))
        return out

    async def _embed(self, slots: list[_Slot]) -> bool:
        assert self.embedder is not None
        try:
            vectors = await self.embedder.embed([s.text for s in slots])
        except GatewayError as exc:
            log.warning("documents written without vectors (backfill fills them): %s", exc)
            return False
        for slot, vector in zip(slots, vectors, strict=True):
            slot.doc[self.settings.field] = vector
        return True

    async def _single(self, index: str, update: bool, body: bytes) -> bytes:
        parsed = es_body.load_object(body) if self._wanted(index) else None
        slots = self._slots(0, parsed, update) if parsed is not None else []
        if not slots or not await self._embed(slots):
            return body
        return es_body.dump(parsed)

    async def _bulk(self, default_index: str | None, body: bytes) -> bytes:
        lines = body.split(b"\n")
        parsed: dict[int, dict[str, Any]] = {}
        slots: list[_Slot] = []
        i = 0
        while i < len(lines):
            if not lines[i].strip():
                i += 1
                continue
            action = es_body.load_object(lines[i])
            if action is None or len(action) != 1:
                return body
            ((kind, meta),) = action.items()
            if kind == "delete":
                i += 1
                continue
            if kind not in (*_SOURCE_ACTIONS, "update") or not isinstance(meta, dict):
                return body
            i += 1
            if i >= len(lines) or not lines[i].strip():
                return body  # a source line missing: the cluster says what is wrong
            index = meta.get("_index", default_index)
            if isinstance(index, str) and self._wanted(index):
                source = es_body.load_object(lines[i])
                if source is None:
                    return body
                parsed[i] = source
                slots += self._slots(i, source, kind == "update")
            i += 1
        if not slots or not await self._embed(slots):
            return body
        for n in {s.line for s in slots}:
            lines[n] = es_body.dump(parsed[n])
        return b"\n".join(lines)
