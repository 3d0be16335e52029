"""The embedder against the real model: its vectors are the pair model's embeddings."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gateway.errors import ModelError
from gateway.model.embedder import SENTENCE_OUTPUT, OnnxEmbedder, PairModelError
from gateway.model.embedder_export import cache_path, load_embedder
from gateway.model.onnx import OnnxCrossEncoder
from gateway.settings import EmbedderSettings, ModelSettings

pytestmark = pytest.mark.integration

QUERY = "How many people live in Berlin?"
PASSAGES = [
    "Berlin has a population of about 3.7 million people.",
    "Berlin is known for its museums, including the Pergamon Museum.",
    "The Eiffel Tower is in Paris.",
    "",
]


@pytest.fixture(scope="module")
def embedder(model_dir: Path, embedder_cache: str) -> OnnxEmbedder:
    return load_embedder(EmbedderSettings(path=model_dir, cache_dir=embedder_cache))


def test_cosine_of_two_embeddings_is_the_pair_models_score(
    model_dir: Path, embedder: OnnxEmbedder
) -> None:
    """The pair model's logit is 20 * (cosine - 0.5) of the two texts' embeddings."""
    # fp32 on both sides: the embedder is cut from the fp32 graph.
    reranker = OnnxCrossEncoder(model_dir, ModelSettings(path=model_dir, quantization="none"))
    logits = reranker.score(reranker.encode([(QUERY, p) for p in PASSAGES]))
    vectors = embedder.embed_sync([QUERY, *PASSAGES])
    cosines = vectors[1:] @ vectors[0]
    np.testing.assert_allclose(cosines, logits / 20 + 0.5, atol=1e-4)
    assert cosines[0] > cosines[1] > cosines[2]  # the relevant passage is nearest


async def test_embed_gives_unit_vectors_in_order_across_batches(
    model_dir: Path, embedder_cache: str
) -> None:
    small = load_embedder(EmbedderSettings(path=model_dir, cache_dir=embedder_cache, batch_size=2))
    texts = [QUERY, *PASSAGES, "one more text"]
    vectors = await small.embed(texts)
    assert len(vectors) == len(texts) and {len(v) for v in vectors} == {small.dims} == {384}
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = small.embed_sync(["one more text"])[0]
    np.testing.assert_allclose(vectors[-1], alone, atol=1e-5)  # batching does not change it
    assert await small.embed([]) == []
    small.close()


def test_a_pair_model_is_cut_into_the_cache_and_the_model_dir_is_only_read(
    model_dir: Path, tmp_path: Path
) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    with pytest.raises(PairModelError):
        OnnxEmbedder(model_dir, EmbedderSettings(path=model_dir))
    cache = tmp_path / "cache"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.model.embedder_export",
            "--source",
            str(model_dir),
            "--cache-dir",
            str(cache),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cut = Path(out.stdout.strip())
    assert cut == cache_path(model_dir, "model.onnx", str(cache))
    assert sorted(p.name for p in cut.iterdir()) == [
        "embedder.json",
        "model.onnx",
        "tokenizer.json",
    ]
    assert stat.S_IMODE(cut.stat().st_mode) & 0o055 == 0o055  # readable by others
    embedder = load_embedder(EmbedderSettings(path=model_dir, cache_dir=str(cache)))
    assert embedder.model_file == cut / "model.onnx"
    assert [o.name for o in embedder._session.get_outputs()] == [SENTENCE_OUTPUT]
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_a_model_without_embedding_outputs_is_refused(tmp_path: Path, model_dir: Path) -> None:
    import onnx

    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["input_ids"], ["scores"])],
        "g",
        [
            onnx.helper.make_tensor_value_info(n, onnx.TensorProto.INT64, ["b", "s"])
            for n in ("input_ids", "attention_mask")
        ],
        [onnx.helper.make_tensor_value_info("scores", onnx.TensorProto.INT64, ["b", "s"])],
    )
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "model.onnx"))
    os.symlink(model_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(ModelError, match="none of the outputs"):
        OnnxEmbedder(tmp_path, EmbedderSettings(path=tmp_path))


def test_token_outputs_are_mean_pooled_over_the_mask_and_normalised(
    tmp_path: Path, model_dir: Path
) -> None:
    """A model that outputs ``last_hidden_state`` [b, s, 2] = (token id, 1) per token."""
    import onnx
    from onnx import TensorProto, helper
    from tokenizers import Tokenizer

    nodes = [
        helper.make_node(
            "Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [1], [2])
        ),
        helper.make_node("Unsqueeze", ["input_ids", "axes"], ["ids3"]),
        helper.make_node("Cast", ["ids3"], ["idf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["idf", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "one"], ["ones"]),
        helper.make_node("Concat", ["idf", "ones"], ["last_hidden_state"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"])
            for n in ("input_ids", "attention_mask")
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s", 2])],
        [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        ],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
        str(tmp_path / "model.onnx"),
    )
    os.symlink(model_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    embedder = OnnxEmbedder(tmp_path, EmbedderSettings(path=tmp_path))
    texts = ["a short one", "a somewhat longer text than the first"]  # padding in row 0
    got = embedder.embed_sync(texts)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    for row, text in zip(got, texts, strict=True):
        pooled = np.array([np.mean(tok.encode(text).ids), 1.0])
        np.testing.assert_allclose(row, pooled / np.linalg.norm(pooled), rtol=1e-6)
    assert embedder.dims == 2
