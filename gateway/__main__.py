"""``rerank-gateway`` / ``python -m gateway``: read Settings once, build the app, run it."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from gateway import __version__
from gateway.access import redact_url
from gateway.app import create_app
from gateway.protocol import serve
from gateway.settings import ENV_DELIMITER, ENV_PREFIX, LogSettings, Settings

EXIT_CONFIG = 2


def describe_config_error(exc: ValidationError) -> str:
    """One line per bad variable, named as the operator sets it."""
    lines = ["invalid configuration:"]
    for err in exc.errors():
        loc = [str(part) for part in err["loc"] if not isinstance(part, int)]
        name = ENV_PREFIX + ENV_DELIMITER.join(loc[:2]).upper() if loc else ENV_PREFIX + "*"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"  {name}: {message}")
    if len(lines) == 2:  # one problem, one line
        return f"{lines[0]} {lines[1].strip()}"
    return "\n".join(lines)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)  # structured fields (the access line's)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(settings: LogSettings) -> None:
    handler = logging.StreamHandler()
    if settings.json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"rerank-gateway: {describe_config_error(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    except SettingsError as exc:
        print(f"rerank-gateway: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log)
    log = logging.getLogger("gateway")
    model = settings.model.path or f"hub:{settings.model.hub_id}"
    log.info(
        "rerank-gateway %s listening on http://%s:%d, upstream %s, model %s (%s)",
        __version__,
        settings.server.host,
        settings.server.port,
        ", ".join(redact_url(u) for u in settings.upstream.urls),
        model,
        settings.model.device,
    )
    serve(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout_s=settings.server.shutdown_timeout_s,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
