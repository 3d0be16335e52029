"""Embed on write: which documents of which requests get a vector, with a fake embedder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.settings import EmbedderSettings
from gateway.vectors.write import WriteVectors
from tests.doubles.encoders import FakeEmbedder
from tests.doubles.net import JSON

NDJSON = {"Content-Type": "application/x-ndjson"}


def writer(fake: FakeEmbedder | None = None, **settings: Any) -> WriteVectors:
    values = {"write_indices": ["docs*", "-docs-raw"], "field": "vec", **settings}
    return WriteVectors(EmbedderSettings.model_validate(values), fake or FakeEmbedder())


def ndjson(*lines: Any) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def vec(doc: dict[str, Any]) -> list[float]:
    """What FakeEmbedder gives for a document's text (title and text joined)."""
    text = " ".join(str(doc[f]) for f in ("title", "text") if doc.get(f))
    return [float(len(text)), float(text.count(" "))]


DOC = {"title": "Berlin", "text": "has many people"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/docs/_doc/1"),
        ("POST", "/docs/_doc"),
        ("PUT", "/docs-2/_create/a%2Fb"),
        ("POST", "/docs/_doc/1?refresh=true"),
    ],
)
async def test_a_written_document_gets_its_vector(method: str, path: str) -> None:
    out = await writer().fill(method, path, JSON, json.dumps(DOC).encode())
    assert json.loads(out) == {**DOC, "vec": vec(DOC)}


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("PUT", "/other/_doc/1", JSON),  # not a configured index
        ("PUT", "/docs-raw/_doc/1", JSON),  # excluded
        ("GET", "/docs/_doc/1", JSON),
        ("DELETE", "/docs/_doc/1", JSON),
        ("PUT", "/docs/_doc/1", {"Content-Type": "text/plain"}),
        ("POST", "/docs/_update", JSON),  # no id
        ("POST", "/docs/_search", JSON),
        ("PUT", "/docs/_mapping", JSON),
    ],
)
async def test_other_requests_go_unchanged(method: str, path: str, headers: dict[str, str]) -> None:
    fake = FakeEmbedder()
    body = json.dumps(DOC).encode()
    assert await writer(fake).fill(method, path, headers, body) is body
    assert fake.calls == []


@pytest.mark.parametrize(
    "body",
    [
        {"title": "", "text": ""},  # no text
        {**DOC, "vec": [1.0, 2.0]},  # has its vector already
    ],
)
async def test_documents_without_text_or_with_a_vector_are_left_alone(body: Any) -> None:
    raw = json.dumps(body).encode()
    assert await writer().fill("PUT", "/docs/_doc/1", JSON, raw) is raw


async def test_an_unreadable_or_failing_write_goes_unchanged() -> None:
    raw = b'{"title": "a", "title": "b"}'
    assert await writer().fill("PUT", "/docs/_doc/1", JSON, raw) is raw
    good = json.dumps(DOC).encode()
    assert await writer(FakeEmbedder(fail=True)).fill("PUT", "/docs/_doc/1", JSON, good) is good
    assert (
        await WriteVectors(EmbedderSettings(write_indices=["*"])).fill(
            "PUT", "/docs/_doc/1", JSON, good
        )
        is good
    )  # no embedder (yet)


async def test_an_update_embeds_its_upsert_and_only_a_whole_partial_doc() -> None:
    body = {"doc": {"title": "only the title"}, "upsert": DOC}
    out = json.loads(
        await writer().fill("POST", "/docs/_update/1", JSON, json.dumps(body).encode())
    )
    assert out == {"doc": {"title": "only the title"}, "upsert": {**DOC, "vec": vec(DOC)}}
    whole = {"doc": {"title": "T", "text": "new text"}, "doc_as_upsert": True}
    out = json.loads(
        await writer().fill("POST", "/docs/_update/1", JSON, json.dumps(whole).encode())
    )
    assert out["doc"]["vec"] == vec(whole["doc"])
    script = {"script": {"source": "ctx._source.n += 1"}}
    raw = json.dumps(script).encode()
    assert await writer().fill("POST", "/docs/_update/1", JSON, raw) is raw


async def test_bulk_fills_each_configured_source_line_in_one_call_and_keeps_the_rest() -> None:
    fake = FakeEmbedder()
    other = {"title": "Paris", "text": "is in France"}
    lines = [
        {"index": {"_index": "docs", "_id": "1"}},
        DOC,
        {"delete": {"_index": "docs", "_id": "2"}},
        {"create": {"_id": "3"}},
        other,  # the path's index
        {"index": {"_index": "other", "_id": "4"}},
        DOC,  # not configured
        {"update": {"_index": "docs", "_id": "5"}},
        {"doc": {"title": "x"}, "upsert": other},
        {"index": {"_index": "docs-raw", "_id": "6"}},
        DOC,  # excluded
    ]
    raw = ndjson(*lines)
    out = await writer(fake).fill("POST", "/docs/_bulk", NDJSON, raw)
    got = [json.loads(line) for line in out.split(b"\n") if line]
    assert fake.calls == [
        [" ".join(DOC.values()), " ".join(other.values()), " ".join(other.values())]
    ]
    want = list(lines)
    want[1] = {**DOC, "vec": vec(DOC)}
    want[4] = {**other, "vec": vec(other)}
    want[8] = {"doc": {"title": "x"}, "upsert": {**other, "vec": vec(other)}}
    assert got == want
    unchanged = raw.split(b"\n")
    for n in (0, 2, 3, 5, 6, 7, 9, 10):
        assert out.split(b"\n")[n] == unchanged[n]  # the same bytes
    assert out.endswith(b"\n")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"index": {"_index": "docs"}}\n{"title": "a", "title": "b"}\n',  # duplicate key
        b'{"index": {"_index": "docs"}}\n',  # source line missing
        b'{"index": {"_index": "docs"}, "x": 1}\n{"title": "a"}\n',  # two actions in one
        b'{"frobnicate": {"_index": "docs"}}\n{"title": "a"}\n',
        b"not json\n",
    ],
)
async def test_a_bulk_body_it_cannot_read_exactly_goes_unchanged(raw: bytes) -> None:
    fake = FakeEmbedder()
    assert await writer(fake).fill("POST", "/_bulk", NDJSON, raw) is raw
    assert fake.calls == []


async def test_nothing_is_done_without_write_indices() -> None:
    raw = json.dumps(DOC).encode()
    assert await writer(write_indices=[]).fill("PUT", "/docs/_doc/1", JSON, raw) is raw
