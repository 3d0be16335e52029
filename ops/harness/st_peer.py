"""The best peer of issue 16: sentence-transformers with ``backend="openvino"`` on the same
weights, as a team would run it (OpenVINO's default CPU configuration, its own batching
and padding), scoring pairs as the stand-in's head does (cosine of the two embeddings).

It runs in *another* Python (``--st-python``), because ``optimum-intel`` pins torch and
transformers releases that the project's own environment does not take::

    python3 -m venv /tmp/st && /tmp/st/bin/pip install -c <(echo torch==2.13.0) \\
        torch==2.13.0 'optimum-intel[openvino]' sentence-transformers
    /tmp/st/bin/pip uninstall -y torchvision   # PyPI's build fails to import beside it

Reads ``{"weights": DIR, "pairs": [[q, d], ...], "batch": N, "threads": N, "repeats": N}``
on stdin; writes ``{"pairs_per_s": [...], "scores": [...]}`` on stdout. Imports nothing
from the gateway.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    job = json.load(sys.stdin)
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(job["threads"])
    model = SentenceTransformer(
        job["weights"],
        backend="openvino",
        device="cpu",
        model_kwargs={"ov_config": {"INFERENCE_NUM_THREADS": job["threads"]}},
    )
    model.max_seq_length = job.get("max_length", 256)
    queries = [q for q, _ in job["pairs"]]
    docs = [d for _, d in job["pairs"]]

    def score() -> np.ndarray:
        kw = {"batch_size": job["batch"], "normalize_embeddings": True}
        q = model.encode(queries, **kw)
        d = model.encode(docs, **kw)
        out: np.ndarray = 20.0 * ((q * d).sum(-1) - 0.5)  # the stand-in's pair head
        return out

    score()  # warm-up
    rates = []
    for _ in range(job["repeats"]):
        started = time.perf_counter()
        scores = score()
        rates.append(len(queries) / (time.perf_counter() - started))
    json.dump({"pairs_per_s": rates, "scores": [float(s) for s in scores]}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
