"""The rerank API: the gateway's model as a reranking service other stacks call.

::

    POST /v1/rerank, /v2/rerank   cohere.py   Cohere v2 + Jina (what vLLM serves there too)
    POST /rerank                  tei.py      text-embeddings-inference (ES ``hugging_face``)
                                  core.py     key, body, model/profile, deadline, scoring

Each wire format parses its body into a ``core.Job``; ``core.serve`` checks the
access key, picks the profile (``model``), scores every document through the
same reranker as searches (cache → batcher → model, the profile's deadline)
and answers in the format's shape, errors included. Only ``POST`` is routed:
``GET``/``PUT``/``DELETE /rerank`` stay Elasticsearch's (an index named
``rerank``) and pass through.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web
from pydantic import SecretStr

from gateway.rerank_api import cohere, tei
from gateway.rerank_api.core import CONFIG, ApiConfig, Wire, serve
from gateway.web.state import RERANK_PATHS


def setup_rerank_api(app: web.Application, api_key: SecretStr | None) -> None:
    """Route the rerank API; call it before the passthrough catch-all is added."""
    app[CONFIG] = ApiConfig(api_key)
    formats: dict[str, Wire] = {
        "/v1/rerank": cohere.V1,
        "/v2/rerank": cohere.V2,
        "/rerank": tei.TEI,
    }
    assert set(formats) == set(RERANK_PATHS)
    for path, wire in formats.items():
        app.router.add_post(path, partial(serve, wire=wire))
