"""The fault suite's corpus and its other doubles: a black-hole TCP server, a port whose
connects time out, a private Redis.

The scripted upstream itself (``ScriptedUpstream``, ``slow``, ``reset_mid_body``)
and the client (``call``, ``Answer``) are in ``tests.upstream``.
"""

from __future__ import annotations

import asyncio
import socket

import redis

from ops.harness.servers import RedisServer

# Upstream (BM25-like) order: d0 first. The fake model prefers documents sharing query words.
DOCS = [
    {"_id": f"d{i}", "title": f"document {i}", "text": text}
    for i, text in enumerate(
        [
            "nothing relevant here",
            "weather report for tuesday",
            "berlin population is about 3.7 million",
            "recipes with potatoes",
            "berlin wall history",
            "football scores",
            "population of berlin and its districts berlin",
            "stock market news",
        ]
    )
]
QUERY = "berlin population"
FAKE_ORDER = ["d6", "d2", "d4"]  # what FakeEncoder puts first for QUERY


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


class OwnRedis(RedisServer):
    """A private redis-server on a free port that tests may stop and restart."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def keys(self) -> int:
        client = redis.Redis(port=self.port)
        try:
            return int(client.dbsize())
        finally:
            client.close()
