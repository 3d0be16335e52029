"""Experiments through the whole gateway in front of the real osmem-server (FakeEncoder scores:
the point here is the pipeline), events in memory and in real Redis, the report page in a real
headless Chromium (figures checked without scripts, as a screenshot shows them)."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.cli import main as cli_main
from gateway.experiments.arms import bucket, team_draft
from gateway.experiments.events import stream_key
from gateway.model.fake import FakeEncoder
from tests.doubles.experiments import (
    QUERY,
    SIZE,
    WINDOW,
    call,
    ids,
    report_when,
    search_body,
    start,
)
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.net import free_port
from tests.doubles.redis_servers import RedisProcess


async def test_ab_assignment_headers_and_control(gateway: GatewayFactory, osmem: str) -> None:
    url = await start(gateway, osmem, mode="ab")
    seen: dict[str, str] = {}
    for user in (f"user-{i}" for i in range(12)):
        answers = [
            await call("POST", f"{url}/docs/_search", search_body(), **{"X-User-Id": user})
            for _ in range(2)
        ]
        (s1, h1, a1), (s2, h2, _) = answers
        assert s1 == s2 == 200
        assert h1["X-Experiment-Variant"] == h2["X-Experiment-Variant"]  # sticky
        assert h1["X-Search-Id"] != h2["X-Search-Id"]
        seen[user] = h1["X-Experiment-Variant"]
        if seen[user] == "baseline":
            assert (h1["X-Rerank"], h1["X-Rerank-Reason"]) == ("skipped", "experiment_control")
            _, _, plain = await call(
                "POST", f"{osmem}/docs/_search", search_body()
            )  # the control is the cluster's own answer
            assert a1["hits"]["hits"] == plain["hits"]["hits"]
        else:
            assert h1["X-Rerank"] == "full"
    assert set(seen.values()) == {"baseline", "rerank"}
    forced = await call(
        "POST",
        f"{url}/docs/_search",
        search_body(),
        **{"X-User-Id": "user-0", "X-Experiment-Override": "rerank"},
    )
    assert forced[1]["X-Experiment-Variant"] == "rerank"
    # The forced search is counted apart: the experiment's figures hold the 24 assigned ones.
    report = await report_when(url, lambda r: r["overrides"] == {"rerank": 1})
    assert sum(v["searches"] for v in report["variants"].values()) == 24
    assert report["ab"]["arms"]["rerank"]["searches"] == report["variants"]["rerank"]["searches"]
    # The metrics endpoint counts the same searches per arm.
    async with aiohttp.ClientSession() as s, s.get(f"{url}/_gateway/metrics") as r:
        text = await r.text()
    counted = {
        variant: sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("gateway_experiment_variant_total{")
            and f'variant="{variant}"' in line
        )
        for variant in ("baseline", "rerank")
    }
    expected = {v: sum(1 for x in seen.values() if x == v) * 2 for v in counted}
    expected["rerank"] += 1  # the forced search
    assert counted == expected


async def test_unknown_override_is_a_400(gateway: GatewayFactory, osmem: str) -> None:
    url = await start(gateway, osmem, mode="ab")
    status, headers, body = await call(
        "POST", f"{url}/docs/_search", search_body(), **{"X-Experiment-Override": "nosuch"}
    )
    assert status == 400, body
    assert body["error"]["type"] == "illegal_argument_exception"
    assert body["error"]["root_cause"][0]["type"] == "illegal_argument_exception"
    assert "baseline, rerank" in body["error"]["reason"] and "nosuch" not in str(body)
    assert "X-Search-Id" not in headers


async def test_key_parameter_is_removed_before_forwarding(
    gateway: GatewayFactory, osmem: str
) -> None:
    url = await start(gateway, osmem, mode="ab", key="param:uid")
    status, headers, answer = await call("GET", f"{url}/docs/_search?q=berlin&uid=u7&size=3")
    assert status == 200, answer  # osmem rejects unknown parameters: uid never reached it
    again = await call("GET", f"{url}/docs/_search?q=berlin&uid=u7&size=3")
    assert again[1]["X-Experiment-Variant"] == headers["X-Experiment-Variant"]


async def test_interleaving_page_teams_and_click_attribution(
    gateway: GatewayFactory, osmem: str
) -> None:
    url = await start(gateway, osmem, mode="interleave")
    user = "user-interleave"
    _, _, control = await call(
        "POST",
        f"{url}/docs/_search",
        search_body(size=WINDOW),
        **{"X-Experiment-Override": "baseline"},
    )
    _, _, treatment = await call(
        "POST",
        f"{url}/docs/_search",
        search_body(size=WINDOW),
        **{"X-Experiment-Override": "rerank"},
    )
    assert ids(control) != ids(treatment)  # the two rankers disagree on this query
    status, headers, page = await call(
        "POST", f"{url}/docs/_search", search_body(), **{"X-User-Id": user}
    )
    assert status == 200 and headers["X-Experiment-Variant"] == "interleave"
    shown = ids(page)
    assert len(shown) == SIZE == len(set(shown))  # no duplicates
    assert set(shown) <= set(ids(control))
    # The page is the team draft of both lists with this user's coin flips; teams stay
    # server-side (the answer is a plain ES answer).
    name = (await call("GET", f"{url}/_gateway/experiments/report"))[2]["experiment"]
    seed = int(bucket(name, user) * 2**53)
    merged, teams = team_draft(ids(control), ids(treatment), random.Random(seed))
    assert shown == merged[:SIZE]
    assert all("team" not in str(h) for h in page["hits"]["hits"])
    # A click on a treatment hit is a win, on a control hit (another search) a loss.
    sid = headers["X-Search-Id"]
    b_doc = shown[teams.index("B")]
    status, _, ok = await call(
        "POST", f"{url}/_gateway/events", {"search_id": sid, "id": b_doc, "index": "docs"}
    )
    assert status == 202 and ok == {"accepted": 1}
    _, h2, _ = await call("POST", f"{url}/docs/_search", search_body(), **{"X-User-Id": user})
    await call(
        "POST",
        f"{url}/_gateway/events",
        [{"search_id": h2["X-Search-Id"], "position": teams.index("A") + 1}],
    )
    report = await report_when(
        url, lambda r: r["interleaving"]["wins"] + r["interleaving"]["losses"] == 2
    )
    assert (report["interleaving"]["wins"], report["interleaving"]["losses"]) == (1, 1)
    assert report["variants"]["interleave"]["clicks"] == 2


async def test_shadow_never_changes_what_the_client_sees(
    gateway: GatewayFactory, osmem: str
) -> None:
    url = await start(gateway, osmem, mode="shadow")
    queries = [QUERY, "berlin wall", "museum island", "population of germany"]
    for i, q in enumerate(queries):
        _, h, shadowed = await call(
            "POST", f"{url}/docs/_search", search_body(q), **{"X-User-Id": f"u{i}"}
        )
        _, _, plain = await call("POST", f"{osmem}/docs/_search", search_body(q))
        assert shadowed["hits"] == plain["hits"]  # hits, scores, totals, max_score
        assert h["X-Experiment-Variant"] == "baseline" and h["X-Rerank-Reason"] == "shadow"
    report = await report_when(url, lambda r: r["shadow"].get("rerank", {}).get("searches") == 4)
    shadow = report["shadow"]["rerank"]
    assert shadow["measured"] == 4 and shadow["statuses"] == {"full": 4}
    assert 0 <= shadow["overlap_at_k"] <= 1 and -1 <= shadow["kendall_tau"] <= 1
    assert shadow["first_baseline_hit_rank"] >= 1
    assert report["variants"]["baseline"]["searches"] == 4


async def test_click_validation_is_es_shaped(gateway: GatewayFactory, osmem: str) -> None:
    url = await start(gateway, osmem, mode="ab")
    for bad in ({"id": "x"}, {"search_id": "s"}, {"search_id": "s", "position": 0}, "[1"):
        status, _, body = await call("POST", f"{url}/_gateway/events", bad)
        assert status == 400
        assert body["error"]["type"] == "illegal_argument_exception"


async def click_reranked_hit(url: str, rank: int) -> None:
    """One search served by the ``rerank`` variant (the experiment's only arm: forced
    searches are counted apart), and a click on its hit at ``rank``."""
    _, h, answer = await call("POST", f"{url}/docs/_search", search_body())
    assert h["X-Experiment-Variant"] == "rerank"
    click = {"search_id": h["X-Search-Id"], "id": ids(answer)[rank]}
    await call("POST", f"{url}/_gateway/events", click)


async def test_events_in_the_caches_authenticated_redis(
    gateway: GatewayFactory, osmem: str, own_redis: Callable[..., RedisProcess]
) -> None:
    password = "quiet-otter-5120"  # a throwaway test server's password
    server = own_redis("--requirepass", password)
    redis = f"redis://127.0.0.1:{server.port}/0"
    name = f"t-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        osmem,
        rerank={"window": WINDOW},
        cache={"redis_url": redis, "redis_password": password, "timeout_s": 1.0},
        experiment={"mode": "ab", "name": name, "variants": "rerank:1"},
    )
    url = await gateway(settings, encoder=FakeEncoder())
    await click_reranked_hit(url, 0)
    report = await report_when(url, lambda r: r["variants"].get("rerank", {}).get("clicks") == 1)
    assert report["variants"]["rerank"]["searches"] == 1
    client = aioredis.Redis.from_url(redis, password=password)
    try:
        assert await client.xlen(stream_key(name)) == 2  # the impression and the click
    finally:
        await client.aclose()


async def test_events_in_redis(gateway: GatewayFactory, osmem: str, redis_url: str) -> None:
    url = await start(gateway, osmem, redis=redis_url, mode="ab", variants="rerank:1")
    await click_reranked_hit(url, 1)
    report = await report_when(url, lambda r: r["variants"].get("rerank", {}).get("clicks") == 1)
    assert report["variants"]["rerank"]["mrr"] == 0.5
    # Another replica on the same stream sees the same figures.
    other = await gateway(
        make_settings(
            osmem,
            experiment={"mode": "ab", "name": report["experiment"], "events_redis_url": redis_url},
        ),
        encoder=FakeEncoder(),
    )
    assert (await call("GET", f"{other}/_gateway/experiments/report"))[2]["variants"] == report[
        "variants"
    ]


async def chromium(url: str, *flags: str) -> str:
    """Run headless Chromium (a fresh profile, nothing phoned home) on ``url``; its stdout."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian chromium is required (ops/test.sh installs it)"
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *flags,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(90):
            out, _ = await proc.communicate()
    return out.decode()


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def signed_pts(value: float) -> str:
    return f"{value * 100:+.1f} pts".replace("-", "−")


def signed(value: float) -> str:
    return f"{value:+.3f}".replace("-", "−")


async def test_report_page_renders_in_headless_chromium(
    gateway: GatewayFactory, osmem: str, tmp_path: Path
) -> None:
    url = await start(gateway, osmem, mode="ab")
    # Scripted traffic: 48 users, sticky arms; the treatment's searches are clicked 3 times in
    # 4, the control's 1 in 4, plus one QA search forced onto the treatment.
    for i in range(48):
        _, h, _ = await call("POST", f"{url}/docs/_search", search_body(), **{"X-User-Id": f"u{i}"})
        if (h["X-Experiment-Variant"] == "rerank") == (i % 4 != 0):
            await call(
                "POST", f"{url}/_gateway/events", {"search_id": h["X-Search-Id"], "position": 1}
            )
    await call("POST", f"{url}/docs/_search", search_body(), **{"X-Experiment-Override": "rerank"})
    report = await report_when(url, lambda r: r["overrides"] == {"rerank": 1})
    arm = report["ab"]["arms"]["rerank"]
    assert arm["verdict"] == "better"  # 3 in 4 clicked against 1 in 4, some 24 searches an arm
    page = f"{url}/_gateway/experiments"

    # The served HTML itself holds the figures (what curl shows) ...
    async with aiohttp.ClientSession() as s, s.get(page) as r:
        served = await r.text()
    # ... and so does the page as Chromium has it at load, without waiting for scripts.
    dom = await chromium(page, "--dump-dom")
    for html in (served, dom):
        check_figures(html, arm)
    shot = tmp_path / "report.png"
    await chromium(page, f"--screenshot={shot}", "--window-size=1200,1600")
    assert png_size(shot) == (1200, 1600) and shot.stat().st_size > 20_000

    # With time for scripts, the local asset adds the charts; nothing is fetched from elsewhere.
    dom = await chromium(page, "--virtual-time-budget=10000", "--dump-dom")
    assert 'data-drawn="true"' in dom and 'data-metric="ctr_at_k"' in dom
    for variant in ("baseline", "rerank"):
        assert f'data-variant="{variant}"' in dom
    assert "http://" not in dom.replace(url, "")  # nothing fetched from elsewhere


def check_figures(dom: str, arm: dict[str, Any]) -> None:
    """The verdict line and the three intervals of ``arm`` (the JSON report's) in ``dom``."""
    ctr = arm["ctr_at_k"]
    low, high = (signed_pts(v) for v in ctr["ci95"])
    assert "rerank vs baseline: treatment better" in dom, dom[:3000]
    assert f"CTR@10 {signed_pts(ctr['diff'])} (95% CI {low} to {high})" in dom
    assert f"<td>{low} to {high}</td>" in dom  # the differences table, CTR@10 row
    mrr_low, mrr_high = (signed(v) for v in arm["mrr"]["ci95"])
    assert f"<td>{mrr_low} to {mrr_high}</td><td>" in dom
    ab_low, ab_high = (signed_pts(v) for v in arm["abandonment"]["ci95"])
    assert f"<td>{ab_low} to {ab_high}</td><td>" in dom
    assert 'id="overrides">rerank 1<' in dom
    assert "Interleaving" not in dom and "Shadow" not in dom  # only the active mode


async def test_the_report_command_prints_the_running_gateways_report(
    gateway: GatewayFactory, osmem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await start(gateway, osmem, mode="ab", variants="baseline:1,rerank:1")
    for user in ("u1", "u2", "u3", "u4"):
        await call("POST", f"{url}/docs/_search", search_body(), **{"X-User-Id": user})
    report = await report_when(
        url, lambda r: sum(v["searches"] for v in r["variants"].values()) == 4
    )
    assert await asyncio.to_thread(cli_main, ["report", "--url", url]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"experiment {report['experiment']} (mode ab, k=10)\n")
    for name, variant in report["variants"].items():
        assert f"| {name} | {variant['searches']} | 0 |" in out
    assert await asyncio.to_thread(cli_main, ["report", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["variants"] == report["variants"]
    # Nothing listening: one line, status 1.
    dead = f"http://127.0.0.1:{free_port()}"
    assert await asyncio.to_thread(cli_main, ["report", "--url", dead]) == 1
    assert capsys.readouterr().err.startswith(f"report: {dead} failed: ")
