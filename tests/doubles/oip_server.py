"""A scripted Open Inference Protocol v2 server (Triton / KServe as the gateway sees it).

It runs the real ONNX model from ``../shared/models`` behind the protocol, in
either deployment shape:

- ``tokens``: like Triton's onnxruntime backend serving the bare ``model.onnx``:
  INT64 ``input_ids`` / ``attention_mask`` / ``token_type_ids`` ``[n, width]`` go
  straight into the session;
- ``text``: like a python-backend model that tokenizes itself: BYTES ``query``
  ``[1]`` and ``documents`` ``[n]``, tokenized here with the model's tokenizer;
- ``pairs``: the same with one BYTES ``pairs`` ``[n, 2]`` tensor, answering
  probabilities (a sigmoid, FP64) when ``probability`` is set.

It checks requests as Triton does (known input names, datatypes, shape against the
data's length: 400 with ``{"error"}`` otherwise), answers ``GET /v2/health/ready``
and ``/v2/models/{name}/ready``, and can be made to fail (503), hang (until
released), answer a wrong output shape or datatype, or be not ready.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.model.pairs import PairTokenizer
from tests.doubles.net import free_port

TOKEN_INPUTS = {"input_ids": "INT64", "attention_mask": "INT64", "token_type_ids": "INT64"}
TEXT_INPUTS = {"query": "BYTES", "documents": "BYTES"}
EXPECTED = {"tokens": TOKEN_INPUTS, "text": TEXT_INPUTS, "pairs": {"pairs": "BYTES"}}


@dataclass
class OipServer:
    model_dir: Path
    inputs: str = "tokens"  # or "text", "pairs"
    probability: bool = False  # answer sigmoid(logit), FP64
    name: str = "reranker"
    output: str = "logits"
    output_shape: str = "n,1"  # "n", "n,1"; faults: "wrong" ([n + 1])
    output_datatype: str = "FP32"
    fail: bool = False
    hang: bool = False
    ready: bool = True
    metadata: bool = True  # answer GET /v2/models/{name}
    metadata_asked: int = 0
    calls: list[int] = field(default_factory=list)  # pairs per /infer call
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # /infer paths called
    probes: list[str] = field(default_factory=list)  # ready paths asked
    port: int = field(default_factory=free_port)
    server: TestServer | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.model_dir / "model.onnx"), options)
        self._tok = PairTokenizer(self.model_dir / "tokenizer.json", 256, 128)
        # A served model is warm before it takes calls (Triton loads and runs it first): the
        # session's first run, slow on a loaded box, must not eat the gateway's call timeout.
        self._session.run(["logits"], _token_arrays(self._tok.encode([("warm", "up")])))
        app = web.Application()
        app.router.add_get("/v2/health/ready", self._server_ready)
        for model in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            app.router.add_get(model, self._model_metadata)
            app.router.add_get(model + "/ready", self._model_ready)
            app.router.add_post(model + "/infer", self._infer)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()

    def forget(self) -> None:
        """Drop what was recorded so far (the gateway's warm-up call)."""
        self.calls.clear()
        self.bodies.clear()
        self.paths.clear()

    async def close(self) -> None:
        self._release.set()
        if self.server is not None:
            await self.server.close()

    async def _server_ready(self, request: web.Request) -> web.Response:
        self.probes.append(request.path)
        return web.Response(status=503 if self.fail else 200)

    async def _model_ready(self, request: web.Request) -> web.Response:
        self.probes.append(request.path)
        if request.match_info["name"] != self.name:
            return web.json_response({"error": "unknown model"}, status=400)
        return web.json_response({"name": self.name, "ready": self.ready})

    async def _model_metadata(self, request: web.Request) -> web.Response:
        self.metadata_asked += 1
        if not self.metadata or request.match_info["name"] != self.name:
            return web.json_response({"error": "unknown model"}, status=404)
        inputs = [
            {"name": name, "datatype": datatype, "shape": [-1, -1] if datatype == "INT64" else [-1]}
            for name, datatype in EXPECTED[self.inputs].items()
        ]
        output = {"name": self.output, "datatype": self.output_datatype, "shape": [-1, 1]}
        return web.json_response(
            {
                "name": self.name,
                "versions": ["1"],
                "platform": "onnxruntime_onnx",
                "inputs": inputs,
                "outputs": [output],
            }
        )

    async def _infer(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != self.name:
            return _error(f"Request for unknown model: '{request.match_info['name']}'", 400)
        body = await request.json()
        self.paths.append(request.path)
        if self.hang:
            await self._release.wait()
        if self.fail:
            return _error("server unavailable", 503)
        try:
            tensors = _read_inputs(body, EXPECTED[self.inputs])
        except ValueError as exc:
            return _error(str(exc), 400)
        self.bodies.append(body)
        if self.inputs == "text":
            (query,) = tensors["query"].tolist()
            docs = tensors["documents"].tolist()
            tensors = _token_arrays(self._tok.encode([(query, d) for d in docs]))
        elif self.inputs == "pairs":
            pairs = [(str(q), str(d)) for q, d in tensors["pairs"].tolist()]
            tensors = _token_arrays(self._tok.encode(pairs))
        n = int(tensors["input_ids"].shape[0])
        self.calls.append(n)
        (logits,) = await asyncio.to_thread(self._session.run, ["logits"], tensors)
        return web.json_response({"model_name": self.name, "outputs": [self._output(logits, n)]})

    def _output(self, logits: np.ndarray[Any, Any], n: int) -> dict[str, Any]:
        data: list[Any] = [float(v) for v in np.asarray(logits, dtype=np.float32).reshape(-1)]
        datatype = self.output_datatype
        if self.probability:
            data, datatype = [1 / (1 + math.exp(-v)) for v in data], "FP64"
        shape = {"n": [n], "n,1": [n, 1], "wrong": [n + 1]}[self.output_shape]
        if self.output_shape == "wrong":
            data.append(0.0)
        if datatype == "BYTES":
            data = [str(v) for v in data]
        return {"name": self.output, "datatype": datatype, "shape": shape, "data": data}


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _read_inputs(body: dict[str, Any], expected: dict[str, str]) -> dict[str, np.ndarray[Any, Any]]:
    """The request's inputs as arrays, checked as Triton checks them."""
    out: dict[str, np.ndarray[Any, Any]] = {}
    for tensor in body.get("inputs", []):
        name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
        if name not in expected:
            raise ValueError(f"unexpected inference input '{name}'")
        if datatype != expected[name]:
            raise ValueError(
                f"input '{name}' data-type is '{datatype}', model expects '{expected[name]}'"
            )
        data = np.asarray(tensor["data"], dtype=object if datatype == "BYTES" else np.int64)
        if data.size != math.prod(shape):
            raise ValueError(f"input '{name}' has {data.size} elements, shape {shape}")
        out[name] = data.reshape(shape)
    missing = set(expected) - set(out)
    if missing:
        raise ValueError(f"expected inputs {sorted(missing)} are missing")
    return out


def _token_arrays(encoded: list[Any]) -> dict[str, np.ndarray[Any, Any]]:
    width = max(len(e) for e in encoded)
    ids = np.zeros((len(encoded), width), dtype=np.int64)
    types, mask = np.zeros_like(ids), np.zeros_like(ids)
    for row, enc in enumerate(encoded):
        ids[row, : len(enc)] = enc.ids
        types[row, : len(enc)] = enc.type_ids
        mask[row, : len(enc)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
