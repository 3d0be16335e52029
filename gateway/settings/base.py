"""What every section shares: the frozen base, the list type, and the checks of URLs and paths.

A list-valued variable is one type, :data:`CommaList`: it takes a JSON list
(``["a","b"]``) or a comma-separated string (``a,b``), as the environment has it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr
from pydantic_settings import NoDecode

ENV_PREFIX = "GATEWAY_"
ENV_DELIMITER = "__"


class Section(BaseModel):
    """One frozen section of the settings; a name it does not know is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def split_commas(value: Any) -> Any:
    """Accept ``a,b`` as well as a JSON list for list-valued variables."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# NoDecode: pydantic-settings hands the raw string over, ``split_commas`` reads it.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_commas)]


def _http_urls(value: list[str]) -> list[str]:
    for url in value:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL")
    return value


HttpUrls = Annotated[CommaList, AfterValidator(_http_urls)]


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/") if value else value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _model_dir(value: Path | None) -> Path | None:
    if value is not None and not (value / "tokenizer.json").is_file():
        raise ValueError(f"{value} is not a model directory (no tokenizer.json in it)")
    return value


ModelDir = Annotated[Path | None, AfterValidator(_model_dir)]


def _pem_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"{value} is not a file")
    return value


PemFile = Annotated[Path | None, AfterValidator(_pem_file)]


def _redis_url(value: SecretStr | None) -> SecretStr | None:
    """A URL redis-py can use; the messages never repeat it (it may hold a password)."""
    if value is None:
        return value
    try:
        url = urlsplit(value.get_secret_value())
        port_ok = url.scheme == "unix" or url.port is None or url.port >= 0
    except ValueError:
        raise ValueError("not a valid URL (bad port or host)") from None
    if url.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("not a Redis URL (redis://, rediss:// or unix://)")
    if url.scheme == "unix":
        if not url.path:
            raise ValueError("not a usable unix:// URL (no socket path)")
        return value
    db = url.path.strip("/")
    if not url.hostname or not port_ok or (db and not db.isdigit()):
        raise ValueError("not a valid Redis URL: redis[s]://[user:password@]host[:port][/db]")
    return value


RedisUrl = Annotated[SecretStr | None, AfterValidator(_redis_url)]
