"""Cross-encoders: the protocol the pipeline uses, and its implementations.

``onnx.py`` is the only module that imports onnxruntime; ``fake.py`` is a
deterministic double for tests; ``hub.py`` fetches a model from the Hub.
"""

from gateway.model.base import CrossEncoder, Encoded

__all__ = ["CrossEncoder", "Encoded"]
