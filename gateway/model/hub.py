"""Fetch an ONNX cross-encoder from the Hugging Face Hub (needs the ``hub`` extra and network).

Many cross-encoder repositories ship an ONNX export beside the PyTorch weights,
at the root or under ``onnx/`` (``onnx/model.onnx``, quantized variants such as
``onnx/model_qint8_avx512.onnx``), and a ``tokenizer.json`` at the root. The
repository's file list decides: MODEL__FILE is looked for at the root, then under
``onnx/``; only that file (with its external data, if any) and the tokenizer are
downloaded. The one boundary for the hub client: its exceptions become
``ModelError`` here, each saying why (network, no such repository, no ONNX file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ModelError

_ONNX_DIRS = ("", "onnx/")
_TOKENIZER = "tokenizer.json"


@dataclass(frozen=True, slots=True)
class HubFiles:
    """What to download from one repository."""

    onnx: str  # path in the repository, e.g. ``onnx/model.onnx``
    tokenizer: str
    extra: tuple[str, ...] = ()  # external weights beside the ONNX graph

    @property
    def all(self) -> list[str]:
        return [self.tokenizer, self.onnx, *self.extra]


def choose_files(hub_id: str, files: Sequence[str], file: str) -> HubFiles:
    """The ONNX file ``file`` (root first, then ``onnx/``) and the tokenizer in a listing."""
    listed = set(files)
    onnx_files = sorted(f for f in listed if f.endswith(".onnx"))
    if not onnx_files:
        raise ModelError(
            f"{hub_id} has no ONNX export (no .onnx file in the repository); export one with"
            f" `rerank-gateway export-model --model {hub_id} --out DIR` and set GATEWAY_MODEL__PATH"
        )
    chosen = next((d + file for d in _ONNX_DIRS if d + file in listed), None)
    if chosen is None:
        raise ModelError(
            f"GATEWAY_MODEL__FILE={file} is not in {hub_id};"
            f" its ONNX files: {', '.join(onnx_files)}"
        )
    folder = chosen[: -len(file)]
    tokenizer = next((t for t in (_TOKENIZER, folder + _TOKENIZER) if t in listed), None)
    if tokenizer is None:
        raise ModelError(f"{hub_id} has no {_TOKENIZER} (the gateway needs a fast tokenizer)")
    # Graphs over 2 GB keep their weights beside them (``model.onnx_data``, ``model.onnx.data``).
    extra = tuple(f for f in (chosen + "_data", chosen + ".data") if f in listed)
    return HubFiles(chosen, tokenizer, extra)


def download(hub_id: str, file: str = "model.onnx") -> Path:
    """Download ``hub_id``'s ONNX export and tokenizer; the local directory to load.

    Without the network (or with ``HF_HUB_OFFLINE=1``) a copy in the local Hub cache
    (``HF_HOME``) is used when there is one.
    """
    try:
        from huggingface_hub import HfApi, constants, errors, hf_hub_download
    except ImportError as exc:
        raise ModelError(
            "GATEWAY_MODEL__PATH is unset and huggingface-hub is not installed: "
            "pip install 'rerank-gateway[hub]' or point GATEWAY_MODEL__PATH at a model directory"
        ) from exc
    try:
        info = HfApi().model_info(hub_id)
    except errors.GatedRepoError as exc:
        raise ModelError(f"{hub_id} is gated on the Hub: accept its terms, set HF_TOKEN") from exc
    except errors.RepositoryNotFoundError as exc:
        raise ModelError(
            f"{hub_id} was not found on the Hub ({_status(exc)}: no such repository,"
            " or a private one that needs HF_TOKEN)"
        ) from exc
    except errors.HfHubHTTPError as exc:
        raise ModelError(f"the Hub answered {_status(exc)} for {hub_id}") from exc
    except Exception as exc:  # transport errors: their types depend on the client's version
        cached = _from_cache(hub_id, file)
        if cached is not None:
            return cached
        raise ModelError(
            f"could not reach the Hugging Face Hub at {constants.ENDPOINT}"
            f" ({type(exc).__name__}) and {hub_id} is not in the local cache"
        ) from exc
    wanted = choose_files(hub_id, [s.rfilename for s in info.siblings or []], file)
    try:
        # The default revision, not info.sha: the cache then records what ``main`` is, and
        # a later start without the network finds the files through it.
        paths = [Path(hf_hub_download(hub_id, name)) for name in wanted.all]
    except errors.HfHubHTTPError as exc:
        raise ModelError(f"the Hub answered {_status(exc)} for a file of {hub_id}") from exc
    except Exception as exc:
        raise ModelError(f"downloading {hub_id} broke off ({type(exc).__name__})") from exc
    return paths[0].parent  # the tokenizer's folder: the ONNX file is there or under onnx/


def _status(exc: Any) -> str:
    response = getattr(exc, "response", None)
    return str(getattr(response, "status_code", None) or "an error")


def _from_cache(hub_id: str, file: str) -> Path | None:
    """A previously downloaded copy of the repository, if the cache holds a usable one."""
    from huggingface_hub import snapshot_download

    patterns = [_TOKENIZER, *(d + file for d in _ONNX_DIRS), f"onnx/{_TOKENIZER}"]
    try:
        local = Path(snapshot_download(hub_id, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not cached (the client raises several types for that)
        return None
    for folder in (local, local / "onnx"):
        if (folder / _TOKENIZER).is_file() and any(
            (folder / d / file).is_file() for d in ("", "onnx")
        ):
            return folder
    return None


def locate_onnx(directory: Path, file: str, named: str | None = None) -> Path:
    """MODEL__FILE inside a model directory (its root or ``onnx/``); no other file stands in.

    ``named`` is how the error calls the file (default ``GATEWAY_MODEL__FILE=<file>``)."""
    for candidate in (directory / file, directory / "onnx" / file):
        if candidate.is_file():
            return candidate
    present = sorted(str(p.relative_to(directory)) for p in directory.glob("**/*.onnx"))
    found = f"; it has {', '.join(present)}" if present else "; it has no .onnx file"
    named = named or f"GATEWAY_MODEL__FILE={file}"
    raise ModelError(f"{named} is not in {directory}{found}")
