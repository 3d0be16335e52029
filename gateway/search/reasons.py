"""What each ``X-Rerank-Reason`` means; writes that list into docs/relevance.md.

The values are the ``Reason`` literal (gateway.rerank.reranker), so mypy checks
every place that sets one; this module holds the words for the docs::

    python -m gateway.search.reasons            # print the list
    python -m gateway.search.reasons --write    # replace the list in docs/relevance.md
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

from gateway.rerank.reranker import Reason

DOC_FILE = Path(__file__).resolve().parents[2] / "docs" / "relevance.md"
BEGIN = "<!-- reasons:begin -->"
END = "<!-- reasons:end -->"

MEANINGS: dict[Reason, str] = {
    "opted_out": "the request said `?rerank=false` or `X-Rerank: off`",
    "disabled": "reranking is off (`RERANK__ENABLED=false`)",
    "not_opted_in": "`RERANK__OPT_IN` is on and the request did not ask",
    "index_not_configured": "the index is not one of `RERANK__INDICES`",
    "experiment_control": "the experiment arm serving it is the control (plain forward)",
    "shadow": "a shadow experiment: the cluster's page, the reranked one only measured",
    "unreadable_body": "the body is not JSON the gateway reads cleanly (or `?source=`)",
    "invalid_option": "an `_msearch` sub-search with a bad `ext.rerank` (its error in its slot)",
    "size_zero": "`size` is 0: no hits to order",
    "sorted": "the search sorts by something other than `_score` first",
    "beyond_window": "`from` lies past the rerank window",
    "paginated_by_cursor": "a `scroll`, or a `search_after` the gateway cannot continue",
    "no_source": "`stored_fields: _none_`: the hits bring no text back",
    "no_query_text": "no query text to score against (send `ext.rerank.query`)",
    "no_doc_text": "hits without any of the fields being scored",
    "too_many_pairs": "more pairs than `RERANK__MAX_REQUEST_PAIRS` for one request",
    "model_not_ready": "the model is still loading, or failed to load",
    "deadline": "the rerank deadline (profile, `ext.rerank.timeout_ms`) passed first",
    "overloaded": "the batcher's queue is full (`BATCHER__MAX_QUEUE_PAIRS`)",
    "model_error": "the model (or TEI) failed on these pairs",
    "rerank_error": "reranking failed for another reason (see the log)",
    "upstream_status": "the cluster answered with an error, passed on verbatim",
    "upstream_body": "the cluster's 2xx answer is no JSON object with `hits` to reorder",
    "retriever_on_cluster": "a `retriever` body sent to the cluster to run (`RETRIEVERS__RUN`)",
    "no_reranker_in_tree": "a `retriever` tree without a `text_similarity_reranker`",
}


def joined(reasons: Iterable[Reason | None]) -> str | None:
    """Several searches' reasons as one header value: sorted, each once, comma-separated."""
    return ",".join(sorted({r for r in reasons if r})) or None


def listing() -> str:
    """The Markdown list of every reason, in the order of the ``Reason`` literal."""
    return "\n".join(f"- `{r}`: {MEANINGS[r]}" for r in get_args(Reason))


def written(text: str) -> str:
    """``text`` (docs/relevance.md) with the list between the markers replaced."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + listing() + "\n" + text[end:]


def main(argv: list[str]) -> int:
    if "--write" in argv:
        DOC_FILE.write_text(written(DOC_FILE.read_text()))
        return 0
    print(listing())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
