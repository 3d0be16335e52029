"""A search request read once: what the pipeline's stages read of it, each thing read once.

::

    SearchRequest   method, URL and params, index, headers, media type, the raw body,
                    the parsed body (at most once), the opt-in choice, ``ext.rerank``
                    (validated once) and the search's own rerank deadline

The opt-in choice, the body and ``ext.rerank`` are read when a stage first asks
for them (a body the pipeline forwards unread is never parsed), and the 400s
they may raise are those of that first read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from yarl import URL

from gateway.errors import ClientRequestError
from gateway.es import body as es_body
from gateway.search.plan import rerank_option

OPT_HEADER = "X-Rerank"  # on a request: on | off (the answer's header of the same name: outcome)
OPT_PARAM = "rerank"  # ?rerank=true|false, removed before forwarding
TIMEOUT_HEADER = "X-Rerank-Timeout-Ms"  # a search's own rerank deadline (ext.rerank.timeout_ms)
JSON_TYPES = ("application/json", "application/vnd.elasticsearch+json")
NDJSON_TYPES = (
    "application/x-ndjson",
    "application/vnd.elasticsearch+x-ndjson",
    "application/json",
    "application/vnd.elasticsearch+json",
)
# The values of ?rerank= and of the X-Rerank request header (README "What gets reranked").
_CHOICES = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}


class SearchRequest:
    """One ``_search`` / ``_msearch`` request as the pipeline reads it."""

    def __init__(
        self,
        method: str,
        url: URL,
        index: str | None,
        headers: Mapping[str, str],
        raw: bytes,
    ) -> None:
        self.method = method
        self.url = url
        self.index = index
        self.headers = headers
        self.raw = raw
        self.media_type = headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def params(self) -> Mapping[str, str]:
        return self.url.query

    @cached_property
    def choice(self) -> bool | None:
        """The request's explicit choice: True (rerank), False (don't) or None.

        ``?rerank=`` and the ``X-Rerank`` header take the same values (``_CHOICES``,
        any case); a bare ``?rerank`` means true, like ES's flags. Anything else is a
        400. The parameter wins over the header.
        """
        if OPT_PARAM in self.params:
            return _choice(self.params[OPT_PARAM] or "true", f"parameter [{OPT_PARAM}]")
        if OPT_HEADER in self.headers:
            return _choice(self.headers[OPT_HEADER], f"header [{OPT_HEADER}]")
        return None

    @cached_property
    def json(self) -> dict[str, Any] | None:
        """The body as a JSON object (strict: ``body.load_object``), parsed on first use."""
        return es_body.load_object(self.raw)

    @property
    def json_typed(self) -> bool:
        """Whether the body is declared JSON (``Content-Type``)."""
        return self.media_type in JSON_TYPES

    @property
    def ndjson_typed(self) -> bool:
        return self.media_type in NDJSON_TYPES

    @cached_property
    def option(self) -> dict[str, Any]:
        """The validated ``ext.rerank`` of the parsed body ({} when none or unparsed)."""
        return rerank_option(self.json) if self.json is not None else {}

    def for_cluster(self) -> bytes:
        """The body as the cluster should get it: minus ``ext.rerank`` (the cluster rejects
        it), else as sent."""
        if not es_body.may_name_rerank(self.raw) or not (self.json_typed or self.media_type == ""):
            return self.raw
        parsed = self.json
        if parsed is None or not es_body.has_gateway_ext(parsed):
            return self.raw
        return es_body.dump(es_body.strip_gateway_ext(parsed))

    def rewritten(self, body: dict[str, Any]) -> SearchRequest:
        """The same request with ``body`` in place of the one sent (already parsed)."""
        out = SearchRequest(self.method, self.url, self.index, self.headers, es_body.dump(body))
        out.json = body
        return out


def _choice(value: str, where: str) -> bool:
    choice = _CHOICES.get(value.strip().lower())
    if choice is None:
        allowed = ", ".join(f"[{v}]" for v in _CHOICES)
        raise ClientRequestError(
            "illegal_argument_exception",
            f"Failed to parse value [{value}] of {where} as only {allowed} are allowed.",
        )
    return choice


def deadline_ms(option: Mapping[str, Any], headers: Mapping[str, str]) -> float | None:
    """A search's own rerank deadline in ms: ``ext.rerank.timeout_ms``, else the header."""
    value: object = option.get("timeout_ms")
    where = "[ext.rerank.timeout_ms]"
    if value is None and TIMEOUT_HEADER in headers:
        where = f"header [{TIMEOUT_HEADER}]"
        try:
            value = float(headers[TIMEOUT_HEADER])
        except ValueError:
            value = "unreadable"
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ClientRequestError(
            "illegal_argument_exception", f"{where} must be a positive number of milliseconds"
        )
    return float(value)
