"""Labels from a scripted event log, worked out by hand: sessions, COEC, PBM, splits, files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.learning.clicks import (
    Session,
    coec,
    examination_curve,
    fit_pbm,
    judgments_from_clicks,
    rank_ctr,
    sessions_from_events,
    split_by_time,
    time_cut,
)
from gateway.learning.judgments import Judgment, by_query, grades, read_qrels, write_qrels
from gateway.learning.ubi import read_ndjson, sessions_from_ubi, to_ubi, write_ndjson


def imp(sid: str, docs: list[str], ts: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": "impression",
        "search_id": sid,
        "variant": "interleave",
        "mode": "interleave",
        "hits": [["papers", d] for d in docs],
        "ts": ts,
        **extra,
    }


def click(sid: str, **where: Any) -> dict[str, Any]:
    return {"type": "click", "search_id": sid, "ts": 0.0, **where}


def test_sessions_join_clicks_by_position_or_id_and_skip_what_cannot_be_labelled() -> None:
    events = [
        imp("s2", ["a", "b", "c"], 20.0, query="  Heart   Attack "),
        imp("s1", ["c", "a"], 10.0, query="heart attack"),
        imp("s3", ["a"], 30.0),  # no query text: nothing to label
        click("s1", position=2),
        click("s2", id="c"),
        click("s2", id="zzz"),  # not shown
        click("s2", position=9),  # beyond the page
        click("nope", position=1),
        {"type": "shadow", "search_id": "s1"},
    ]
    got = sessions_from_events(events)
    assert [s.search_id for s in got] == ["s1", "s2"]  # oldest first
    assert got[0].query == got[1].query == "heart attack"
    assert got[0].clicks == {2}
    assert got[1].clicks == {3}
    assert got[1].docs == ["a", "b", "c"]


def swapped_sessions() -> list[Session]:
    """One query, two documents, each order shown 10 times.

    [a, b]: a clicked 8 times, b 2 times; [b, a]: b clicked 4 times, a 4 times.
    PBM fits these exactly with θ = (1, 0.5), α_a = 0.8, α_b = 0.4:
    0.8 = 1·0.8, 0.2 = 0.5·0.4, 0.4 = 1·0.4, 0.4 = 0.5·0.8.
    """
    out: list[Session] = []
    for i in range(10):
        clicks = ({1} if i < 8 else set()) | ({2} if i < 2 else set())
        out.append(Session(f"ab{i}", "q", ["a", "b"], float(i), "interleave", "", clicks))
    for i in range(10):
        clicks = ({1} if i < 4 else set()) | ({2} if i >= 6 else set())
        out.append(Session(f"ba{i}", "q", ["b", "a"], 10.0 + i, "interleave", "", clicks))
    return out


def test_pbm_recovers_the_examination_curve_and_attractiveness() -> None:
    sessions = swapped_sessions()
    theta = examination_curve(sessions, depth=2, iterations=2000)
    assert theta == pytest.approx([1.0, 0.5], abs=1e-3)
    model = fit_pbm(sessions, depth=2, iterations=500, examination=theta)
    assert model.attractiveness[("q", "a")] == pytest.approx(0.8, abs=1e-3)
    assert model.attractiveness[("q", "b")] == pytest.approx(0.4, abs=1e-3)
    assert model.impressions[("q", "a")] == 20


def test_examination_needs_varied_traffic() -> None:
    fixed = [Session("s", "q", ["a", "b"], 0.0, "ab", "", {1})]
    with pytest.raises(ValueError, match="interleaved or randomized"):
        examination_curve(fixed)
    with pytest.raises(ValueError, match="interleaved or randomized"):
        judgments_from_clicks(fixed)


def test_coec_by_hand() -> None:
    # rank 1 shown 4 times, clicked twice (0.5); rank 2 shown 4 times, clicked once (0.25).
    sessions = [
        Session("1", "q", ["a", "b"], 1.0, clicks={1}),
        Session("2", "q", ["a", "b"], 2.0),
        Session("3", "q", ["b", "a"], 3.0, clicks={1, 2}),
        Session("4", "q", ["b", "a"], 4.0),
    ]
    assert rank_ctr(sessions, 2) == [0.5, 0.25]
    got = coec(sessions, depth=2)
    # a: 2 clicks / (0.5 + 0.5 + 0.25 + 0.25) expected; b: 1 click / 1.5.
    assert got[("q", "a")] == pytest.approx(4 / 3)
    assert got[("q", "b")] == pytest.approx(2 / 3)
    labels = {(j.query, j.doc): j for j in judgments_from_clicks(sessions, model="coec", depth=2)}
    assert labels[("q", "a")].label == 1.0  # capped
    assert labels[("q", "b")].label == pytest.approx(2 / 3)
    assert labels[("q", "b")].weight == 4.0
    assert labels[("q", "b")].source == "coec"


def test_pbm_judgments_keep_pairs_with_enough_impressions() -> None:
    sessions = [*swapped_sessions(), Session("x", "q", ["c"], 99.0, "ab", "", set())]
    got = judgments_from_clicks(sessions, depth=2, min_impressions=2, iterations=2000)
    assert [(j.doc, round(j.label, 2), j.weight) for j in got] == [("a", 0.8, 20), ("b", 0.4, 20)]


def test_time_split_is_by_timestamp() -> None:
    sessions = swapped_sessions()
    cut = time_cut(sessions, 0.75)
    assert cut == 15.0
    train, valid = split_by_time(sessions, cut)
    assert len(train) == 15 and len(valid) == 5
    assert max(s.ts for s in train) < min(s.ts for s in valid)


def test_grades_bin_estimates() -> None:
    assert grades([0.0, 0.19, 0.2, 0.5, 0.99, 1.0, 1.7]) == [0, 0, 1, 2, 4, 4, 4]


@pytest.mark.parametrize("fmt", ["trec", "beir"])
def test_qrels_round_trip(tmp_path: Path, fmt: str) -> None:
    queries = {"1": "heart attack", "2": "flu"}
    judged = [Judgment("heart attack", "d1", 2), Judgment("flu", "d9", 0)]
    path = tmp_path / "qrels.txt"
    assert write_qrels(path, judged, {v: k for k, v in queries.items()}, fmt=fmt) == 2  # type: ignore[arg-type]
    first = path.read_text().splitlines()[0]
    assert first == ("query-id\tcorpus-id\tscore" if fmt == "beir" else "1 0 d1 2")
    back = read_qrels(path, queries)  # format told by the header
    assert by_query(back) == {"heart attack": {"d1": 2.0}, "flu": {"d9": 0.0}}
    assert read_qrels(path, {"2": "flu"}) == [Judgment("flu", "d9", 0.0)]  # unknown ids skipped


def test_ubi_round_trip_and_foreign_records(tmp_path: Path) -> None:
    sessions = swapped_sessions()[:3]
    queries, events = to_ubi(sessions)
    assert queries[0]["query_response_hit_ids"] == ["a", "b"]
    assert events[0]["event_attributes"]["position"]["ordinal"] == 1
    assert events[0]["event_attributes"]["object"]["object_id"] == "a"
    write_ndjson(tmp_path / "q.ndjson", queries)
    write_ndjson(tmp_path / "e.ndjson", events)
    back = sessions_from_ubi(read_ndjson(tmp_path / "q.ndjson"), read_ndjson(tmp_path / "e.ndjson"))
    assert [(s.search_id, s.docs, s.clicks, s.mode) for s in back] == [
        (s.search_id, s.docs, s.clicks, s.mode) for s in sessions
    ]
    assert [s.ts for s in back] == pytest.approx([s.ts for s in sessions], abs=1e-3)
    # Another application's records: millisecond epochs, a click named by ordinal only,
    # a non-click action, a query without hits.
    foreign_q = [
        {"query_id": "x", "user_query": "Flu", "timestamp": 1_700_000_000_000,
         "query_response_hit_ids": ["d1", "d2", "d3"]},
        {"query_id": "y", "user_query": "none", "query_response_hit_ids": []},
    ]  # fmt: skip
    foreign_e = [
        {"action_name": "click", "query_id": "x", "event_attributes": {"position": {"ordinal": 3}}},
        {"action_name": "hover", "query_id": "x",
         "event_attributes": {"object": {"object_id": "d1"}}},
    ]  # fmt: skip
    (got,) = sessions_from_ubi(foreign_q, foreign_e)
    assert (got.query, got.clicks, got.ts) == ("flu", {3}, 1_700_000_000.0)
