"""OpenSearch User Behavior Insights (UBI, spec 1.3): the query and event records, in and out.

A UBI *query* record (index ``ubi_queries``) says what was searched and shown::

    {"application", "query_id", "client_id", "user_query", "timestamp",
     "query_response_id", "query_response_hit_ids": [doc ids in shown order],
     "object_id_field", "query_attributes": {...}}

A UBI *event* record (index ``ubi_events``) says what the user did with one of them::

    {"application", "action_name": "click", "query_id", "client_id", "session_id",
     "timestamp", "message_type", "message",
     "event_attributes": {"object": {"object_id", "object_id_field"},
                          "position": {"ordinal": 1-based rank}}}

(docs.opensearch.org/latest/search-plugins/ubi/schemas). Timestamps are ISO 8601
in UTC. ``to_ubi`` writes the gateway's sessions as such records (the gateway's
search id is the ``query_id``; its experiment mode and variant go to
``query_attributes``); ``sessions_from_ubi`` reads them back, with clicks matched by
``object_id`` first, ``ordinal`` otherwise. Actions other than ``click_actions`` are
ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.learning.clicks import Session
from gateway.learning.judgments import query_key

Record = dict[str, Any]
CLICK_ACTIONS = frozenset({"click", "select", "add_to_cart", "purchase"})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / (1000.0 if value > 1e11 else 1.0)  # epoch millis or seconds
    text = str(value or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def to_ubi(
    sessions: Iterable[Session],
    *,
    application: str = "rerank-gateway",
    object_id_field: str = "_id",
) -> tuple[list[Record], list[Record]]:
    """UBI query records and click event records for ``sessions``."""
    queries: list[Record] = []
    events: list[Record] = []
    for s in sessions:
        queries.append(
            {
                "application": application,
                "query_id": s.search_id,
                "client_id": "",
                "user_query": s.query,
                "timestamp": _iso(s.ts),
                "query_response_id": s.search_id,
                "query_response_hit_ids": list(s.docs),
                "object_id_field": object_id_field,
                "query_attributes": {"mode": s.mode, "variant": s.variant},
            }
        )
        for position in sorted(s.clicks):
            events.append(
                {
                    "application": application,
                    "action_name": "click",
                    "query_id": s.search_id,
                    "client_id": "",
                    "session_id": "",
                    "timestamp": _iso(s.ts),
                    "message_type": "CLICK",
                    "message": None,
                    "event_attributes": {
                        "object": {
                            "object_id": s.docs[position - 1],
                            "object_id_field": object_id_field,
                        },
                        "position": {"ordinal": position},
                    },
                }
            )
    return queries, events


def sessions_from_ubi(
    queries: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    *,
    click_actions: frozenset[str] = CLICK_ACTIONS,
) -> list[Session]:
    """Sessions from UBI records, oldest first (queries without hit ids are left out)."""
    by_id: dict[str, Session] = {}
    for q in queries:
        hits = q.get("query_response_hit_ids")
        if not isinstance(hits, list) or not hits or not isinstance(q.get("user_query"), str):
            continue
        attrs = q.get("query_attributes")
        attrs = attrs if isinstance(attrs, dict) else {}
        sid = str(q.get("query_id", ""))
        by_id[sid] = Session(
            sid,
            query_key(str(q["user_query"])),
            [str(h) for h in hits],
            _epoch(q.get("timestamp")),
            str(attrs.get("mode", "ab")),
            str(attrs.get("variant", "")),
        )
    for e in events:
        session = by_id.get(str(e.get("query_id", "")))
        if session is None or e.get("action_name") not in click_actions:
            continue
        attrs = e.get("event_attributes")
        attrs = attrs if isinstance(attrs, dict) else {}
        obj = attrs.get("object") if isinstance(attrs.get("object"), dict) else {}
        pos = attrs.get("position") if isinstance(attrs.get("position"), dict) else {}
        doc = str(obj.get("object_id", "")) if obj else ""
        ordinal = pos.get("ordinal") if pos else None
        if doc in session.docs:
            session.clicks.add(session.docs.index(doc) + 1)
        elif isinstance(ordinal, int) and 1 <= ordinal <= len(session.docs):
            session.clicks.add(ordinal)
    return sorted(by_id.values(), key=lambda s: s.ts)


def write_ndjson(path: Path, records: Iterable[Record]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
            n += 1
    return n


def read_ndjson(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                value = json.loads(line)
                if isinstance(value, dict):
                    yield value
