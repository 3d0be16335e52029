"""Ports and sockets: a free loopback port, a blocking JSON request, any aiohttp app on a
free port, bytes written on a raw connection (``raw_connection``), and two network faults.

``BlackHole`` accepts TCP connections and never answers (a hung Redis);
``Unconnectable`` is a loopback port whose connects time out (a black-holed host).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(method: str, url: str, body: Any = None, ndjson: bool = False) -> Any:
    """Blocking JSON request for fixtures (seeding), raising on error status."""
    if ndjson:
        data = body.encode()
        ctype = "application/x-ndjson"
    else:
        data = None if body is None else json.dumps(body).encode()
        ctype = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read()
    return json.loads(text) if text else None


@contextlib.asynccontextmanager
async def raw_connection(url: str, data: bytes) -> AsyncIterator[asyncio.StreamReader]:
    """``data`` written on a fresh connection to ``url``'s host and port: its reader, the
    connection closed on leaving (for requests whose exact bytes matter)."""
    target = URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(data)
        await writer.drain()
        yield reader
    finally:
        writer.close()


async def start_app(app: web.Application) -> TestServer:
    """Any aiohttp app (a scripted model server, say) on a free loopback port."""
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    return server


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


class BlackHole:
    """A TCP server that accepts connections and never answers (a hung Redis)."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)  # kept open, never written to

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class Unconnectable:
    """A loopback port whose TCP connects time out (a black-holed host, without leaving 127/8).

    It listens with a backlog of 0 and never accepts; one connection of its own
    fills the accept queue, so the kernel drops every further SYN and a client's
    connect hangs until its own timeout.
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._filler.close()
        self._listener.close()
