"""The X-Rerank-Reason list in the docs is the ``Reason`` type's, and stays so."""

from __future__ import annotations

from typing import get_args

from gateway.rerank.reranker import Reason
from gateway.search import reasons


def test_every_reason_has_its_meaning() -> None:
    assert list(reasons.MEANINGS) == list(get_args(Reason))


def test_the_docs_list_is_generated_from_the_type() -> None:
    text = reasons.DOC_FILE.read_text()
    assert reasons.written(text) == text, "run: python -m gateway.search.reasons --write"
    for reason in get_args(Reason):
        assert f"- `{reason}`: " in text


def test_joined_lists_each_reason_once_sorted() -> None:
    assert reasons.joined(["deadline", None, "too_many_pairs", "deadline"]) == (
        "deadline,too_many_pairs"
    )
    assert reasons.joined([None]) is None
