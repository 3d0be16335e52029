"""Cut a pair model's embedding graph out, into the embedder cache, and load embedders.

``all-minilm-l6-v2-pair`` (the stand-in reranker) is a bi-encoder wrapped as a pair
model: its graph embeds each segment on its own and also outputs the first segment's
mean-pooled, L2-normalised embedding (``query_embedding``). ``onnx.utils.Extractor``
keeps only the nodes that output needs, and the result is saved with that output
renamed ``sentence_embedding``: an ordinary sentence embedder of one text per row.

    python -m gateway.model.embedder_export --source DIR [--file model.onnx] [--cache-dir DIR]

prints the directory of the cut model. The model directory is only read. Needs the
``onnx`` package (extra ``embed``); loading an already cut model does not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from gateway.errors import ModelError
from gateway.model.embedder import (
    PAIR_OUTPUT,
    SENTENCE_OUTPUT,
    OnnxEmbedder,
    PairModelError,
)
from gateway.model.hub import locate_onnx
from gateway.model.variants import file_digest
from gateway.settings import EmbedderSettings, SpeedSettings

_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def cache_path(source: Path, file: str, cache_dir: str) -> Path:
    """Where the cut model of ``source`` lives: named by the source files' digest."""
    model_file = locate_onnx(source, file)
    digest = file_digest(model_file, source / "tokenizer.json")[:16]
    return Path(cache_dir).expanduser() / f"{source.name}-{digest}"


def export(source: Path, file: str, cache_dir: str) -> Path:
    """The cut model's directory, written unless already there (atomically: a rename)."""
    target = cache_path(source, file, cache_dir)
    if (target / "model.onnx").is_file():
        return target
    try:
        import onnx
        from onnx.utils import Extractor
    except ImportError as exc:
        raise ModelError(
            "cutting the embedding graph out of a pair model needs onnx: "
            "pip install 'rerank-gateway[embed]'"
        ) from exc
    model = onnx.load(str(locate_onnx(source, file)))
    outputs = {o.name for o in model.graph.output}
    if PAIR_OUTPUT not in outputs:
        raise ModelError(f"{source} has no {PAIR_OUTPUT} output to cut out")
    inputs = [i.name for i in model.graph.input if i.name in _INPUTS]
    cut = Extractor(model).extract_model(inputs, [PAIR_OUTPUT])
    cut.graph.node.append(onnx.helper.make_node("Identity", [PAIR_OUTPUT], [SENTENCE_OUTPUT]))
    (out,) = cut.graph.output
    out.name = SENTENCE_OUTPUT
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    staging.chmod(0o755)
    try:
        onnx.save(cut, str(staging / "model.onnx"))
        shutil.copyfile(source / "tokenizer.json", staging / "tokenizer.json")
        note = {"source": str(source.resolve()), "file": file, "output": PAIR_OUTPUT}
        (staging / "embedder.json").write_text(json.dumps(note, indent=2) + "\n")
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: its copy is the same
            if not (target / "model.onnx").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_embedder(settings: EmbedderSettings, speed: SpeedSettings | None = None) -> OnnxEmbedder:
    """The configured embedder; a pair model is cut first (or its cut copy reused).

    Blocking (file reads, session build): call from a worker thread.
    """
    if settings.path is None:
        raise ModelError("GATEWAY_EMBEDDER__PATH is unset")
    cut = cache_path(settings.path, settings.file, settings.cache_dir)
    cut_settings = settings.model_copy(update={"file": "model.onnx"})
    if (cut / "model.onnx").is_file():
        return OnnxEmbedder(cut, cut_settings, speed)
    try:
        return OnnxEmbedder(settings.path, settings, speed)
    except PairModelError:
        pass
    return OnnxEmbedder(
        export(settings.path, settings.file, settings.cache_dir), cut_settings, speed
    )


def main(argv: list[str] | None = None) -> int:
    defaults = EmbedderSettings.model_validate({})
    parser = argparse.ArgumentParser(
        prog="python -m gateway.model.embedder_export",
        description="Cut the embedding graph out of a pair model into the embedder cache.",
    )
    parser.add_argument("--source", type=Path, required=True, help="pair model directory")
    parser.add_argument("--file", default=defaults.file, help="ONNX file in it")
    parser.add_argument("--cache-dir", default=defaults.cache_dir, help="embedder cache")
    args = parser.parse_args(argv)
    try:
        print(export(args.source, args.file, args.cache_dir))
    except ModelError as exc:
        print(f"embedder_export: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
