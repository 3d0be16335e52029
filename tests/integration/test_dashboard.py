"""The Grafana dashboard (ops/grafana/gateway.json) queries only what the gateway exports.

A gateway in front of osmem-server, with the real Redis cache and an A/B test,
serves a mix of searches (reranked, cached, skipped, each experiment arm), a
passthrough call and a cluster error; then every PromQL expression of every
panel and template variable is parsed, and each metric it selects must be a
sample name of ``/_gateway/metrics`` (so histogram ``_bucket``/``_count``/``_sum``
and counter ``_total`` suffixes are checked as written), each label it matches
or groups by must be a label of those samples. Expressions are parsed with
``promql-parser`` (PromQL's grammar and function list). ``job`` and ``instance`` are
added by Prometheus at scrape time; ``le`` is the histogram bucket label.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from typing import Any

import aiohttp
import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.model.fake import FakeEncoder
from tests.doubles.corpora import REPO
from tests.doubles.gateway import GatewayFactory, make_settings

DASHBOARD = REPO / "ops" / "grafana" / "gateway.json"
SCRAPE_LABELS = {"job", "instance"}
# Grafana's own range variable, replaced by a duration before parsing.
GRAFANA_RANGES = ("$__rate_interval", "$__interval", "$__range")
_LABEL_VALUES = re.compile(r"label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")


class Query:
    """The metric names, matched labels and grouping labels of one PromQL expression,
    from the expression's syntax tree (``promql-parser``, the Rust PromQL parser: a
    syntax error or an unknown function fails here)."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.matched: dict[str, set[str]] = defaultdict(set)
        self.grouped: set[str] = set()
        # A template variable's label_values(selector, label): the label is a grouping one.
        if values := _LABEL_VALUES.fullmatch(expr.strip()):
            expr, label = values.groups()
            self.grouped.add(label)
        for variable in GRAFANA_RANGES:
            expr = expr.replace(variable, "5m")
        promql_parser.walk(promql_parser.parse(expr), pre_visit=self._visit)

    def _visit(self, node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {self.expr}"
            self.matched[node.name] |= {m.name for m in node.matchers.matchers}
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            self.grouped |= set(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                self.grouped |= set(node.modifier.matching.labels)
            self.grouped |= set(node.modifier.group_labels or [])


def dashboard_queries() -> list[tuple[str, Query]]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], Query(target["expr"])))
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"${var['name']}", Query(var["query"]["query"])))
    return out


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None, **headers: str
) -> tuple[int, str | None]:
    """The status and ``X-Rerank`` of one answer."""
    async with session.request(method, url, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Rerank")


def test_dashboard_parses_into_queries() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    assert Query("label_values(up{job=~'x'}, instance)").grouped == {"instance"}
    q = Query(
        'histogram_quantile(0.95, sum by (le, route) (rate(gateway_request_seconds_bucket{job=~"$j"'
        ', outcome!="5xx"}[$__rate_interval]))) / ignoring (variant) group_left other_total'
    )
    assert q.matched == {"gateway_request_seconds_bucket": {"job", "outcome"}, "other_total": set()}
    assert q.grouped == {"le", "route", "variant"}
    with pytest.raises(ValueError):
        Query("sum by (route) (rat(gateway_requests_total[5m]))")  # unknown function


async def test_every_panel_metric_is_exported(
    osmem: str, redis_url: str, gateway: GatewayFactory
) -> None:
    settings = make_settings(
        osmem,
        rerank={"window": 5},
        cache={"redis_url": redis_url},
        experiment={"mode": "ab", "name": f"dash-{uuid.uuid4().hex[:8]}"},
    )
    url = await gateway(settings, encoder=FakeEncoder())
    search = {"query": {"match": {"text": "berlin population"}}, "size": 3}
    async with aiohttp.ClientSession() as s:
        # Reranked, then the same from the cache; the control arm; opted out.
        for arm, rerank in (("rerank", "full"), ("rerank", "full"), ("baseline", "skipped")):
            override = {"X-Experiment-Override": arm}
            assert await call(s, "POST", f"{url}/docs/_search", search, **override) == (200, rerank)
        opt_out = {"X-Rerank": "off"}
        assert await call(s, "POST", f"{url}/docs/_search", search, **opt_out) == (200, "skipped")
        assert (await call(s, "GET", f"{url}/docs/_count"))[0] == 200  # passthrough
        assert (await call(s, "POST", f"{url}/no-such-index/_search", search))[0] == 404
        async with s.get(f"{url}/_gateway/metrics") as resp:
            text = await resp.text()

    labels: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels[sample.name] |= set(sample.labels)
    hits = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_cache_operations_total" and sample.labels["result"] == "hits"
    ]
    assert hits and hits[0] >= 3  # the repeated search was served from Redis

    missing = []
    for title, query in dashboard_queries():
        for metric, matched in query.matched.items():
            if metric not in labels:
                missing.append(f"{title}: metric {metric}")
                continue
            for label in matched - SCRAPE_LABELS - labels[metric]:
                missing.append(f"{title}: {metric} has no label {label}")
        known = set().union(*(labels.get(m, set()) for m in query.matched))
        for label in query.grouped - SCRAPE_LABELS - {"le"} - known:
            missing.append(f"{title}: grouping label {label} on none of {sorted(query.matched)}")
    assert not missing, "\n".join(missing)
