"""The gateway process: where it listens, how it stops, how it logs and traces."""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, field_validator

from gateway.settings.base import Section

OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, not imported: parents only)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class ServerSettings(Section):
    """Where the gateway listens, the largest body it takes, how it starts and stops."""

    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(9201, ge=0, le=65535, description="Port the gateway listens on.")
    max_body_bytes: int = Field(
        100 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted (413 above it); ES's default is 100mb.",
    )
    shutdown_timeout_s: float = Field(
        10.0, ge=0, description="How long in-flight requests may finish at shutdown."
    )
    start_without_model: bool = Field(
        False,
        description=(
            "Start even when the model cannot load (it then loads in the background; until it"
            " is ready, or if it fails, searches pass through unreranked). Off: `serve` loads"
            " the model before it listens and a model that fails stops start-up."
        ),
    )


class LogSettings(Section):
    """Log level and format, and OpenTelemetry traces."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    json_lines: bool = Field(False, description="One JSON object per log line.")
    tracing: bool = Field(
        False,
        description=(
            "OpenTelemetry traces over OTLP/HTTP (the `otel` extra), configured by the "
            "standard `OTEL_*` variables."
        ),
    )

    @field_validator("tracing")
    @classmethod
    def _otel_installed(cls, value: bool) -> bool:
        if value and not _installed(OTLP_EXPORTER):
            raise ValueError("needs the otel extra: pip install 'rerank-gateway[otel]'")
        return value
