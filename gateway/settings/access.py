"""Who may use the gateway: keys and the indices clients may reach (docs/security.md)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from gateway.settings.base import CommaList, Section


class AccessSettings(Section):
    """Who may use the gateway: optional keys and an allow-list of indices (all open by default)."""

    api_key: SecretStr | None = Field(
        None,
        description=(
            "When set, every request but `/_gateway/health/*` needs the header"
            " `X-Gateway-Api-Key: <key>` (401 otherwise). The header never goes upstream."
        ),
    )
    admin_api_key: SecretStr | None = Field(
        None,
        description=(
            "When set, the reserved `/_gateway/...` endpoints (health excepted) need"
            " `X-Gateway-Api-Key: <admin key>` instead of the client key."
        ),
    )
    indices: CommaList = Field(
        default_factory=lambda: ["*"],
        description=(
            "Index patterns clients may reach, reranked and passthrough routes alike (`-x`"
            " excludes; 403 otherwise). With anything but `*`, only the endpoints listed in"
            ' docs/security.md "Access control" are let through, each with its indices in the path'
            " (`GET /` excepted), and every index their bodies name is checked too."
        ),
    )
