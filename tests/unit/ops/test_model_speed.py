"""ops/model_speed: which feed array goes to which OpenVINO input port."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.model_speed import INPUT_NAMES, ov_input_names


class Port:
    """What the tool reads of an OpenVINO port: its tensor names."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)

    def get_names(self) -> set[str]:
        return self.names


def test_every_input_is_fed_whatever_name_openvino_shows_first() -> None:
    ports = [Port("input_ids"), Port("attention_mask", "Parameter_2"), Port("Parameter_3")]
    assert ov_input_names(ports, Path("m.onnx")) == list(INPUT_NAMES)
    swapped = [Port("token_type_ids"), Port("input_ids"), Port("x", "attention_mask")]
    assert ov_input_names(swapped, Path("m.onnx")) == [
        "token_type_ids",
        "input_ids",
        "attention_mask",
    ]


def test_an_input_it_cannot_place_is_an_error() -> None:
    with pytest.raises(ValueError, match="port 0"):
        ov_input_names([Port("a"), Port("b"), Port("c"), Port("d")], Path("m.onnx"))
