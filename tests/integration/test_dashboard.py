"""The Grafana dashboard (ops/grafana/gateway.json) queries only what the gateway exports.

A gateway in front of osmem-server, with the real Redis cache and an A/B test,
serves a mix of searches (reranked, cached, skipped, each experiment arm), a
passthrough call and a cluster error; then every PromQL expression of every
panel and template variable is parsed, and each metric it selects must be a
sample name of ``/_gateway/metrics`` (so histogram ``_bucket``/``_count``/``_sum``
and counter ``_total`` suffixes are checked as written), each label it matches
or groups by must be a label of those samples. ``job`` and ``instance`` are
added by Prometheus at scrape time; ``le`` is the histogram bucket label.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.model.fake import FakeEncoder
from tests.conftest import GatewayFactory, make_settings

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "gateway.json"
SCRAPE_LABELS = {"job", "instance"}
# PromQL functions and aggregations the dashboard may use; anything else called is a typo.
FUNCTIONS = {
    "sum", "avg", "max", "min", "count", "rate", "irate", "increase", "histogram_quantile",
    "label_values", "clamp_min", "topk",
}  # fmt: skip
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*\"")
_LABEL_VALUES = re.compile(r"label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


class Query:
    """The metric names, matched labels and grouping labels of one PromQL expression."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.matched: dict[str, set[str]] = defaultdict(set)
        self.grouped: set[str] = set()
        # A template variable's label_values(selector, label): the label is a grouping one.
        if values := _LABEL_VALUES.fullmatch(expr.strip()):
            expr, label = values.groups()
            self.grouped.add(label)
        for name, matchers in _SELECTOR.findall(expr):
            self.matched[name] |= {label for label, _ in _MATCHER.findall(matchers)}
        rest = _SELECTOR.sub(" ", _STRING.sub('""', expr))
        self.grouped |= {
            label.strip()
            for _, labels in _GROUPING.findall(rest)
            for label in labels.split(",")
            if label.strip()
        }
        rest = _GROUPING.sub(" ", rest).replace("$__rate_interval", "")
        for match in _WORD.finditer(rest):
            word = match.group()
            called = rest[match.end() :].lstrip().startswith("(")
            if called:
                assert word in FUNCTIONS, f"unknown function {word!r} in {expr}"
            elif word not in KEYWORDS:
                self.matched.setdefault(word, set())  # a bare metric name (or a label argument)


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
) -> int:
    async with session.request(method, url, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status


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
    search = {"query": {"match": {"text": "capital"}}, "size": 3}
    async with aiohttp.ClientSession() as s:
        for arm in ("rerank", "rerank", "baseline"):  # reranked, then cached; the control arm
            assert await call(s, "POST", f"{url}/docs/_search", search, **{
                "X-Experiment-Override": arm
            }) == 200  # fmt: skip
        assert await call(s, "POST", f"{url}/docs/_search", search, **{"X-Rerank": "off"}) == 200
        assert await call(s, "GET", f"{url}/docs/_count") == 200  # passthrough
        assert await call(s, "POST", f"{url}/no-such-index/_search", search) == 404
        async with s.get(f"{url}/_gateway/metrics") as resp:
            text = await resp.text()

    labels: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels[sample.name] |= set(sample.labels)
    assert labels["gateway_cache_operations_total"]  # the traffic reached the Redis cache

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
