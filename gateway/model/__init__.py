"""Cross-encoders: the protocol the pipeline uses, and its implementations.

``onnx.py`` is the only module that imports onnxruntime, ``openvino.py`` the OpenVINO
runtime; ``local.py`` is what those two in-process backends share; ``fake.py`` is a
deterministic double for tests; ``hub.py`` fetches a model from the Hub.
"""

from gateway.model.base import CrossEncoder, Encoded

__all__ = ["CrossEncoder", "Encoded"]
