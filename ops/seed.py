"""Seed a search index from a BEIR-layout corpus (standard library only: runs in the image).

::

    python ops/seed.py data/scifact                       # index "scifact" on localhost:9200
    python ops/seed.py data/scifact/corpus.jsonl --index papers --url https://es:9200 \\
        --api-key "$ES_API_KEY" --ca-bundle ca.crt --limit 1000

A BEIR dataset directory holds ``corpus.jsonl``: one ``{"_id", "title", "text"}``
object per line (``queries.jsonl`` and ``qrels/`` are for evaluation and not
read here). The index is created with ``title`` and ``text`` as ``text`` fields
(works on Elasticsearch and OpenSearch alike) and filled with ``_bulk`` in
chunks; ``--recreate`` deletes it first. Credentials come from flags or from
``SEED_API_KEY`` / ``SEED_USERNAME`` / ``SEED_PASSWORD``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
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


def corpus_file(path: Path) -> Path:
    """``corpus.jsonl`` inside a BEIR dataset directory, or the file itself."""
    found = path / "corpus.jsonl" if path.is_dir() else path
    if not found.is_file():
        raise SystemExit(f"seed: no corpus at {found} (expected a BEIR corpus.jsonl)")
    return found


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
) -> int:
    """Create ``index`` (unless it exists) and bulk-load the corpus; the number of documents."""
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
            batch = []
    if batch:
        total += _send(cluster, index, batch)
    cluster.call("POST", f"/{index}/_refresh")
    return total


def _send(cluster: Cluster, index: str, docs: list[dict[str, Any]]) -> int:
    answer = cluster.call("POST", "/_bulk", bulk_lines(index, docs), ndjson=True)
    if answer.get("errors"):
        failed = [i for i in answer.get("items", []) if "error" in next(iter(i.values()))]
        first = next(iter(failed[0].values()))["error"] if failed else {}
        raise SystemExit(f"seed: {len(failed)} documents rejected, first: {first.get('reason')}")
    return len(docs)


def _auth(args: argparse.Namespace) -> str | None:
    api_key = args.api_key or os.environ.get("SEED_API_KEY")
    if api_key:
        return f"ApiKey {api_key}"
    user = args.username or os.environ.get("SEED_USERNAME")
    if user:
        password = args.password or os.environ.get("SEED_PASSWORD", "")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path, help="BEIR dataset directory or corpus.jsonl")
    parser.add_argument("--url", default="http://localhost:9200", help="search cluster URL")
    parser.add_argument("--index", help="index name (default: the dataset directory's name)")
    parser.add_argument("--limit", type=int, help="load only the first N documents")
    parser.add_argument("--chunk", type=int, default=500, help="documents per _bulk request")
    parser.add_argument("--recreate", action="store_true", help="delete the index first")
    parser.add_argument("--api-key")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--ca-bundle")
    parser.add_argument("--insecure", action="store_true", help="skip TLS verification")
    args = parser.parse_args(argv)
    corpus = corpus_file(args.corpus)
    index = args.index or (args.corpus if args.corpus.is_dir() else corpus.parent).name.lower()
    cluster = Cluster(args.url, _auth(args), args.ca_bundle, args.insecure)
    try:
        count = seed(
            cluster, corpus, index, chunk=args.chunk, limit=args.limit, recreate=args.recreate
        )
    except urllib.error.URLError as exc:
        print(f"seed: {args.url} failed: {exc.reason}", file=sys.stderr)
        return 1
    print(f"seed: {count} documents in index {index!r} at {args.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
