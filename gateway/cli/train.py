"""``rerank-gateway train``: clicks → judgments → a learned second stage, proven, registered.

Sessions from the gateway's event log (or UBI 1.3 records), labels from a click
model (PBM with the examination curve of the interleaved traffic, or COEC), a
time split, LightGBM lambdarank (or a linear pairwise model) over the serving-time
features, nDCG@10 against the serving ranking on held-out judgments with a paired
randomization test, then the model registry. See ``gateway.offline.train``.
Needs ``lightgbm`` for ``--kind lightgbm``: ``pip install 'rerank-gateway[learn]'``.

::

    rerank-gateway train --events events.jsonl --features windows.json \\
        --registry models/ --name papers-ltr --require-better
"""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a learned ranking from click logs and register it"


def configure(parser: argparse.ArgumentParser) -> None:
    from gateway.offline import train

    train.configure(parser)


def run(args: argparse.Namespace) -> int:
    from gateway.offline import train

    return train.run(args)
