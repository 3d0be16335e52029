"""Models with scripted behaviour, built on ``FakeEncoder`` (deterministic scores).

- ``GatedEncoder`` blocks on documents containing ``slow`` until ``gate`` is set (a stuck run);
- ``RecordingEncoder`` remembers the token lengths of every batch it ran;
- ``FailingEncoder`` passes the one-pair warm-up and fails every search;
- ``FakeEmbedder`` embeds a text as [its length, its count of spaces] and records each call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from gateway.errors import ModelError
from gateway.model.base import Encoded, Scores
from gateway.model.fake import FakeEncoder


class GatedEncoder(FakeEncoder):
    """Blocks on documents containing ``slow`` until ``gate`` is set (a stuck model run);
    ``stuck`` is set once a run waits on the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.stuck = threading.Event()
        self.slow_id = FakeEncoder().encode([("", "slow")])[0].ids[2]

    def score(self, batch: Sequence[Encoded]) -> Scores:
        if any(self.slow_id in e.ids.tolist() for e in batch):
            self.stuck.set()
            self.gate.wait(10)
        return super().score(batch)


class RecordingEncoder(FakeEncoder):
    """Remembers the token lengths of every batch it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[int]] = []

    def score(self, batch: Sequence[Encoded]) -> Scores:
        self.batches.append([len(e) for e in batch])
        return super().score(batch)


class FailingEncoder(FakeEncoder):
    def score(self, batch: Any) -> Scores:
        if len(batch) > 1:  # the one-pair warm-up passes, searches fail
            raise RuntimeError("model broke")
        return super().score(batch)


class FakeEmbedder:
    """A text's vector: [its length, its count of spaces]; records each call."""

    dims = 2

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        if self.fail:
            raise ModelError("inference failed: RuntimeError")
        return [[float(len(t)), float(t.count(" "))] for t in texts]
