"""The gateway under test: settings built explicitly, and the servers the fixtures start.

``make_settings(upstream, **sections)`` and ``settings_with(urls, **sections)`` build
``Settings`` without the environment. ``GatewayFactory`` is the type of the
``gateway`` fixture (``url = await gateway(settings, encoder=None)``), ``Start`` that of
the functional suite's ``start`` fixture; ``GatewayTestServer`` serves the app with the
gateway's own runner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestServer

from gateway.settings import Settings
from gateway.web.protocol import GatewayRunner

GatewayFactory = Callable[..., Awaitable[str]]
Start = Callable[..., Awaitable[str]]


class GatewayTestServer(TestServer):
    """``TestServer`` with the gateway's own runner (ES-shaped protocol errors)."""

    async def _make_runner(self, **kwargs: Any) -> GatewayRunner:
        return GatewayRunner(self.app, **kwargs)


def make_settings(upstream: str, **sections: dict[str, Any]) -> Settings:
    """Settings for tests, built explicitly (no environment involved)."""
    values: dict[str, Any] = {"upstream": {"urls": [upstream]}}
    for name, section in sections.items():
        values[name] = {**values.get(name, {}), **section}
    return Settings.model_validate(values)


def settings_with(urls: list[str], **sections: dict[str, Any]) -> Settings:
    """Like ``make_settings``, with the upstream section open too (auth, TLS, failover)."""
    upstream = {"urls": urls, **sections.pop("upstream", {})}
    return Settings.model_validate({"upstream": upstream, **sections})
