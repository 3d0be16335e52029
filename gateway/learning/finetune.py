"""Fine-tune the cross-encoder itself from judgments: labels → ranked lists → trainer → weights.

::

    judgments (clicks or qrels) ─► examples: per query, its judged documents and
    candidates (the window the gateway reranked) as one list with labels
    ─► sentence-transformers' CrossEncoderTrainer, listwise LambdaLoss (NDCG-Loss2++)
       or pointwise binary cross-entropy, on the CPU (or a GPU when torch sees one)
    ─► a Hugging Face directory (``AutoModelForSequenceClassification``), which
       ``gateway.model.export`` turns into the gateway's ONNX layout

Candidates that carry no judgment count as not relevant (label 0): with qrels this is
the usual assumption (sparse judgments make it noisy); with click labels every shown
document has an estimate, so the lists are the windows as the users saw them.

The starting weights are a directory (``--start``: a Hugging Face or
sentence-transformers folder; no default). A bi-encoder folder such as the stand-in
``all-MiniLM-L6-v2`` loads as ``CrossEncoder(dir, num_labels=1)``: the encoder's
weights plus a randomly initialised scoring head, so the first steps train the head.

Needs the ``finetune`` extra (torch, sentence-transformers, datasets, accelerate);
imported lazily, so the rest of ``gateway.learning`` runs without them.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Loss = Literal["lambda", "bce"]
LOSSES: tuple[Loss, ...] = ("lambda", "bce")


@dataclass(frozen=True, slots=True)
class Example:
    """One query's list: documents (texts) and their labels (≥ 0, higher is better)."""

    query: str
    docs: tuple[str, ...]
    labels: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class TuneSettings:
    start: Path  # starting weights (a local directory; never fetched)
    max_length: int = 256  # tokens per (query, document) pair in training
    loss: Loss = "lambda"
    list_size: int = 8  # documents per query list (positives first, then negatives)
    batch_size: int = 4  # lists per step (list_size × batch_size pairs)
    learning_rate: float = 2e-5
    epochs: float = 1.0
    max_steps: int = -1  # > 0: stop after this many steps
    max_train_s: float | None = None  # wall-clock budget for the training loop
    warmup_ratio: float = 0.1
    seed: int = 0
    threads: int | None = None  # torch intra-op threads (None: torch's default)


@dataclass(frozen=True, slots=True)
class TuneReport:
    steps: int
    seconds: float
    train_loss: float
    pairs_seen: int
    stopped_by_budget: bool


def examples(
    labels: Mapping[str, Mapping[str, float]],
    texts: Mapping[str, str],
    candidates: Mapping[str, Sequence[str]],
    *,
    list_size: int = 8,
    seed: int = 0,
) -> list[Example]:
    """Lists for the queries with at least one positive and one negative document.

    ``labels``: query text → doc → label; ``candidates``: query text → the docs shown
    (same keys; missing: the query's judged docs only); ``texts``: doc → passage.
    Positives (label > 0) come first, best first; the list is filled with judged
    zeros, then with unjudged candidates in their shown order, up to ``list_size``.
    Documents without a text are left out. The order of the queries is shuffled
    (seeded)."""
    out: list[Example] = []
    for query in sorted(labels):
        judged = {d: max(0.0, float(v)) for d, v in labels[query].items() if d in texts}
        positives = sorted((d for d, v in judged.items() if v > 0), key=lambda d: -judged[d])
        zeros = [d for d, v in judged.items() if v <= 0]
        shown = [d for d in candidates.get(query, ()) if d in texts and d not in judged]
        docs = positives[: max(1, list_size - 1)]
        kept = len(docs)
        docs.extend([*zeros, *shown][: list_size - kept])
        if not positives or len(docs) == kept:
            continue
        out.append(
            Example(query, tuple(texts[d] for d in docs), tuple(judged.get(d, 0.0) for d in docs))
        )
    random.Random(seed).shuffle(out)
    return out


def _dataset(items: Sequence[Example], loss: Loss) -> Any:
    from datasets import Dataset

    if loss == "lambda":
        return Dataset.from_dict(
            {
                "query": [e.query for e in items],
                "docs": [list(e.docs) for e in items],
                "labels": [list(e.labels) for e in items],
            }
        )
    rows = [
        (e.query, d, 1.0 if y > 0 else 0.0)
        for e in items
        for d, y in zip(e.docs, e.labels, strict=True)
    ]
    return Dataset.from_dict(
        {"query": [r[0] for r in rows], "doc": [r[1] for r in rows], "label": [r[2] for r in rows]}
    )


def load_start(settings: TuneSettings) -> Any:
    """``CrossEncoder(start, num_labels=1)`` on the CPU unless torch sees a GPU."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    if settings.threads:
        torch.set_num_threads(settings.threads)
    if not (settings.start / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in the starting weights {settings.start}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return CrossEncoder(
        str(settings.start),
        num_labels=1,
        max_length=settings.max_length,
        device=device,
        local_files_only=True,
    )


def _steps(n: int, per_step: int, settings: TuneSettings) -> int:
    """Optimizer steps the trainer will take (without a time budget)."""
    if settings.max_steps > 0:
        return settings.max_steps
    return math.ceil(math.ceil(n / per_step) * settings.epochs)


def fine_tune(items: Sequence[Example], settings: TuneSettings, out_dir: Path) -> TuneReport:
    """Train on ``items`` and save the weights (Hugging Face layout) into ``out_dir``."""
    if not items:
        raise ValueError("no training lists: no query has a positive and a negative document")
    import torch
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        losses,
    )
    from transformers import TrainerCallback

    torch.manual_seed(settings.seed)
    model = load_start(settings)
    if settings.loss == "lambda":
        loss: Any = losses.LambdaLoss(
            model, mini_batch_size=settings.batch_size * settings.list_size
        )
        per_step = settings.batch_size
    else:
        loss = losses.BinaryCrossEntropyLoss(model)
        per_step = settings.batch_size * settings.list_size
    started = time.perf_counter()
    budget = settings.max_train_s

    class Budget(TrainerCallback):  # type: ignore[misc,unused-ignore]  # Any without transformers
        stopped = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if budget is not None and time.perf_counter() - started >= budget:
                Budget.stopped = True
                control.should_training_stop = True
            return control

    with tempfile.TemporaryDirectory(prefix="finetune-") as scratch:  # trainer's output_dir
        args = CrossEncoderTrainingArguments(
            output_dir=scratch,
            num_train_epochs=settings.epochs,
            max_steps=settings.max_steps,
            per_device_train_batch_size=per_step,
            learning_rate=settings.learning_rate,
            warmup_steps=math.ceil(settings.warmup_ratio * _steps(len(items), per_step, settings)),
            seed=settings.seed,
            data_seed=settings.seed,
            save_strategy="no",
            report_to="none",
            logging_steps=10,
            dataloader_num_workers=0,
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = CrossEncoderTrainer(
            model=model,
            args=args,
            train_dataset=_dataset(items, settings.loss),
            loss=loss,
            callbacks=[Budget()],
        )
        result = trainer.train()
    model.save_pretrained(str(out_dir))
    steps = int(result.global_step)
    pairs = steps * settings.batch_size * settings.list_size
    return TuneReport(
        steps, time.perf_counter() - started, float(result.training_loss), pairs, Budget.stopped
    )
