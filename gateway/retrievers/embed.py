"""The query embedder hook: the retriever tree asks it for ``query_vector_builder`` vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class QueryEmbedder(Protocol):
    """Turns query texts into vectors (a bi-encoder); one vector per text, in order."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
