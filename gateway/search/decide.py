"""Stages 1-2 of a search: whether it is reranked, and its plan under its profile.

::

    skip           settings, index patterns, the request's opt in / out, the model's
                   readiness
    plan           profile (index, ``ext.rerank.profile``, an experiment arm's), deadline
                   (``ext.rerank.timeout_ms``), ``plan.plan``, the index's text fields
    fields_to_ask  the text fields a search (or a retriever tree) asks for in ``fields``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gateway.indices import path_allowed
from gateway.rerank.profiles import DEFAULT, Profile, Profiles
from gateway.rerank.reranker import Reason, Reranker
from gateway.search import plan as es_plan
from gateway.search.hooks import Arm
from gateway.search.mappings import IndexFields
from gateway.search.request import SearchRequest, deadline_ms
from gateway.settings import RerankSettings


class Planner:
    def __init__(
        self,
        settings: RerankSettings,
        profiles: Profiles,
        models: Callable[[str], Reranker | None],
        max_timeout_s: float,
        index_fields: IndexFields | None,
    ) -> None:
        self.settings = settings
        self.profiles = profiles
        self.models = models  # model name → its reranker, when loaded
        self.max_timeout_s = max_timeout_s  # the most a search may ask for its deadline
        # Which fields an index's text is in, when none of the configured ones is mapped.
        self.index_fields = index_fields

    def skip(self, request: SearchRequest, arm: Arm | None = None) -> Reason | None:
        """Why this search is not reranked at all, or None."""
        choice = request.choice
        if choice is False:
            return "opted_out"
        if not self.settings.enabled:
            return "disabled"
        if self.settings.opt_in and choice is not True:
            return "not_opted_in"
        if choice is not True and not path_allowed(request.index, self.settings.indices):
            return "index_not_configured"
        if self.models(DEFAULT) is None:
            return "model_not_ready"
        if "source" in request.params:
            return "unreadable_body"
        if arm is not None and not arm.rerank:
            return "experiment_control"
        return None

    def allowed(self, index: str | None, opted_in: bool) -> bool:
        """Whether a sub-search of a read ``_msearch`` may be reranked."""
        return opted_in or path_allowed(index, self.settings.indices)

    async def plan(
        self,
        body: dict[str, Any],
        option: Mapping[str, Any],
        params: Mapping[str, str],
        index: str | None,
        *,
        headers: Mapping[str, str],
        arm: Arm | None = None,
    ) -> tuple[es_plan.Plan | Reason, Profile]:
        """The search's plan (or why not) and profile; ``option``: its validated ``ext.rerank``."""
        profile = self.profiles.select(index, option.get("profile"))
        if arm is not None:  # an experiment variant may name its profile and window
            profile = self.profiles.named.get(arm.profile or "", profile)
            profile = replace(profile, window=arm.window or profile.window)
        asked_ms = deadline_ms(option, headers)
        if asked_ms is not None:
            profile = replace(profile, timeout_s=min(asked_ms / 1000, self.max_timeout_s))
        fields = profile.document.read_fields
        p = es_plan.plan(body, params, window=profile.window, fields=fields, option=option)
        if isinstance(p, es_plan.Plan) and self.index_fields and profile.document.template is None:
            fields = await self.index_fields.choose(index, profile.document.fields, headers)
            if fields != profile.document.fields:
                profile = replace(profile, document=replace(profile.document, fields=fields))
            shadowed, added = await self.fields_to_ask(body, params, index, fields, headers)
            p = replace(p, shadowed=shadowed, added_fields=added)
        return p, profile

    async def fields_to_ask(
        self,
        body: Mapping[str, Any],
        params: Mapping[str, str],
        index: str | None,
        fields: Sequence[str],
        headers: Mapping[str, str],
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(shadowed, added): how the text ``fields`` a search scores come back
        (``es_plan.field_split``; ``stored_fields`` brings back only what the mapping
        stores); none added where its hits carry their whole ``_source`` and the mapping
        says each field reads there as ``fields`` would return it."""
        unstored: tuple[str, ...] = ()
        if self.index_fields is not None and ("stored_fields" in body or "stored_fields" in params):
            unstored = await self.index_fields.unstored(index, fields, headers)
        shadowed, added = es_plan.field_split(body, params, fields, unstored)
        if (
            added
            and self.index_fields is not None
            and es_plan.source_whole(body, params)
            and await self.index_fields.in_source(index, added, headers)
        ):
            # The text comes back in ``_source`` anyway: not asking for it again in
            # ``fields`` halves the cluster's answer (docs/speed.md, the cache-hit path).
            added = ()
        return shadowed, added
