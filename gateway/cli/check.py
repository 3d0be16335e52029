"""``rerank-gateway check``: is this configuration ready to serve?

Prints the resolved settings (secrets masked), asks the search cluster ``GET /``
and ``GET /_mapping`` (the indices, their text fields, which are reranked),
loads the model and scores one pair, pings Redis when one is configured, and binds
GATEWAY_SERVER__HOST / GATEWAY_SERVER__PORT (``--host`` / ``--port``) and lets go, as
``serve`` would first (so a gateway already on that port reports it as taken).
Exit status 0 when everything answered, 1 on any problem, 2 for bad settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import to_jsonable_python

from gateway.cli.config import ConfigError, add_settings_flags, settings_from_args, with_flags
from gateway.cli.serve import listen, model_name, runs_on
from gateway.errors import GatewayError
from gateway.indices import name_allowed
from gateway.settings import Settings, env_name

MASK = "********"
PROBE = ("how many people live in berlin", "Berlin has a population of 3.5 million people.")


NAME = "check"
HELP = "check the settings, the cluster and the model"
configure = add_settings_flags


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str | int | float | Path):
        return str(value)
    return json.dumps(to_jsonable_python(value))  # nested secrets come out masked too


def describe_settings(settings: Settings) -> Iterator[str]:
    """``VARIABLE=value`` for every setting; secrets masked, credentials cut from URLs."""
    from gateway.web.access_log import redact_url  # the web layer: only imported when it runs

    for section, values in settings:
        assert isinstance(values, BaseModel)
        for field, value in values:
            shown = _shown(value)
            if section == "upstream" and field == "urls":
                shown = ",".join(redact_url(u) for u in value)
            yield f"{env_name(section, field)}={shown}"


def text_fields(properties: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the ``text`` fields in an index mapping's ``properties``."""
    out = []
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            continue
        if spec.get("type") == "text":
            out.append(prefix + name)
        out.extend(text_fields(spec.get("properties") or {}, f"{prefix}{name}."))
    return out


class Report:
    def __init__(self) -> None:
        self.problems = 0

    def ok(self, line: str) -> None:
        print(f"ok    {line}")

    def fail(self, line: str) -> None:
        self.problems += 1
        print(f"FAIL  {line}")

    def note(self, line: str) -> None:
        print(f"      {line}")


async def check_cluster(settings: Settings, report: Report) -> None:
    from multidict import CIMultiDict

    from gateway.upstream.client import Upstream
    from gateway.web.access_log import redact_url

    upstream = Upstream(settings.upstream)
    await upstream.start()
    urls = ", ".join(redact_url(u) for u in settings.upstream.urls)
    headers = upstream.outgoing_headers(CIMultiDict({"Accept": "application/json"}))
    try:
        root = await upstream.fetch("GET", "/", headers)
        if root.status != 200:
            report.fail(f"cluster {urls} answered GET / with {root.status}")
            return
        version = json.loads(root.body).get("version") or {}
        product = version.get("distribution") or "elasticsearch"
        report.ok(f"cluster {urls}: {product} {version.get('number', '?')}")
        mapping = await upstream.fetch("GET", "/_mapping", headers)
        if mapping.status != 200:
            report.fail(f"GET /_mapping answered {mapping.status}")
            return
        indices = {
            name: text_fields(((spec or {}).get("mappings") or {}).get("properties") or {})
            for name, spec in json.loads(mapping.body).items()
            if not name.startswith(".")
        }
    except (GatewayError, ValueError, AttributeError) as exc:
        report.fail(f"cluster {urls}: {exc if isinstance(exc, GatewayError) else 'not JSON'}")
        return
    finally:
        await upstream.close()
    wanted = settings.rerank.fields
    report.ok(f"{len(indices)} indices (GATEWAY_RERANK__FIELDS {','.join(wanted)}; * reranked)")
    for name, fields in sorted(indices.items()):
        reranked = name_allowed(name, settings.rerank.indices)
        missing = "" if set(wanted) & set(fields) else "  (none of GATEWAY_RERANK__FIELDS)"
        mark = "*" if reranked else " "
        report.note(f"{mark} {name}: {', '.join(fields) or 'no text fields'}{missing}")


def check_model(settings: Settings, report: Report, args: argparse.Namespace) -> None:
    from gateway.model.loader import load_encoder

    name = model_name(settings.model)
    started = time.perf_counter()
    try:
        encoder = load_encoder(settings.model, settings.speed)
        (score,) = encoder.score(encoder.encode([PROBE]))
    except GatewayError as exc:
        report.fail(f"model {name}: {with_flags(' '.join(str(exc).split()), args)}")
        return
    took = time.perf_counter() - started
    # The file MODEL__QUANTIZATION picked (``auto`` may choose another than MODEL__FILE).
    loaded = getattr(encoder, "model_file", None)
    name = f"{name} [{Path(loaded).name}]" if loaded is not None else name
    report.ok(
        f"model {name} ({runs_on(settings.model)}) loaded and scored a pair in {took:.1f} s"
        f" (score {float(score):.3f}, fingerprint {encoder.fingerprint})"
    )


async def check_redis(settings: Settings, report: Report) -> None:
    """PING each Redis the gateway would use, with the gateway's own client options."""
    from redis.exceptions import RedisError

    from gateway.redis import redis_client
    from gateway.web.access_log import redact_url

    urls = {settings.cache.redis_url, settings.experiment.events_redis_url} - {None}
    for url in urls:
        conf = settings.cache.model_copy(update={"timeout_s": 5.0})
        shown = redact_url(url.get_secret_value()) if url else ""
        client = redis_client(conf, url)
        try:
            await client.ping()
            report.ok(f"redis {shown} answers PING")
        except (RedisError, OSError) as exc:
            report.fail(f"redis {shown}: {type(exc).__name__}")
        finally:
            await client.aclose()


def check_listen(settings: Settings, report: Report) -> None:
    """Bind the address ``serve`` would listen on, then let it go."""
    try:
        sock = listen(settings.server)
    except ConfigError as exc:
        report.fail(" ".join(exc.lines))
        return
    with sock:
        port = sock.getsockname()[1]
    report.ok(f"can listen on {settings.server.host}:{port}")


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    print("settings (secrets masked):")
    for line in describe_settings(settings):
        print(f"  {line}")
    report = Report()
    asyncio.run(check_cluster(settings, report))
    check_model(settings, report, args)
    asyncio.run(check_redis(settings, report))
    check_listen(settings, report)
    if report.problems:
        print(f"{report.problems} problem(s): not ready to serve")
        return 1
    print("ready to serve")
    return 0
