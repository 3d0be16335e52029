"""Peers timed beside the gateway's model paths, on the same pairs: PyTorch bf16 autocast
in this process (``ops.harness.peer``), and sentence-transformers' OpenVINO backend in
another Python (``ops.harness.st_peer``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Pairs = list[tuple[str, str]]


@dataclass
class Peer:
    name: str
    batch: int
    run: Any = None  # Pairs -> scores, for an in-process peer
    rates: list[float] = field(default_factory=list)
    scores: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(0))

    def time(self, pairs: Pairs) -> None:
        started = time.perf_counter()
        self.scores = self.run(pairs)
        self.rates.append(len(pairs) / (time.perf_counter() - started))


def pytorch_peer(weights: Path, model_dir: Path, threads: int, batch: int) -> Peer:
    """The same weights in PyTorch, bf16 autocast, length-sorted batches of ``batch``
    (tokenizing included, as a peer has to)."""
    from ops.harness.peer import encode_batches, load_tokenizer, torch_runner

    tok = load_tokenizer(model_dir, 256)
    runner = torch_runner(weights, threads, bf16=True)

    def run(pairs: Pairs) -> np.ndarray[Any, Any]:
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
        feeds = encode_batches(tok, [pairs[i] for i in order], batch)
        scores = np.zeros(len(pairs), dtype=np.float32)
        scores[order] = np.concatenate([runner(feed) for feed in feeds])
        return scores

    peer = Peer("peer: pytorch bf16", batch, run)
    peer.run(pairs=[("warm", "up")])
    return peer


def st_openvino_peer(
    python: Path, weights: Path, pairs: Pairs, *, threads: int, batch: int, repeats: int
) -> Peer:
    """sentence-transformers ``backend="openvino"`` in ``python`` (``ops/harness/st_peer.py``)."""
    job = {
        "weights": str(weights),
        "pairs": pairs,
        "batch": batch,
        "threads": threads,
        "repeats": repeats,
    }
    script = Path(__file__).with_name("st_peer.py")
    done = subprocess.run(
        [str(python), str(script)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"st peer failed: {done.stderr.strip()[-400:]}", file=sys.stderr)
        return Peer("peer: st openvino (failed)", batch, rates=[float("nan")])
    out = json.loads(done.stdout)
    return Peer(
        "peer: st openvino", batch, rates=out["pairs_per_s"], scores=np.array(out["scores"])
    )
