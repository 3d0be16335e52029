"""The Open Inference Protocol v2 (Triton, KServe) as a protocol of the scoring pool.

``MODEL__BACKEND=pool``, ``MODEL__POOL_PROTOCOL=oip``, ``MODEL__POOL_URLS`` the
servers' roots (``http://triton-a:8000,http://triton-b:8000``), ``MODEL__POOL_MODEL``
the served model's name, ``MODEL__OIP_VERSION`` its version (unset: the server
picks). Each part the pool sends (pairs of one query) is one JSON call::

    POST {url}/v2/models/{name}[/versions/{v}]/infer
    {"inputs": [{"name", "shape", "datatype", "data"}, ...], "outputs": [{"name": <output>}]}
    → {"outputs": [{"name", "shape", "datatype", "data"}, ...], ...}

with data flattened in row-major order (the spec allows flat or nested; nested
answers are read too). ``MODEL__OIP_INPUTS`` picks the deployment's shape, and
``MODEL__OIP_TENSORS`` renames tensors (``settings.OIP_ROLES`` holds the defaults):

- ``tokens``: a bare ONNX model (Triton's onnxruntime backend). The gateway
  tokenizes with MODEL__PATH's ``tokenizer.json`` exactly as in process, and sends
  INT64 ``input_ids``, ``attention_mask`` and ``token_type_ids`` of shape
  ``[n, width]``, padded to the part's longest pair (an empty name drops one);
  the scores then equal in-process scoring;
- ``text``: a model that tokenizes itself (python backend, ensemble with a
  tokenizer): BYTES ``query`` ``[1]`` and ``documents`` ``[n]``;
- ``pairs``: the same, as one BYTES ``[n, 2]`` tensor of (query, document) rows.

The output tensor (``logits``) must be FP32, FP64 or FP16 of shape ``[n]``,
``[n, 1]`` or ``[n, 2]`` (two classes: relevant minus irrelevant, as in process);
``MODEL__OIP_OUTPUT=probability`` turns a sigmoid (or softmax) back into the logit.
Anything else (another shape or datatype, no such output, a non-200 answer with
its ``{"error"}``, a refused or timed-out call) is a ``BackendError`` here, the
one boundary of this protocol: the pool fails the part over, opens the backend's
breaker, and with every backend failing raises ``ModelError``, so the search
degrades as with a broken local model.

At start, the model metadata (``GET /v2/models/{name}[/versions/{v}]``) of each
backend that answers must have the inputs and output the map names, of the
right datatypes (``ModelError`` otherwise: a misnamed tensor would fail every
call). A backend whose breaker is open is probed with ``GET /v2/health/ready`` and
``GET /v2/models/{name}[/versions/{v}]/ready`` (200, and no ``"ready": false``)
rather than a rerank call. Only JSON is used (not Triton's binary tensor
extension), so any compliant server answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import numpy as np
import numpy.typing as npt

from gateway.errors import ModelError
from gateway.model.base import Encoded, Pair
from gateway.model.pairs import PairTokenizer
from gateway.model.pool import Backend, BackendError, PoolCrossEncoder
from gateway.model.tei import TextPair
from gateway.settings import OIP_ROLES, PoolModel

log = logging.getLogger(__name__)

_FLOAT_TYPES = frozenset({"FP32", "FP64", "FP16"})
_P_EDGE = 1e-15  # probabilities of 0 or 1 exactly: the logit is cut to about ±34.5
_INPUTS = {
    "tokens": ("input_ids", "attention_mask", "token_type_ids"),
    "text": ("query", "documents"),
    "pairs": ("pairs",),
}


@dataclass(frozen=True, slots=True)
class TensorMap:
    """What the model takes and gives: the input layout, tensor names, output scale."""

    inputs: str  # tokens | text | pairs
    names: dict[str, str]  # role → tensor name ("" : not sent)
    probability: bool = False

    @classmethod
    def from_settings(cls, settings: PoolModel) -> TensorMap:
        names = {**OIP_ROLES, **settings.oip_tensors}
        # token_type_ids (and, rarely, attention_mask) may be absent from a model
        needed = ("input_ids",) if settings.oip_inputs == "tokens" else _INPUTS[settings.oip_inputs]
        needed = (*needed, "output")
        empty = [role for role in needed if not names[role]]
        if empty:
            raise ModelError(f"MODEL__OIP_TENSORS gives no name to {', '.join(empty)}")
        return cls(settings.oip_inputs, names, settings.oip_output == "probability")

    @property
    def output(self) -> str:
        return self.names["output"]

    def describe(self) -> str:
        """The map as text (for the fingerprint and logs)."""
        sent = {role: self.names[role] for role in (*_INPUTS[self.inputs], "output")}
        return json.dumps([self.inputs, sent, self.probability], sort_keys=True)


def _tensor(name: str, datatype: str, array: npt.NDArray[Any]) -> dict[str, Any]:
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "data": array.reshape(-1).tolist(),
    }


def infer_body(tensors: TensorMap, part: Sequence[TextPair]) -> dict[str, Any]:
    """The ``/infer`` request for one part (pairs of one query, ids set for ``tokens``)."""
    names = tensors.names
    if tensors.inputs == "tokens":
        width = max(len(pair) for pair in part)
        ids = np.zeros((len(part), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, pair in enumerate(part):
            n = len(pair)
            ids[row, :n] = pair.ids
            types[row, :n] = pair.type_ids
            mask[row, :n] = 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        inputs = [_tensor(names[r], "INT64", a) for r, a in arrays.items() if names[r]]
    elif tensors.inputs == "text":
        query = np.array([part[0].query], dtype=object)
        documents = np.array([pair.text for pair in part], dtype=object)
        inputs = [
            _tensor(names["query"], "BYTES", query),
            _tensor(names["documents"], "BYTES", documents),
        ]
    else:
        rows = np.array([[pair.query, pair.text] for pair in part], dtype=object)
        inputs = [_tensor(names["pairs"], "BYTES", rows)]
    return {"inputs": inputs, "outputs": [{"name": tensors.output}]}


def output_logits(tensors: TensorMap, answer: Any, n: int) -> list[float]:
    """One logit per pair, in request order, from an ``/infer`` answer."""
    try:
        found = [t for t in answer["outputs"] if t["name"] == tensors.output]
    except (TypeError, KeyError) as exc:
        raise BackendError("an answer without outputs") from exc
    if len(found) != 1:
        raise BackendError(f"no output tensor {tensors.output!r}")
    tensor = found[0]
    datatype = tensor.get("datatype") if isinstance(tensor, dict) else None
    if datatype not in _FLOAT_TYPES:
        raise BackendError(f"output datatype {datatype!r}, not FP32/FP64/FP16")
    shape = tensor.get("shape")
    if shape not in ([n], [n, 1], [n, 2]):
        raise BackendError(f"output shape {shape}, not [{n}], [{n}, 1] or [{n}, 2]")
    try:
        values = np.asarray(tensor["data"], dtype=np.float64).reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:  # no data, strings, ragged, wrong size
        raise BackendError(f"output data that is not a {shape} tensor") from exc
    if tensors.probability:
        p = np.clip(values, _P_EDGE, 1 - _P_EDGE)
        two_classes = values.ndim == 2 and values.shape[1] == 2
        # softmax: log p1 - log p0 (below); sigmoid: log p - log(1 - p)
        values = np.log(p) if two_classes else np.log(p) - np.log1p(-p)
    if values.ndim == 2:
        values = values[:, 0] if values.shape[1] == 1 else values[:, 1] - values[:, 0]
    if not np.all(np.isfinite(values)):
        raise BackendError("output scores that are not finite")
    return [float(v) for v in values]


def metadata_problems(tensors: TensorMap, metadata: Any) -> list[str]:
    """What a model's metadata (``GET /v2/models/{name}``) says the map gets wrong:
    inputs or the output it lacks, or of another datatype. Unreadable metadata: none."""
    try:
        inputs = {t["name"]: t["datatype"] for t in metadata["inputs"]}
        outputs = {t["name"]: t["datatype"] for t in metadata["outputs"]}
    except (TypeError, KeyError):
        return []
    datatype = "INT64" if tensors.inputs == "tokens" else "BYTES"
    problems = []
    for role in _INPUTS[tensors.inputs]:
        name = tensors.names[role]
        if name and name not in inputs:
            problems.append(f"no input {name!r} (it has {', '.join(sorted(inputs))})")
        elif name and inputs[name] != datatype:
            problems.append(f"input {name!r} is {inputs[name]}, not {datatype}")
    if tensors.output not in outputs:
        problems.append(f"no output {tensors.output!r} (it has {', '.join(sorted(outputs))})")
    elif outputs[tensors.output] not in _FLOAT_TYPES:
        problems.append(f"output {tensors.output!r} is {outputs[tensors.output]}, not FP32")
    return problems


def _model_path(settings: PoolModel) -> str:
    path = f"/v2/models/{quote(settings.pool_model, safe='')}"
    if settings.oip_version:
        path += f"/versions/{quote(settings.oip_version, safe='')}"
    return path


def _error_message(raw: bytes) -> str:
    """The server's ``{"error": ...}`` (for the log: names a wrong tensor or shape)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return "no error body"
    message = body.get("error") if isinstance(body, dict) else None
    return str(message)[:300] if message else "no error message"


def _says_not_ready(raw: bytes) -> bool:
    """A ready answer with a JSON body ``{"ready": false}`` (KServe) is not ready."""
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("ready") is False


class OipCrossEncoder(PoolCrossEncoder):
    """The pool (split, failover, breakers) speaking OIP v2 ``/infer`` to each backend."""

    def __init__(self, settings: PoolModel) -> None:
        self.tensors = TensorMap.from_settings(settings)
        self._tok: PairTokenizer | None = None
        tokenizer_digest = "-"
        if self.tensors.inputs == "tokens":
            if settings.path is None:
                raise ModelError(
                    "MODEL__OIP_INPUTS=tokens needs MODEL__PATH (a directory with the"
                    " served model's tokenizer.json)"
                )
            tokenizer_file = Path(settings.path) / "tokenizer.json"
            try:
                self._tok = PairTokenizer(
                    tokenizer_file, settings.max_length, settings.max_query_tokens
                )
            except Exception as exc:  # tokenizers raises plain Exception types
                raise ModelError(f"could not load {tokenizer_file}: {type(exc).__name__}") from exc
            tokenizer_digest = hashlib.sha256(tokenizer_file.read_bytes()).hexdigest()[:16]
        self._model = _model_path(settings)
        super().__init__(settings)
        try:
            self._run(self._check_metadata())
        except ModelError:
            self.close()
            raise
        identity = f"{self.tensors.describe()};tokenizer={tokenizer_digest}"
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self._fingerprint = (
            f"pool:oip:{settings.pool_model}@{settings.oip_version or '-'}:{digest}:"
            f"{settings.max_length}"
        )
        log.info("OIP v2 model %s, tensors %s", self._model, self.tensors.describe())

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        if self._tok is None:
            return super().encode(pairs)
        out: list[Encoded] = []
        for (query, text), enc in zip(pairs, self._tok.encode(pairs), strict=True):
            out.append(TextPair(enc.ids, enc.type_ids, enc.truncated, query=query, text=text))
        return out

    def clip_query(self, query: str) -> str:
        return super().clip_query(query) if self._tok is None else self._tok.clip_query(query)

    async def _check_metadata(self) -> None:
        """At start, each backend that answers with its model's metadata must fit the
        tensor map (a misnamed tensor would fail every call); one that does not answer
        is not checked. The backends are asked at once."""
        found = await asyncio.gather(*(self._metadata(b) for b in self.backends))
        for backend, metadata in zip(self.backends, found, strict=True):
            problems = metadata_problems(self.tensors, metadata)
            if problems:
                raise ModelError(
                    f"model {self._model} at {backend.url} does not fit MODEL__OIP_*: "
                    + "; ".join(problems)
                )

    async def _metadata(self, backend: Backend) -> Any:
        """``GET /v2/models/{name}[/versions/{v}]``; None when it does not answer it."""
        url = backend.url.rstrip("/") + self._model
        try:
            async with self._session.get(url, headers=self._headers) as r:
                return await r.json(content_type=None) if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("OIP backend %s: no model metadata (%s)", backend.url, type(exc).__name__)
            return None

    async def _call(self, backend: Backend, part: list[TextPair]) -> list[float]:
        url = backend.url.rstrip("/") + self._model + "/infer"
        answer = await self._post_json(url, infer_body(self.tensors, part), _error_message)
        return output_logits(self.tensors, answer, len(part))

    async def _probe(self, backend: Backend) -> None:
        root = backend.url.rstrip("/")
        for path in ("/v2/health/ready", self._model + "/ready"):
            try:
                async with self._session.get(root + path, headers=self._headers) as r:
                    status, raw = r.status, await r.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise BackendError(type(exc).__name__) from exc
            if status != 200 or _says_not_ready(raw):
                raise BackendError(f"{path} is not ready (status {status})")
