"""A bi-encoder that turns texts into vectors: query vectors for kNN, document vectors for
the backfill.

Its model is a setting of its own (EMBEDDER__*), loaded by the reranker's code
(``onnx.open_session``: device, providers, threads, graph optimization). The model
gives either ``sentence_embedding`` (pooled by the graph) or ``last_hidden_state`` /
``token_embeddings``, mean-pooled over the attention mask and L2-normalised here, as
sentence-transformers does. A pair model whose graph also outputs the query side's
embedding (``query_embedding``) is cut down to that part first
(``gateway.model.embedder_export``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from gateway.errors import ModelError
from gateway.model.hub import locate_onnx
from gateway.model.onnx import open_session, run_session
from gateway.model.variants import file_digest
from gateway.settings import EmbedderSettings, OnnxModel, SpeedSettings

log = logging.getLogger(__name__)

SENTENCE_OUTPUT = "sentence_embedding"
TOKEN_OUTPUTS = ("last_hidden_state", "token_embeddings")
PAIR_OUTPUT = "query_embedding"  # all-minilm-l6-v2-pair: the first segment's embedding

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """What the search pipeline and the backfill need of an embedder."""

    @property
    def dims(self) -> int:
        """Length of every vector."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order."""
        ...


class PairModelError(ModelError):
    """The ONNX file is a pair model: its embedding graph must be cut out first."""


class OnnxEmbedder:
    """``model.onnx`` (EMBEDDER__FILE) + ``tokenizer.json`` from a directory.

    ``embed_sync`` runs in the calling thread; ``embed`` runs it on one worker thread of
    the embedder's own, so model runs never overlap (onnxruntime uses the cores itself).
    """

    def __init__(
        self, directory: Path, settings: EmbedderSettings, speed: SpeedSettings | None = None
    ) -> None:
        self.settings = settings
        model_file = locate_onnx(directory, settings.file)
        tokenizer_file = directory / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelError(f"no tokenizer.json in {directory}")
        try:
            self._tok = Tokenizer.from_file(str(tokenizer_file))
            self._tok.no_padding()
            self._tok.enable_truncation(settings.max_length)
        except Exception as exc:  # tokenizers raises plain Exception types
            raise ModelError(f"could not load tokenizer from {directory}") from exc
        self._session = open_session(
            model_file,
            as_model_settings(directory, settings),
            speed or SpeedSettings.model_validate({}),
            section="EMBEDDER",
        )
        outputs = {o.name: o for o in self._session.get_outputs()}
        if SENTENCE_OUTPUT in outputs:
            self._output, self._pool = SENTENCE_OUTPUT, False
        elif found := [name for name in TOKEN_OUTPUTS if name in outputs]:
            self._output, self._pool = found[0], True
        elif PAIR_OUTPUT in outputs:
            raise PairModelError(
                f"{model_file} is a pair model: cut its embedding graph out with "
                "`python -m gateway.model.embedder_export`"
            )
        else:
            raise ModelError(
                f"{model_file.name} has none of the outputs {SENTENCE_OUTPUT}, "
                f"{', '.join(TOKEN_OUTPUTS)}"
            )
        self._inputs = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= self._inputs:
            raise ModelError(f"{model_file.name} lacks input_ids / attention_mask inputs")
        shape = outputs[self._output].shape
        self._dims = shape[-1] if isinstance(shape[-1], int) else None
        self._fingerprint = file_digest(model_file, tokenizer_file)[:32]
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="embedder")
        self.model_file = model_file
        log.info("embedder loaded: %s (output %s)", model_file, self._output)

    @property
    def dims(self) -> int:
        if self._dims is None:  # a graph without a static width: ask the model once
            self._dims = int(self.embed_sync([""]).shape[1])
        return self._dims

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._executor, self.embed_sync, list(texts))
        out: list[list[float]] = vectors.tolist()
        return out

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """``[len(texts), dims]`` float32, rows L2-normalised; batches of BATCH_SIZE."""
        size = self.settings.batch_size
        parts = [self._batch(texts[i : i + size]) for i in range(0, len(texts), size)]
        if not parts:
            return np.zeros((0, self._dims or 0), dtype=np.float32)
        return np.concatenate(parts)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def inputs(self, texts: Sequence[str]) -> dict[str, Any]:
        """The padded model input of one batch of texts."""
        try:
            encodings = self._tok.encode_batch(list(texts))
        except Exception as exc:
            raise ModelError(f"tokenization failed: {type(exc).__name__}") from exc
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feed: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        return feed

    def _batch(self, texts: Sequence[str]) -> Vectors:
        feed = self.inputs(texts)
        mask = feed["attention_mask"]
        (out,) = run_session(self._session, [self._output], feed)
        vectors = np.asarray(out, dtype=np.float32)
        if self._pool:
            weights = mask[:, :, None].astype(np.float32)
            vectors = (vectors * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: Vectors = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit


def as_model_settings(directory: Path, settings: EmbedderSettings) -> OnnxModel:
    """The embedder's settings in the shape the shared session code reads."""
    return OnnxModel.model_validate(
        {
            "path": directory,
            "file": settings.file,
            "device": settings.device,
            "max_length": settings.max_length,
            "intra_op_threads": settings.intra_op_threads,
            "inter_op_threads": settings.inter_op_threads,
        }
    )
