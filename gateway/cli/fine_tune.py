"""``rerank-gateway fine-tune``: judgments → a fine-tuned cross-encoder, exported, checked, proven.

Labels from human judgments (qrels) or from the click log (PBM / COEC), lists of
each training query's judged documents and candidates, sentence-transformers'
``CrossEncoderTrainer`` (LambdaLoss or BCE) from local starting weights, export to
the gateway's ONNX layout with its agreement and batch-invariance checks, nDCG@10
against the serving model on held-out queries with a paired randomization test,
then the model registry (kind ``cross-encoder``). See ``gateway.offline.fine_tune``.
Needs the ``finetune`` extra: ``pip install 'rerank-gateway[finetune]'``.

::

    rerank-gateway fine-tune --start WEIGHTS_DIR --corpus corpus.jsonl \\
        --candidates windows.json --qrels train.tsv --queries queries.jsonl \\
        --eval-qrels test.tsv --serving-model SERVING_DIR \\
        --registry models/ --name papers-ce --max-train-s 600
"""

from __future__ import annotations

import argparse
import sys

NAME = "fine-tune"
HELP = "fine-tune the cross-encoder from judgments, export, check and register it"


def configure(parser: argparse.ArgumentParser) -> None:
    from gateway.offline import fine_tune

    fine_tune.configure(parser)


def run(args: argparse.Namespace) -> int:
    from gateway.offline import fine_tune

    try:
        return fine_tune.run(args)
    except ImportError as exc:
        print(
            f"fine-tune: {exc.name} is missing: pip install 'rerank-gateway[finetune]'"
            " (torch, sentence-transformers, datasets, accelerate, onnx)",
            file=sys.stderr,
        )
        return 1
