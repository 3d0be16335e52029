"""A few seconds of ``ops.load``'s mix against the gateway (real model) in front of osmem-server.

No timing is asserted: only that no answer is a 5xx, malformed, or a broken transfer.
The full run, with figures, is ``python -m ops.load`` (see its docstring).
"""

from __future__ import annotations

from pathlib import Path

from ops.load import Workload, drive
from tests.doubles.corpora import load_docs
from tests.doubles.gateway import GatewayFactory, make_settings


async def test_short_load_has_no_errors(
    osmem: str, model_dir: Path, gateway: GatewayFactory
) -> None:
    settings = make_settings(
        osmem,
        model={"path": str(model_dir), "intra_op_threads": 1},
        rerank={"window": 10, "timeout_s": 5.0},
    )
    url = await gateway(settings)
    docs = load_docs()
    workload = Workload([d["title"] for d in docs], [d["_id"] for d in docs])
    report = await drive(url, workload, requests=120, duration_s=20, concurrency=4)
    assert report.sent > 0
    assert report.server_errors == 0, report.lines()
    assert report.malformed == [], report.lines()
    assert not report.transport_errors, report.lines()
    assert report.rerank["full"] + report.rerank["partial"] > 0, report.lines()
