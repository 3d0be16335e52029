"""Experiments: the arms (variants), how users are assigned, where the events go
(docs/experiments.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from gateway.settings.base import RedisUrl, Section, split_commas


class Variant(Section):
    """One arm of an experiment; written ``name:share`` or ``name:share:window`` in a list."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    share: float = Field(ge=0)
    rerank: bool = True
    window: Annotated[int | None, Field(ge=1, le=10_000)] = None
    profile: str | None = None  # a relevance profile (its model, text, window)

    @model_validator(mode="before")
    @classmethod
    def _baseline_is_control(cls, value: Any) -> Any:
        if isinstance(value, dict) and "rerank" not in value and value.get("name") == "baseline":
            return {**value, "rerank": False}
        return value

    def __str__(self) -> str:
        share = f"{self.share:g}"
        return f"{self.name}:{share}" + (f":{self.window}" if self.window else "")


def _variants(value: Any) -> Any:
    if isinstance(value, str) and not value.strip().startswith("["):
        out = []
        for item in split_commas(value):
            name, share, *rest = [*item.split(":"), ""][:3]
            spec: dict[str, Any] = {"name": name, "share": share or 0}
            if rest and rest[0]:
                spec["window"] = rest[0]
            out.append(spec)
        return out
    return split_commas(value)


class ExperimentSettings(Section):
    """Online experiments: mode, arms, assignment key, events (docs/experiments.md)."""

    mode: Literal["off", "ab", "interleave", "shadow"] = Field(
        "off",
        description=(
            "`ab` serves each user one variant; `interleave` merges the control's and the first "
            "rerank variant's lists (team draft); `shadow` serves the control and reranks in the "
            "background to measure the change; `off` disables experiments."
        ),
    )
    name: str = Field(
        "exp1",
        pattern=r"^[A-Za-z0-9_.-]{1,60}$",
        description="Experiment name: salts the assignment hash and names the event stream.",
    )
    variants: Annotated[list[Variant], NoDecode] = Field(
        default_factory=lambda: [
            Variant(name="baseline", share=50, rerank=False),
            Variant(name="rerank", share=50),
        ],
        description=(
            "Arms as `name:share[:window]` (or JSON objects with `rerank: false` for a control); "
            "`baseline` is the control (upstream order). Shares are relative weights."
        ),
    )
    key: str = Field(
        "header:X-User-Id",
        pattern=r"^(header|cookie|param):[A-Za-z0-9_.-]+$",
        description=(
            "Where the sticky assignment key is read: `header:NAME`, `cookie:NAME` or "
            "`param:NAME` (the parameter is removed before forwarding). Requests without one "
            "are assigned per request."
        ),
    )
    override_header: str | None = Field(
        "X-Experiment-Override",
        description="Request header naming the variant to serve (QA); empty disables overrides.",
    )
    k: int = Field(10, ge=1, le=1000, description="Depth of CTR@k, overlap@k and impressions.")
    shadow_timeout_s: float = Field(
        2.0, gt=0, description="Budget of one background (shadow) rerank."
    )
    shadow_max_inflight: int = Field(
        8, ge=1, description="Shadow reranks running at once at most; more are not measured."
    )
    events_redis_url: RedisUrl = Field(
        None,
        description=(
            "Redis for experiment events (a Stream), reached with the CACHE__REDIS_* settings;"
            " unset: GATEWAY_CACHE__REDIS_URL, and without either an in-process ring."
        ),
    )
    events_max: int = Field(
        100_000, ge=10, description="Events kept (Redis `MAXLEN ~`, or the ring's size)."
    )

    @field_validator("variants", mode="before")
    @classmethod
    def _parse_variants(cls, value: Any) -> Any:
        return _variants(value)

    @field_validator("variants")
    @classmethod
    def _check_variants(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if not value or sum(v.share for v in value) <= 0:
            raise ValueError("at least one variant needs a positive share")
        return value
