"""The search cluster behind the gateway: its URLs, credential, TLS and timeouts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gateway.settings.base import HttpUrls, PemFile, Section

_UP = "GATEWAY_UPSTREAM__"


def split_userinfo(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host`` → (``http://host``, ``user:pw`` still percent-encoded)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not sep or not at:
        return url, None
    return f"{scheme}://{host}{slash}{path}", userinfo


class UpstreamSettings(Section):
    """The search cluster: its URLs (failover in order), the gateway's credential, TLS, timeouts."""

    urls: HttpUrls = Field(
        default_factory=lambda: ["http://127.0.0.1:9200"],
        description=(
            "Search cluster base URL(s); later ones are failover targets. A `user:password@`"
            " (percent-encoded, the same on every URL) is the gateway's basic-auth credential."
        ),
    )
    flavor: Literal["auto", "elasticsearch", "opensearch"] = Field(
        "auto",
        description=(
            "Upstream product. `auto` asks `GET /` at start-up. With `opensearch` the "
            "gateway rewrites the ES clients' vendor media type to application/json."
        ),
    )
    username: str | None = Field(None, description="Basic-auth user the gateway adds upstream.")
    password: SecretStr | None = Field(None, description="Basic-auth password (never logged).")
    api_key: SecretStr | None = Field(
        None, description="ES API key the gateway adds upstream (`Authorization: ApiKey ...`)."
    )
    ca_bundle: PemFile = Field(None, description="CA bundle to verify the upstream's TLS.")
    client_cert: PemFile = Field(
        None, description="Client certificate (PEM) for mutual TLS with the upstream."
    )
    client_key: PemFile = Field(
        None, description="Private key (PEM) of CLIENT_CERT; unset when the cert file holds it."
    )
    verify_tls: bool = Field(True, description="Verify the upstream's TLS certificate.")
    connect_timeout_s: float = Field(
        5.0,
        gt=0,
        description="TCP connect timeout to upstream; past it the next URL is tried.",
    )
    dead_backoff_s: float = Field(
        1.0,
        gt=0,
        description=(
            "A URL that could not be connected to is tried after the others this long,"
            " doubled per failure in a row (up to DEAD_BACKOFF_MAX_S)."
        ),
    )
    dead_backoff_max_s: float = Field(
        30.0, gt=0, description="Longest back-off of an unreachable upstream URL."
    )
    timeout_s: float = Field(
        60.0, gt=0, description="Total time allowed for one upstream request (504 after)."
    )
    max_connections: int = Field(100, gt=0, description="Connection pool size to upstream.")

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one upstream URL is required")
        return [url.rstrip("/") for url in value]

    @model_validator(mode="after")
    def _one_credential(self) -> UpstreamSettings:
        """The gateway's own credential comes from one place: the URLs' ``user:password@``
        (the same on each), USERNAME/PASSWORD, or API_KEY. The message names no secret."""
        in_urls = {split_userinfo(url)[1] for url in self.urls}
        conflict = None
        if len(in_urls) > 1:
            conflict = f"{_UP}URLS: every URL must carry the same user:password@, or none"
        elif in_urls != {None} and (self.username or self.password or self.api_key):
            conflict = (
                f"{_UP}URLS carry user:password@, so {_UP}USERNAME, {_UP}PASSWORD and"
                f" {_UP}API_KEY must be unset"
            )
        elif self.api_key is not None and (self.username or self.password):
            conflict = f"{_UP}API_KEY and {_UP}USERNAME/PASSWORD are both set: use one"
        elif self.password is not None and self.username is None:
            conflict = f"{_UP}PASSWORD is set without {_UP}USERNAME"
        if conflict is not None:
            raise PydanticCustomError("conflicting_credentials", conflict)
        return self
