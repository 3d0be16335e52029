"""gateway.model.oip: the Open Inference Protocol v2 request body, answer reading, settings."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from gateway.errors import ModelError
from gateway.model.oip import TensorMap, infer_body, output_logits
from gateway.model.pool import BackendError
from gateway.model.tei import TextPair
from gateway.settings import ModelSettings, Settings

POOL = {"backend": "pool", "pool_protocol": "oip", "pool_urls": ["http://triton:8000"]}


def tensors(**model: Any) -> TensorMap:
    return TensorMap.from_settings(ModelSettings.model_validate({**POOL, **model}))


def pair(query: str, text: str, ids: list[int] | None = None) -> TextPair:
    array = np.asarray(ids or [], dtype=np.int64)
    types = np.asarray([0] * (len(array) - 2) + [1, 1] if len(array) > 1 else [], dtype=np.int64)
    return TextPair(array, types, query=query, text=text)


PART = [pair("q", "a b c", [101, 7, 102, 8, 102]), pair("q", "d", [101, 7, 102])]


def test_token_ids_are_padded_int64_tensors_with_a_mask() -> None:
    body = infer_body(tensors(), PART)
    ids, mask, types = body["inputs"]
    assert ids == {
        "name": "input_ids",
        "shape": [2, 5],
        "datatype": "INT64",
        "data": [101, 7, 102, 8, 102, 101, 7, 102, 0, 0],
    }
    assert mask["data"] == [1, 1, 1, 1, 1, 1, 1, 1, 0, 0] and mask["shape"] == [2, 5]
    assert types["name"] == "token_type_ids" and types["data"][:5] == [0, 0, 0, 1, 1]
    assert body["outputs"] == [{"name": "logits"}]
    json.dumps(body)  # plain JSON types only


def test_renamed_and_dropped_tensors() -> None:
    renamed = tensors(oip_tensors={"token_type_ids": "", "input_ids": "INPUT__0", "output": "s"})
    body = infer_body(renamed, PART)
    assert [t["name"] for t in body["inputs"]] == ["INPUT__0", "attention_mask"]
    assert body["outputs"] == [{"name": "s"}]


def test_text_and_pairs_are_bytes_tensors() -> None:
    text = infer_body(tensors(oip_inputs="text"), PART)["inputs"]
    assert text == [
        {"name": "query", "shape": [1], "datatype": "BYTES", "data": ["q"]},
        {"name": "documents", "shape": [2], "datatype": "BYTES", "data": ["a b c", "d"]},
    ]
    (rows,) = infer_body(tensors(oip_inputs="pairs"), PART)["inputs"]
    assert rows == {
        "name": "pairs",
        "shape": [2, 2],
        "datatype": "BYTES",
        "data": ["q", "a b c", "q", "d"],
    }


def test_the_body_is_what_tritonclient_sends() -> None:
    """tritonclient.http builds the same JSON for the same tensors (it adds only the
    ``binary_data: false`` output parameter, Triton's default when not given)."""
    http = pytest.importorskip("tritonclient.http")
    cases = [
        (tensors(), ["input_ids", "attention_mask", "token_type_ids"]),
        (tensors(oip_inputs="text"), ["query", "documents"]),
        (tensors(oip_inputs="pairs"), ["pairs"]),
    ]
    part = [
        pair("wer ist's? ü", 'a "quoted" b', [101, 7, 102, 8, 102]),
        pair("wer ist's? ü", "北京", [101, 9, 102]),
    ]
    for tmap, names in cases:
        ours = infer_body(tmap, part)
        inputs = []
        for tensor in ours["inputs"]:
            dtype = object if tensor["datatype"] == "BYTES" else np.int64
            value = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
            one = http.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
            one.set_data_from_numpy(value, binary_data=False)
            inputs.append(one)
        outputs = [http.InferRequestedOutput("logits", binary_data=False)]
        raw, json_size = http.InferenceServerClient.generate_request_body(inputs, outputs)
        assert json_size is None  # all JSON, no binary tail
        theirs = json.loads(raw)
        for output in theirs["outputs"]:
            assert output.pop("parameters") == {"binary_data": False}
        assert [t["name"] for t in theirs["inputs"]] == names
        assert json.loads(json.dumps(ours)) == theirs


def answer(data: Any, shape: list[int], datatype: str = "FP32", name: str = "logits") -> Any:
    return {"outputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        ([1.5, -2.0], [2]),
        ([1.5, -2.0], [2, 1]),
        ([[1.5], [-2.0]], [2, 1]),
        ([0.0, 1.5, 1.0, -1.0], [2, 2]),
    ],
)
def test_logits_from_the_shapes_a_model_gives(data: Any, shape: list[int]) -> None:
    assert output_logits(tensors(), answer(data, shape), 2) == [1.5, -2.0]


def test_other_outputs_are_skipped_and_probabilities_become_logits() -> None:
    two = {
        "outputs": [
            answer([9, 9], [2])["outputs"][0] | {"name": "cosine"},
            *answer([0.5, 0.8], [2])["outputs"],
        ]
    }
    logits = output_logits(tensors(oip_output="probability"), two, 2)
    assert logits == pytest.approx([0.0, np.log(0.8 / 0.2)])
    softmax = answer([0.2, 0.8, 0.5, 0.5], [2, 2])
    assert output_logits(tensors(oip_output="probability"), softmax, 2) == pytest.approx(
        [np.log(4), 0.0]
    )
    edge = output_logits(tensors(oip_output="probability"), answer([1.0, 0.0], [2]), 2)
    assert edge[0] > 30 and edge[1] < -30


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (answer([1.0, 2.0, 3.0], [3]), "shape"),
        (answer([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]), "shape"),
        (answer([1.0, 2.0], [2], datatype="BYTES"), "datatype"),
        (answer([1, 2], [2], datatype="INT64"), "datatype"),
        (answer(["1.0", "x"], [2]), "data"),
        (answer([1.0], [2]), "data"),
        (answer([[1.0], [2.0, 3.0]], [2, 1]), "data"),
        (answer([1.0, float("nan")], [2]), "finite"),
        (answer([1.0, 2.0], [2], name="scores"), "no output"),
        ({"error": "model not ready"}, "without outputs"),
        ([1.0, 2.0], "without outputs"),
        ({"outputs": [{"name": "logits", "shape": [2]}]}, "datatype"),
    ],
)
def test_a_wrong_answer_is_a_backend_error(bad: Any, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        output_logits(tensors(), bad, 2)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MODEL__BACKEND", "pool")
    monkeypatch.setenv("GATEWAY_MODEL__POOL_PROTOCOL", "oip")
    monkeypatch.setenv("GATEWAY_MODEL__POOL_URLS", "http://triton-a:8000,http://triton-b:8000")
    monkeypatch.setenv("GATEWAY_MODEL__OIP_INPUTS", "text")
    monkeypatch.setenv("GATEWAY_MODEL__OIP_TENSORS", '{"query": "QUERY", "documents": "DOCS"}')
    monkeypatch.setenv("GATEWAY_MODEL__OIP_VERSION", "2")
    model = Settings().model
    assert model.oip_tensors == {"query": "QUERY", "documents": "DOCS"}
    assert (model.oip_inputs, model.oip_version, model.oip_output) == ("text", "2", "logit")


def test_unknown_roles_and_unnamed_needed_tensors_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown tensor roles"):
        ModelSettings.model_validate({**POOL, "oip_tensors": {"input": "x"}})
    with pytest.raises(ModelError, match="no name to output"):
        tensors(oip_tensors={"output": ""})
    with pytest.raises(ModelError, match="no name to query"):
        tensors(oip_inputs="text", oip_tensors={"query": ""})


def test_token_ids_need_the_tokenizer_directory() -> None:
    from gateway.model.oip import OipCrossEncoder

    with pytest.raises(ModelError, match="MODEL__PATH"):
        OipCrossEncoder(ModelSettings.model_validate(POOL))


def test_metadata_problems() -> None:
    from gateway.model.oip import metadata_problems

    def meta(inputs: dict[str, str], outputs: dict[str, str]) -> dict[str, Any]:
        return {
            "inputs": [{"name": n, "datatype": d, "shape": [-1, -1]} for n, d in inputs.items()],
            "outputs": [{"name": n, "datatype": d, "shape": [-1, 1]} for n, d in outputs.items()],
        }

    ids = {"input_ids": "INT64", "attention_mask": "INT64", "token_type_ids": "INT64"}
    assert metadata_problems(tensors(), meta(ids, {"logits": "FP32"})) == []
    assert metadata_problems(
        tensors(), meta({**ids, "input_ids": "INT32"}, {"logits": "FP16"})
    ) == ["input 'input_ids' is INT32, not INT64"]
    assert metadata_problems(tensors(), meta(ids, {"logits": "BYTES"})) == [
        "output 'logits' is BYTES, not FP32"
    ]
    no_types = tensors(oip_tensors={"token_type_ids": ""})
    two = {"input_ids": "INT64", "attention_mask": "INT64"}
    assert metadata_problems(no_types, meta(two, {"logits": "FP32"})) == []
    assert (
        metadata_problems(tensors(oip_inputs="pairs"), meta({"pairs": "BYTES"}, {"logits": "FP64"}))
        == []
    )
    assert metadata_problems(tensors(), {"error": "unknown model"}) == []  # not checked
    assert metadata_problems(tensors(), None) == []
