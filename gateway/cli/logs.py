"""Log output of the long-running commands: plain lines or one JSON object per line."""

from __future__ import annotations

import json
import logging
from typing import Any

from gateway.settings import LogSettings

# HTTP clients of libraries (the Hub client's) log every request at INFO: keep them quiet.
QUIET = ("httpx", "httpx2", "httpcore", "urllib3", "huggingface_hub")


class JsonFormatter(logging.Formatter):
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
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
