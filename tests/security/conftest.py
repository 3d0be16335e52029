"""The security suite reuses the fault suite's scripted upstream."""

from tests.faults.conftest import scripted

__all__ = ["scripted"]
