"""The backfill's conversation with the cluster: mapping, pages, ``_bulk`` updates.

Pages come from a point in time (Elasticsearch ``POST /{index}/_pit`` sorted by
``_shard_doc`` [elastic/elasticsearch#66093]; OpenSearch ``POST
/{index}/_search/point_in_time`` sorted by ``_id``), or without one from
``search_after`` on ``_id``; only documents without the field are asked for
(``must_not exists``). ``gateway.vectors.backfill`` drives them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multidict import CIMultiDict

from gateway.errors import GatewayError
from gateway.upstream.client import Upstream

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED_DOCS, EXIT_CONFIG, EXIT_CLUSTER, EXIT_STOPPED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


class BackfillError(GatewayError):
    """The cluster refused a step of the backfill (its reason kept, no secrets in it)."""

    def __init__(self, step: str, status: int, reason: str, exit_code: int = EXIT_CLUSTER):
        super().__init__(f"{step}: HTTP {status}: {reason}")
        self.status = status
        self.exit_code = exit_code


@dataclass(slots=True)
class Options:
    index: str
    field: str
    text_fields: tuple[str, ...]
    state_file: Path
    batch_size: int = 200
    max_batches: int | None = None
    keep_alive: str = "10m"
    restart: bool = False
    point_in_time: bool = True  # False: search_after on _id (where _id sorts: OpenSearch)
    max_doc_chars: int = 4000


@dataclass(slots=True)
class State:
    """What the state file holds; counts are over every run of this backfill."""

    index: str
    field: str
    pit_id: str | None = None
    after: list[Any] | None = None
    updated: int = 0
    failed: int = 0
    skipped: int = 0
    batches: int = 0


class Cluster:
    """The few requests the backfill makes, through the gateway's upstream client."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def call(
        self, step: str, method: str, path: str, body: Any = None, refused: int = EXIT_CLUSTER
    ) -> Any:
        """The JSON answer; a non-2xx one raises, a 4xx with exit status ``refused``."""
        payload: bytes | None = None
        ctype = "application/json"
        if isinstance(body, str):
            payload, ctype = body.encode(), "application/x-ndjson"
        elif body is not None:
            payload = json.dumps(body).encode()
        headers = self.upstream.outgoing_headers(CIMultiDict({"Content-Type": ctype}))
        reply = await self.upstream.fetch(method, path, headers, payload)
        try:
            answer = json.loads(reply.body) if reply.body else None
        except ValueError:
            answer = None
        if reply.status >= 300:
            code = refused if 400 <= reply.status < 500 else EXIT_CLUSTER
            raise BackfillError(step, reply.status, _reason(answer), exit_code=code)
        return answer


def _reason(answer: Any) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        first = causes[0] if isinstance(causes, list) and causes else error
        return f"{first.get('type', '?')}: {first.get('reason', '')}"[:300]
    return str(error)[:300] if error else "no error body"


def vector_mapping(flavor: str, dims: int) -> dict[str, Any]:
    if flavor == "opensearch":
        return {"type": "knn_vector", "dimension": dims}
    return {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}


async def ensure_mapping(cluster: Cluster, flavor: str, index: str, name: str, dims: int) -> None:
    """Map the field as a vector of ``dims`` unless every index already maps it so.

    A missing index, a field mapped otherwise, a mapping the cluster refuses (OpenSearch
    wants ``index.knn: true`` for ``knn_vector``): exit status 2.
    """
    found = await cluster.call(
        "mapping", "GET", f"/{index}/_mapping/field/{name}", refused=EXIT_CONFIG
    )
    mapped = [
        spec
        for entry in (found or {}).values()
        if isinstance(entry, dict)
        for spec in [entry.get("mappings", {}).get(name, {}).get("mapping", {})]
        if spec
    ]
    for spec in mapped:
        leaf: dict[str, Any] = next(iter(spec.values()), {})
        have = leaf.get("dims", leaf.get("dimension"))
        if have is not None and int(have) != dims:
            raise BackfillError(
                "mapping",
                400,
                f"[{name}] is mapped with {have} dimensions, the embedder gives {dims}",
                exit_code=EXIT_CONFIG,
            )
    if len(mapped) < len(found or {}) or not found:
        body = {"properties": {name: vector_mapping(flavor, dims)}}
        await cluster.call("mapping", "PUT", f"/{index}/_mapping", body, refused=EXIT_CONFIG)


class Reader:
    """Pages of documents without the field, in a stable order."""

    def __init__(self, cluster: Cluster, flavor: str, options: Options, state: State) -> None:
        self.cluster = cluster
        self.flavor = flavor
        self.options = options
        self.state = state
        self.use_pit = True
        self.reopened = 0

    async def open(self) -> None:
        if not self.options.point_in_time:
            self.use_pit = False
        if self.state.pit_id is not None or not self.use_pit:
            return
        keep = self.options.keep_alive
        index = self.options.index
        path = (
            f"/{index}/_search/point_in_time?keep_alive={keep}"
            if self.flavor == "opensearch"
            else f"/{index}/_pit?keep_alive={keep}"
        )
        try:
            answer = await self.cluster.call("open point in time", "POST", path)
        except BackfillError as exc:
            if exc.status not in (400, 404, 405):
                raise
            log.info("no point in time on this cluster (%s): search_after on _id", exc)
            self.use_pit = False
            return
        self.state.pit_id = answer.get("pit_id") or answer.get("id")
        self.state.after = None

    async def page(self) -> list[dict[str, Any]]:
        missing = {"bool": {"must_not": {"exists": {"field": self.options.field}}}}
        body: dict[str, Any] = {
            "size": self.options.batch_size,
            "query": missing,
            "_source": list(self.options.text_fields),
            "track_total_hits": False,
        }
        path = "/_search"
        if self.use_pit and self.state.pit_id is not None:
            body["pit"] = {"id": self.state.pit_id, "keep_alive": self.options.keep_alive}
            tiebreak = "_id" if self.flavor == "opensearch" else "_shard_doc"
            body["sort"] = [{tiebreak: "asc"}]
        else:
            path = f"/{self.options.index}/_search"
            body["sort"] = [{"_id": "asc"}]
        if self.state.after is not None:
            body["search_after"] = self.state.after
        try:
            answer = await self.cluster.call("search", "POST", path, body)
        except BackfillError as exc:
            if exc.status != 404 or self.state.pit_id is None:
                raise
            log.info("the point in time has expired: opening a new one")
            self.state.pit_id = None
            self.reopened += 1
            await self.open()
            return await self.page()
        if self.use_pit and isinstance(answer.get("pit_id"), str):
            self.state.pit_id = answer["pit_id"]
        hits: list[dict[str, Any]] = answer.get("hits", {}).get("hits", [])
        return hits

    async def close(self) -> None:
        pit, self.state.pit_id = self.state.pit_id, None
        if pit is None or not self.use_pit:
            return
        if self.flavor == "opensearch":
            await self.cluster.call("close", "DELETE", "/_search/point_in_time", {"pit_id": [pit]})
        else:
            await self.cluster.call("close", "DELETE", "/_pit", {"id": pit})


def bulk_updates(hits: Sequence[dict[str, Any]], name: str, vectors: list[list[float]]) -> str:
    lines = []
    for hit, vector in zip(hits, vectors, strict=True):
        action: dict[str, Any] = {"_index": hit["_index"], "_id": hit["_id"]}
        if "_routing" in hit:
            action["routing"] = hit["_routing"]
        lines.append(json.dumps({"update": action}))
        lines.append(json.dumps({"doc": {name: vector}}))
    return "\n".join(lines) + "\n"


def outcomes(answer: Any) -> tuple[int, int]:
    """(updated, failed) items of a ``_bulk`` answer."""
    ok = bad = 0
    for item in answer.get("items", []) if isinstance(answer, dict) else []:
        result: dict[str, Any] = next(iter(item.values()), {})
        if 200 <= int(result.get("status", 500)) < 300:
            ok += 1
        else:
            bad += 1
            log.warning("not updated: %s: %s", result.get("_id"), _reason(result))
    return ok, bad
