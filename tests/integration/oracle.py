"""What the model itself says: the order a reranked page must have, computed directly.

Shared by the integration tests that put the gateway in front of a real search
server: the candidates come straight from the server (same body, ``size`` =
window), the scores from ``OnnxCrossEncoder`` called directly, without the gateway's
batcher, cache or merge in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import ModelSettings

FIELDS = ("title", "text")


def load_model(model_dir: Path) -> OnnxCrossEncoder:
    return OnnxCrossEncoder(model_dir, ModelSettings(path=model_dir, intra_op_threads=2))


def hit_text(hit: Mapping[str, Any]) -> str:
    source = hit.get("_source") or {}
    return " ".join(str(source[f]).strip() for f in FIELDS if source.get(f)).strip()


def model_scores(encoder: OnnxCrossEncoder, query: str, hits: Sequence[Mapping[str, Any]]) -> Any:
    pairs = [(query, hit_text(h)) for h in hits]
    return encoder.score(encoder.encode(pairs))


def model_order(
    encoder: OnnxCrossEncoder, query: str, hits: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Hit ids by descending model score (ties keep the server's order)."""
    scores = model_scores(encoder, query, hits)
    return [str(hits[i]["_id"]) for i in np.argsort(-scores, kind="stable")]


def ids(response: Mapping[str, Any]) -> list[str]:
    return [str(h["_id"]) for h in response["hits"]["hits"]]
