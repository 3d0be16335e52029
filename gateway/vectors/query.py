"""Vectors without ML nodes: ``query_vector_builder`` filled by the gateway's embedder.

A kNN search may name a text instead of a vector::

    "knn": {"field": "embedding", "k": 10, "num_candidates": 100,
            "query_vector_builder": {"text_embedding": {"model_id": "m", "model_text": "..."}}}

Elasticsearch embeds that text on an ML node. A cluster without one (or OpenSearch,
or a cluster that never held the model) cannot, so before the search goes upstream the
gateway replaces each such builder by ``query_vector`` from EMBEDDER__*: in ``knn``
(one or a list), in the ``knn`` query and in ``knn`` retrievers, at any depth. Only
builders whose ``model_id`` is EMBEDDER__MODEL_ID are filled (any, when it is unset);
bodies it cannot read, and every body while the embedder is loading or failing, go
upstream unchanged, so the cluster answers as it would without the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.errors import GatewayError
from gateway.es import body as es_body
from gateway.es.query_text import explicit_text, find_text
from gateway.model.embedder import Embedder
from gateway.settings import EmbedderSettings

log = logging.getLogger(__name__)

_MAX_DEPTH = 64
_JSON = ("application/json", "application/vnd.elasticsearch+json")


def builders(node: Any, model_id: str | None, depth: int = 0) -> Iterator[dict[str, Any]]:
    """The objects holding a ``query_vector_builder.text_embedding`` this gateway fills."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, list):
        for item in node:
            yield from builders(item, model_id, depth + 1)
        return
    if not isinstance(node, dict):
        return
    builder = node.get("query_vector_builder")
    emb = builder.get("text_embedding") if isinstance(builder, dict) else None
    if (
        isinstance(emb, dict)
        and isinstance(emb.get("model_text"), str)
        and (model_id is None or emb.get("model_id") == model_id)
        and "query_vector" not in node
    ):
        yield node
    for value in node.values():
        if isinstance(value, dict | list):
            yield from builders(value, model_id, depth + 1)


class QueryVectors:
    """Fills ``query_vector_builder`` from the embedder, once it is loaded."""

    def __init__(self, settings: EmbedderSettings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder

    async def fill(
        self, body: bytes, headers: Mapping[str, str], uri_q: str | None = None
    ) -> bytes:
        """The body with query vectors in place of builders; the body itself otherwise.

        The reranker still reads the builders' texts: unless the body names its query
        text (``ext.rerank.query``), the text found before filling is put there (the
        gateway's own section, removed before the search goes upstream).
        """
        if self.embedder is None or b"query_vector_builder" not in body:
            return body
        ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in _JSON:
            return body
        parsed = es_body.load_object(body)
        if parsed is None:
            return body
        found = list(builders(parsed, self.settings.model_id))
        if not found:
            return body
        texts = [node["query_vector_builder"]["text_embedding"]["model_text"] for node in found]
        try:
            vectors = await self.embedder.embed(texts)
        except GatewayError as exc:
            log.warning("query vectors not filled (the cluster gets the builder): %s", exc)
            return body
        if explicit_text(parsed) is None and (text := find_text(parsed, uri_q)):
            ext = parsed.setdefault("ext", {})
            rerank = ext.setdefault("rerank", {}) if isinstance(ext, dict) else None
            if isinstance(rerank, dict):
                rerank["query"] = text
        for node, vector in zip(found, vectors, strict=True):
            del node["query_vector_builder"]
            node["query_vector"] = vector
        return es_body.dump(parsed)
