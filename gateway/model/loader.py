"""Build the configured cross-encoder: a local directory, a Hub download, a TEI server, or a
pool of remote scorers; local files run on onnxruntime or OpenVINO."""

from __future__ import annotations

from gateway.model.base import CrossEncoder
from gateway.model.hub import download
from gateway.model.oip import OipCrossEncoder
from gateway.model.onnx import OnnxCrossEncoder
from gateway.model.pool import PoolCrossEncoder
from gateway.model.tei import TeiCrossEncoder
from gateway.settings import ModelBackend, PoolModel, SpeedSettings, TeiModel


def load_encoder(settings: ModelBackend, speed: SpeedSettings | None = None) -> CrossEncoder:
    """Blocking (file reads, session build): call from a worker thread."""
    if isinstance(settings, TeiModel):
        return TeiCrossEncoder(settings)
    if isinstance(settings, PoolModel) and settings.pool_protocol == "oip":
        return OipCrossEncoder(settings)
    if isinstance(settings, PoolModel):
        return PoolCrossEncoder(settings)
    directory = (
        settings.path if settings.path is not None else download(settings.hub_id, settings.file)
    )
    if settings.backend == "openvino":
        from gateway.model.openvino import OpenVinoCrossEncoder  # the optional extra

        return OpenVinoCrossEncoder(directory, settings, speed)
    return OnnxCrossEncoder(directory, settings, speed)
