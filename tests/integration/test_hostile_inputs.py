"""Hostile input costs nothing (issue 12): the real gateway process (real model, default
settings) in front of osmem-server, sent the ``ops.hostile`` mix twice: a ``match`` of 20 KB
and of 1 MB, a 1 MB ``ext.rerank.query`` and a ``_msearch`` of 10,000 sub-searches.

Stated bounds: RSS grows by less than 150 MiB over both rounds (before the fix one 20 KB
query added 0.3-0.9 GB and the ``_msearch`` 2.5 GB), the health check answers within
100 ms throughout (99% of the probes; none over 250 ms: the probe shares two cores with the
model thread and the test's own client; before the fix the ``_msearch`` stalled the loop for
seconds), and SIGTERM afterwards ends the process within the 10 s shutdown timeout (it took
~30 s).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from pathlib import Path

from ops.harness.ports import free_port
from ops.harness.servers import gateway_process, log_tail, wait_ready
from ops.hostile import drive, gateway_env

RSS_GROWTH_MIB = 150
HEALTH_MS = 100
HEALTH_CEILING_MS = 250
SHUTDOWN_S = 10


async def test_hostile_requests_cost_bounded_memory_and_no_loop_time(
    osmem: str, model_dir: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="hostile-")) / "gateway.log"
    with gateway_process(gateway_env(port, osmem, model_dir), log) as process:
        await wait_ready(url, process, log, 120)
        figures = await drive(url, process.pid, rounds=2, subs=10_000)
        process.terminate()
        t0 = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):  # gateway_process kills it
            process.wait(SHUTDOWN_S + 5)
        stopped_s = time.monotonic() - t0
    print(figures.line())
    assert figures.statuses == {200: 8}, log_tail(log)
    # Each long query is reranked (on its first tokens); the _msearch goes as sent.
    answers = dict(figures.answers)
    assert answers["match 20000 chars: full/-"] == 2
    assert answers["match 1048576 chars: full/-"] == 2
    assert answers["ext.rerank.query 1048576 chars: full/-"] == 2
    assert answers["_msearch x10000: skipped/too_many_pairs"] == 2
    growth_mib = (figures.rss_after_kib - figures.rss_before_kib) / 1024
    assert growth_mib < RSS_GROWTH_MIB, figures.line()
    assert (figures.peak_kib - figures.rss_before_kib) / 1024 < 2 * RSS_GROWTH_MIB, figures.line()
    assert len(figures.health_ms) > 20  # the probe ran all along
    within = sorted(figures.health_ms)[int(len(figures.health_ms) * 0.99) - 1]
    assert within < HEALTH_MS, figures.line()
    assert max(figures.health_ms) < HEALTH_CEILING_MS, figures.line()
    assert stopped_s < SHUTDOWN_S, f"SIGTERM took {stopped_s:.1f} s"
