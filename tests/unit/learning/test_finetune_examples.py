"""Training lists for the cross-encoder from judgments: which documents, in which order, which
labels (``gateway.learning.finetune.examples``, no torch)."""

from __future__ import annotations

from gateway.learning.finetune import Example, examples

TEXTS = {d: f"text of {d}" for d in ("a", "b", "c", "d", "e", "f")}


def test_positives_first_then_judged_zeros_then_unjudged_candidates() -> None:
    labels = {"q": {"c": 0.0, "b": 1.0, "a": 2.0}}
    got = examples(labels, TEXTS, {"q": ["e", "a", "d", "f"]}, list_size=5)
    assert got == [
        Example(
            "q",
            ("text of a", "text of b", "text of c", "text of e", "text of d"),
            (2.0, 1.0, 0.0, 0.0, 0.0),
        )
    ]


def test_a_query_needs_a_positive_and_a_negative() -> None:
    labels = {
        "only-pos": {"a": 1.0, "b": 1.0},  # no negative anywhere
        "only-neg": {"a": 0.0, "b": 0.0},
        "pos-and-shown": {"a": 1.0},
    }
    got = examples(labels, TEXTS, {"pos-and-shown": ["a", "b"]}, list_size=4)
    assert [(e.query, e.labels) for e in got] == [("pos-and-shown", (1.0, 0.0))]


def test_the_list_is_capped_and_keeps_room_for_a_negative() -> None:
    labels = {"q": dict.fromkeys("abcde", 1.0)}
    (got,) = examples(labels, TEXTS, {"q": ["f"]}, list_size=3)
    assert got.labels == (1.0, 1.0, 0.0) and got.docs[-1] == "text of f"


def test_documents_without_text_are_left_out_and_negative_labels_clipped() -> None:
    labels = {"q": {"a": 1.0, "missing": 3.0, "b": -1.0}}
    (got,) = examples(labels, TEXTS, {"q": ["missing", "c"]}, list_size=8)
    assert got.docs == ("text of a", "text of b", "text of c")
    assert got.labels == (1.0, 0.0, 0.0)


def test_query_order_is_shuffled_reproducibly() -> None:
    labels = {f"q{i}": {"a": 1.0, "b": 0.0} for i in range(20)}
    first = [e.query for e in examples(labels, TEXTS, {}, seed=3)]
    assert first == [e.query for e in examples(labels, TEXTS, {}, seed=3)]
    assert first != sorted(first) and sorted(first) == sorted(labels)
