"""The query/document embedder (a bi-encoder) and who runs a search's ``retriever`` tree
(docs/retrievers.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.settings.base import CommaList, ModelDir, Section


class EmbedderSettings(Section):
    """The query/document embedder (a bi-encoder): its own model, never MODEL__*'s."""

    path: ModelDir = Field(
        None,
        description=(
            "Directory with an embedding ONNX (output `sentence_embedding`, or"
            " `last_hidden_state` mean-pooled here) and `tokenizer.json`; a pair model with a"
            " `query_embedding` output is cut down to its embedding graph in CACHE_DIR."
            " Unset: no embedder (`query_vector_builder` goes upstream unchanged)."
        ),
    )
    file: str = Field("model.onnx", description="ONNX file inside EMBEDDER__PATH.")
    cache_dir: str = Field(
        "~/.cache/rerank-gateway/embedders",
        description=(
            "Where embedding graphs cut from pair models are written (PATH may be read-only)."
        ),
    )
    device: Literal["cpu", "cuda", "openvino"] = Field(
        "cpu", description="Execution provider, as MODEL__DEVICE."
    )
    max_length: int = Field(256, ge=8, le=8192, description="Tokens per text; longer is cut.")
    batch_size: int = Field(32, ge=1, le=4096, description="Texts per model run.")
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads (0: one per physical core)."
    )
    inter_op_threads: int = Field(1, ge=0, description="onnxruntime inter-op threads.")
    model_id: str | None = Field(
        None,
        description=(
            "`query_vector_builder.text_embedding.model_id` the gateway fills with a"
            " `query_vector`; unset: every model id."
        ),
    )
    field: str = Field("embedding", description="Vector field the backfill command fills.")
    text_fields: CommaList = Field(
        default_factory=lambda: ["title", "text"],
        description="Document `_source` fields (dotted paths) joined as the text to embed.",
    )
    max_doc_chars: int = Field(
        4000, gt=0, description="Document text is cut to this many characters before tokenizing."
    )
    write_indices: CommaList = Field(
        default_factory=list,
        description=(
            "Index patterns whose documents written through the gateway (`_doc`, `_create`,"
            " `_update`, `_bulk`) get FIELD embedded from TEXT_FIELDS; empty: none."
        ),
    )


class RetrieverSettings(Section):
    """Who runs a search's `retriever` tree, and how many leaves it may have."""

    run: Literal["gateway", "cluster"] = Field(
        "gateway",
        description=(
            "Who runs a search's `retriever` tree: `gateway` (leaves on the cluster, fusion"
            " and reranking here, with cache and fallback) or `cluster` (sent as is: for an"
            " Elasticsearch cluster with the licence for it; OpenSearch always gets `gateway`)."
        ),
    )
    max_leaves: int = Field(
        16, ge=1, le=256, description="Leaf searches one retriever tree may run (400 above)."
    )
