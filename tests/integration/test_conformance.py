"""Elasticsearch's YAML client tests, bare backend vs. the gateway in front of it.

One test per YAML file of ``../shared/conformance/elasticsearch-clients-tests``:
the file runs through the official ``elasticsearch`` client against a dedicated,
empty noida-db, then against the gateway (reranking on, real ONNX model, the
documents' ``name``/``author`` as text); every test that passes bare must pass
through the gateway. The cluster is emptied before each run. Pass counts are
printed at the end of the module.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from gateway.model.onnx import OnnxCrossEncoder
from tests.doubles.corpora import REPO
from tests.doubles.gateway import GatewayFactory, make_settings
from tests.doubles.search_servers import start_noida
from tests.integration.oracle import load_model
from tests.integration.yaml_runner import Runner, YamlFile

SUITE = Path(
    os.environ.get(
        "GATEWAY_TEST_CONFORMANCE_DIR",
        REPO.parent / "shared" / "conformance" / "elasticsearch-clients-tests",
    )
)
FILES = sorted(SUITE.glob("*.yml"))
Counts = dict[str, list[int]]  # backend/gateway -> [passed, run]


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    """A noida-db of this module's own: the files create and delete indices freely."""
    with start_noida() as url:
        yield url


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> OnnxCrossEncoder:
    return load_model(model_dir)


@pytest.fixture(scope="module")
def counts(request: pytest.FixtureRequest) -> Iterator[Counts]:
    totals: Counts = {"bare": [0, 0], "gateway": [0, 0]}
    yield totals
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # straight to the terminal, not the capture
        for name, (passed, run) in totals.items():
            reporter.write_line(f"conformance via {name}: {passed}/{run} YAML tests passed")


def reset(url: str) -> None:
    with Elasticsearch(url) as es:
        for index in es.indices.get(index="*", expand_wildcards="all"):
            es.indices.delete(index=index)


def run_clean(url: str, spec: YamlFile) -> dict[str, str | None]:
    reset(url)
    return Runner(url).run_file(spec)


def test_suite_is_there() -> None:
    assert len(FILES) >= 20, f"conformance tests not found in {SUITE}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_gateway_passes_what_the_backend_passes(
    path: Path,
    backend: str,
    encoder: OnnxCrossEncoder,
    gateway: GatewayFactory,
    counts: Counts,
) -> None:
    spec = YamlFile.load(path)
    settings = make_settings(backend, rerank={"window": 10, "fields": ["name", "author"]})
    url = await gateway(settings, encoder=encoder)
    bare = await asyncio.to_thread(run_clean, backend, spec)
    via = await asyncio.to_thread(run_clean, url, spec)
    for name, results in (("bare", bare), ("gateway", via)):
        counts[name][0] += sum(error is None for error in results.values())
        counts[name][1] += len(results)
    lost = {name: via[name] for name, error in bare.items() if error is None and via[name]}
    assert not lost, f"pass bare, fail through the gateway: {lost}"
