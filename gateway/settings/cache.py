"""The score cache: Redis (single node or Cluster, TLS, ACL) or an in-process LRU."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from gateway.settings.base import RedisUrl, Section


class CacheSettings(Section):
    """The score cache: Redis (TLS, ACL, Cluster) or an in-process LRU."""

    redis_url: RedisUrl = Field(
        None,
        description="Redis URL (`redis://`, `rediss://` for TLS); unset: in-process LRU cache.",
    )
    memory_entries: int = Field(
        100_000,
        ge=0,
        description=(
            "Entries in the in-process LRU cache; with REDIS_URL it stands in front of Redis"
            " (a repeated search on this replica skips the Redis round trip). 0 disables it."
        ),
    )
    ttl_s: int = Field(7 * 24 * 3600, gt=0, description="Lifetime of a cached score in Redis.")
    timeout_s: float = Field(
        0.05, gt=0, description="Redis call budget; past it the search is scored uncached."
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis password (AUTH); overrides one in the URL. Never logged."
    )
    redis_username: str | None = Field(None, description="Redis ACL user name (Redis 6+).")
    redis_cluster: bool = Field(
        False, description="Talk to a Redis Cluster (the URL names any one node)."
    )
    redis_ca_bundle: Path | None = Field(
        None, description="CA bundle to verify Redis's TLS certificate (`rediss://`)."
    )
    redis_verify_tls: bool = Field(
        True, description="Verify Redis's TLS certificate and host name (`rediss://`)."
    )
    breaker_backoff_s: float = Field(
        1.0,
        gt=0,
        description="After a Redis failure, skip Redis this long before trying it again.",
    )
