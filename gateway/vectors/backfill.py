"""Fill a vector field of an existing index: read every document that lacks it, embed
its text, write the vector back with ``_bulk`` partial updates.

    rerank-gateway backfill INDEX [--field F] [--batch-size N] [--state FILE]
                            [--max-batches N] [--restart] [--keep-alive 10m]
                            [--no-point-in-time]

(the command is ``rerank-gateway backfill``: ``gateway.cli.backfill``).

Reads the documents through a point in time (Elasticsearch ``POST /{index}/_pit``
sorted by ``_shard_doc``; OpenSearch ``POST /{index}/_search/point_in_time`` sorted by
``_id``), or, where the cluster has none (or ``--no-point-in-time``), by
``search_after`` on ``_id`` alone (Elasticsearch 8 refuses to sort on ``_id``). Only
documents without the field are read (``must_not exists``), so a finished run has
nothing left to do and a run started afresh skips what an earlier one wrote.

Resumable: after each batch's ``_bulk`` the state file (``--state``) holds the point in
time and the last sort values. A run that finds it continues after them; when the point
in time has expired it opens a new one and starts again from the first document still
without a vector. Each document is updated once unless a run is killed between a
batch's ``_bulk`` and its state write (that batch is then written again). The state
file is removed when the run completes.

Exit status: 0 complete; 1 complete but some documents could not be updated; 2 bad
settings or arguments (or a field mapped with other dimensions); 3 the cluster failed
(state kept: run again); 4 stopped by ``--max-batches`` (run again to go on); 130
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from gateway.errors import ModelError, UpstreamError
from gateway.model.embedder import Embedder
from gateway.model.embedder_export import load_embedder
from gateway.progress import Progress
from gateway.rerank.documents import DocumentSpec, render
from gateway.settings import EmbedderSettings, Settings
from gateway.upstream.client import Upstream
from gateway.vectors.cluster import (
    EXIT_CLUSTER,
    EXIT_CONFIG,
    EXIT_FAILED_DOCS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    BackfillError,
    Cluster,
    Options,
    Reader,
    State,
    bulk_updates,
    ensure_mapping,
    outcomes,
)

__all__ = [
    "EXIT_CLUSTER",
    "EXIT_CONFIG",
    "EXIT_FAILED_DOCS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "Options",
    "Report",
    "State",
    "backfill",
    "load_state",
    "run",
]


@dataclass(slots=True)
class Report:
    complete: bool
    resumed: bool
    updated: int = 0  # this run
    failed: int = 0
    skipped: int = 0  # no text to embed
    batches: int = 0
    reopened: int = 0  # points in time found expired and opened again
    total: State = field(default_factory=lambda: State("", ""))

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return EXIT_STOPPED
        return EXIT_FAILED_DOCS if self.total.failed else EXIT_OK


def load_state(options: Options) -> State | None:
    if options.restart or not options.state_file.is_file():
        return None
    data = json.loads(options.state_file.read_text())
    if data.get("index") != options.index or data.get("field") != options.field:
        raise BackfillError(
            "state",
            400,
            f"{options.state_file} belongs to {data.get('index')}/"
            f"{data.get('field')}: pass another --state or --restart",
            exit_code=EXIT_CONFIG,
        )
    return State(**data)


def save_state(path: Path, state: State) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(json.dumps(asdict(state)) + "\n")
    os.replace(staging, path)


async def backfill(
    upstream: Upstream, embedder: Embedder, options: Options, progress_to: TextIO | None
) -> Report:
    """Fill ``options.field`` of every document of ``options.index`` that lacks it."""
    cluster = Cluster(upstream)
    flavor = await upstream.probe()
    if flavor is None:
        raise BackfillError("connect", 502, "the search cluster did not answer GET /")
    await ensure_mapping(cluster, flavor, options.index, options.field, embedder.dims)
    saved = load_state(options)
    state = saved or State(options.index, options.field)
    report = Report(complete=False, resumed=saved is not None, total=state)
    reader = Reader(cluster, flavor, options, state)
    missing = {"query": {"bool": {"must_not": {"exists": {"field": options.field}}}}}
    left = await cluster.call("count", "POST", f"/{options.index}/_count", missing)
    bar = (
        Progress(f"backfill {options.index}.{options.field}", left.get("count"), progress_to)
        if progress_to is not None
        else None
    )
    spec = DocumentSpec(fields=options.text_fields, max_chars=options.max_doc_chars)
    await reader.open()
    try:
        while options.max_batches is None or report.batches < options.max_batches:
            hits = await reader.page()
            if not hits:
                report.complete = True
                break
            texts = [render(hit, spec) for hit in hits]
            todo = [i for i, text in enumerate(texts) if text]
            vectors = await embedder.embed([texts[i] for i in todo])
            ok = bad = 0
            if todo:
                body = bulk_updates([hits[i] for i in todo], options.field, vectors)
                ok, bad = outcomes(await cluster.call("bulk", "POST", "/_bulk", body))
            skipped = len(hits) - len(todo)
            for counts in (report, state):
                counts.updated += ok
                counts.failed += bad
                counts.skipped += skipped
                counts.batches += 1
            state.after = hits[-1].get("sort")
            save_state(options.state_file, state)
            if bar is not None:
                bar.advance(len(hits))
    finally:
        if bar is not None:
            bar.close()
    report.reopened = reader.reopened
    if report.complete:
        await reader.close()
        await cluster.call("refresh", "POST", f"/{options.index}/_refresh")
        options.state_file.unlink(missing_ok=True)
    return report


def options_from(args: argparse.Namespace, settings: EmbedderSettings) -> Options:
    name = args.field or settings.field
    fields = args.text_fields.split(",") if args.text_fields else settings.text_fields
    return Options(
        index=args.index,
        field=name,
        text_fields=tuple(fields),
        state_file=args.state or Path(f"{args.index}.{name}.backfill.json"),
        batch_size=args.batch_size,
        max_batches=args.max_batches,
        keep_alive=args.keep_alive,
        restart=args.restart,
        point_in_time=not args.no_point_in_time,
        max_doc_chars=settings.max_doc_chars,
    )


async def run(settings: Settings, options: Options, progress_to: TextIO | None) -> int:
    """The command: load the embedder, backfill, print a one-line JSON summary."""
    try:
        embedder = await asyncio.to_thread(load_embedder, settings.embedder, settings.speed)
    except ModelError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    upstream = Upstream(settings.upstream)
    await upstream.start()
    try:
        report = await backfill(upstream, embedder, options, progress_to)
    except BackfillError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return exc.exit_code
    except UpstreamError as exc:
        print(f"backfill: the search cluster failed: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    finally:
        await upstream.close()
        embedder.close()
    summary = {k: v for k, v in asdict(report).items() if k != "total"}
    summary["total"] = {k: v for k, v in asdict(report.total).items() if k not in ("pit_id",)}
    print(json.dumps(summary))
    return report.exit_code
