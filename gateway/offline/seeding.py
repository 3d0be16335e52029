"""Load a BEIR-layout corpus into a search index (standard library only).

A BEIR dataset directory holds ``corpus.jsonl``: one ``{"_id", "title", "text"}``
object per line (``queries.jsonl`` and ``qrels/`` are for evaluation and not
read here). The index is created with ``title`` and ``text`` as ``text`` fields
(works on Elasticsearch and OpenSearch alike) and filled with ``_bulk`` in
chunks; ``recreate`` deletes it first. ``rerank-gateway seed`` is the command.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MAPPINGS = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}


class Cluster:
    def __init__(
        self, url: str, auth: str | None, ca_bundle: str | None, insecure: bool = False
    ) -> None:
        self.url = url.rstrip("/")
        self.auth = auth
        self.context: ssl.SSLContext | None = None
        if ca_bundle:
            self.context = ssl.create_default_context(cafile=ca_bundle)
        elif insecure:
            self.context = ssl._create_unverified_context()

    def call(self, method: str, path: str, body: bytes | None = None, ndjson: bool = False) -> Any:
        ctype = "application/x-ndjson" if ndjson else "application/json"
        headers = {"Content-Type": ctype}
        if self.auth:
            headers["Authorization"] = self.auth
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=120, context=self.context) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def exists(self, index: str) -> bool:
        try:
            self.call("HEAD", f"/{index}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise
        return True


class SeedError(Exception):
    """The corpus cannot be read or the cluster refused documents (the message says which)."""


def corpus_file(path: Path) -> Path:
    """``corpus.jsonl`` inside a BEIR dataset directory, or the file itself."""
    found = path / "corpus.jsonl" if path.is_dir() else path
    if not found.is_file():
        raise SeedError(f"no corpus at {found} (expected a BEIR corpus.jsonl)")
    return found


def count_lines(path: Path) -> int:
    """Documents in a corpus (non-empty lines), for progress."""
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def read_corpus(path: Path, limit: int | None) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if limit is not None and n >= limit:
                return
            if line.strip():
                yield json.loads(line)


def bulk_lines(index: str, docs: list[dict[str, Any]]) -> bytes:
    lines = []
    for doc in docs:
        source = {"title": doc.get("title") or "", "text": doc.get("text") or ""}
        extra = doc.get("metadata")
        if isinstance(extra, dict) and extra:
            source["metadata"] = extra
        lines.append(json.dumps({"index": {"_index": index, "_id": str(doc["_id"])}}))
        lines.append(json.dumps(source))
    return ("\n".join(lines) + "\n").encode()


def seed(
    cluster: Cluster,
    corpus: Path,
    index: str,
    *,
    chunk: int = 500,
    limit: int | None = None,
    recreate: bool = False,
    progress: Callable[[int], None] = lambda done: None,
) -> int:
    """Create ``index`` (unless it exists) and bulk-load the corpus; the number of documents.

    ``progress`` is called with the number of documents loaded after each ``_bulk``.
    """
    if recreate and cluster.exists(index):
        cluster.call("DELETE", f"/{index}")
    if not cluster.exists(index):
        cluster.call("PUT", f"/{index}", json.dumps({"mappings": MAPPINGS}).encode())
    total = 0
    batch: list[dict[str, Any]] = []
    for doc in read_corpus(corpus, limit):
        batch.append(doc)
        if len(batch) >= chunk:
            total += _send(cluster, index, batch)
            progress(total)
            batch = []
    if batch:
        total += _send(cluster, index, batch)
        progress(total)
    cluster.call("POST", f"/{index}/_refresh")
    return total


def _send(cluster: Cluster, index: str, docs: list[dict[str, Any]]) -> int:
    answer = cluster.call("POST", "/_bulk", bulk_lines(index, docs), ndjson=True)
    if answer.get("errors"):
        failed = [i for i in answer.get("items", []) if "error" in next(iter(i.values()))]
        first = next(iter(failed[0].values()))["error"] if failed else {}
        raise SeedError(f"{len(failed)} documents rejected, first: {first.get('reason')}")
    return len(docs)
