"""A directory of trained rankers: what was trained, on which data, how well, which serves.

::

    <root>/<name>/<revision>/meta.json   name, revision, kind, features, data window,
                                         metrics, created (written last: a revision
                                         without it is unfinished and ignored)
    <root>/<name>/<revision>/model.*     the model (``ranker.MODEL_FILE``)
    <root>/<name>/<revision>/model/      a fine-tuned cross-encoder (kind ``cross-encoder``):
                                         an ONNX model directory the gateway serves
                                         (``MODEL__PATH``; ``gateway.offline.fine_tune``)
    <root>/<name>/serving                the revision that serves (promote / roll back)
    <root>/<name>/journal.jsonl          every step, appended: register, promote,
                                         rollback, canary stages (who reads the log
                                         can undo any of them)

Revisions are ``r<N>`` in order of registration. A profile names ``name`` (the
serving revision) or ``name@r<N>``; ``fingerprint`` (``ltr:name@rN``) goes wherever
the ranking that a cache holds depends on the learned model. A cross-encoder's
fingerprint (``ce:name@rN``) is written into its model directory
(``registry.json``), and the ONNX backend adds it to the score cache fingerprint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from gateway.learning import ranker as ranking
from gateway.learning.ranker import Kind, Ranker

META = "meta.json"
CROSS_ENCODER = "cross-encoder"  # the kind of a fine-tuned model directory
SERVING = "serving"
JOURNAL = "journal.jsonl"


class RegistryError(Exception):
    """A name or revision the registry does not have (or cannot read)."""


class Artefact(Protocol):
    """What registration needs of a trained model: a ``Ranker`` or a model directory."""

    @property
    def kind(self) -> str: ...

    @property
    def feature_names(self) -> Sequence[str]: ...

    def save(self, directory: Path) -> Path: ...


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    revision: str
    kind: str  # ranker.Kind or CROSS_ENCODER
    features: list[str]
    data_window: dict[str, float]  # {"from": ts, "to": ts} of the training sessions
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.name, self.revision, self.kind)


def fingerprint(name: str, revision: str, kind: str = "lightgbm") -> str:
    return f"{'ce' if kind == CROSS_ENCODER else 'ltr'}:{name}@{revision}"


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith(".") or "@" in name:
            raise RegistryError(f"bad model name [{name}]")
        return self.root / name

    def revisions(self, name: str) -> list[str]:
        base = self._dir(name)
        found = [p.name for p in base.glob("r*") if (p / META).is_file()] if base.is_dir() else []
        return sorted(found, key=lambda r: int(r[1:]) if r[1:].isdigit() else -1)

    def register(
        self,
        name: str,
        model: Artefact,
        *,
        data_window: dict[str, float],
        metrics: dict[str, Any],
        params: dict[str, Any] | None = None,
    ) -> Entry:
        base = self._dir(name)
        base.mkdir(parents=True, exist_ok=True)
        taken = [int(p.name[1:]) for p in base.glob("r*") if p.name[1:].isdigit()]
        revision = f"r{max(taken, default=0) + 1}"
        target = base / revision
        target.mkdir()
        model.save(target)
        entry = Entry(
            name,
            revision,
            model.kind,
            list(model.feature_names),
            dict(data_window),
            dict(metrics),
            dict(params or {}),
            time.time(),
        )
        tmp = target / (META + ".tmp")
        tmp.write_text(json.dumps(asdict(entry), indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, target / META)
        self.log(name, "register", revision=revision, metrics=metrics)
        return entry

    def entry(self, name: str, revision: str | None = None) -> Entry:
        revision = revision or self.serving(name)
        if revision is None:
            raise RegistryError(f"model [{name}] has no serving revision")
        path = self._dir(name) / revision / META
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"model [{name}@{revision}] is not in the registry") from exc
        return Entry(**meta)

    def load(self, ref: str) -> tuple[Entry, Ranker]:
        """``name`` (its serving revision) or ``name@rN`` → its entry and its model."""
        name, _, revision = ref.partition("@")
        entry = self.entry(name, revision or None)
        if entry.kind == CROSS_ENCODER:
            raise RegistryError(
                f"model [{ref}] is a cross-encoder: serve its directory"
                f" (GATEWAY_MODEL__PATH={self.model_dir(ref)})"
            )
        try:
            model = ranking.load(
                self._dir(name) / entry.revision, cast(Kind, entry.kind), entry.features
            )
        except (OSError, ValueError) as exc:
            raise RegistryError(f"model [{ref}] cannot be read: {type(exc).__name__}") from exc
        return entry, model

    def model_dir(self, ref: str) -> Path:
        """The model directory of a fine-tuned cross-encoder (``name`` or ``name@rN``)."""
        name, _, revision = ref.partition("@")
        entry = self.entry(name, revision or None)
        if entry.kind != CROSS_ENCODER:
            raise RegistryError(f"model [{ref}] is a {entry.kind} ranker, not a model directory")
        return self._dir(name) / entry.revision / "model"

    def serving(self, name: str) -> str | None:
        path = self._dir(name) / SERVING
        text = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
        return text or None

    def set_serving(self, name: str, revision: str | None, *, action: str, **details: Any) -> None:
        """Point ``serving`` at ``revision`` (None: nothing serves) and journal the step."""
        if revision is not None and revision not in self.revisions(name):
            raise RegistryError(f"model [{name}@{revision}] is not in the registry")
        before = self.serving(name)
        base = self._dir(name)
        tmp = base / (SERVING + ".tmp")
        tmp.write_text(revision or "", encoding="utf-8")
        os.replace(tmp, base / SERVING)
        self.log(name, action, revision=revision, previous=before, **details)

    def log(self, name: str, action: str, **details: Any) -> None:
        base = self._dir(name)
        base.mkdir(parents=True, exist_ok=True)
        record = {"ts": time.time(), "action": action, **details}
        with (base / JOURNAL).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def journal(self, name: str) -> list[dict[str, Any]]:
        path = self._dir(name) / JOURNAL
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
