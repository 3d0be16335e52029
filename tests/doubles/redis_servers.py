"""Private ``redis-server`` processes for tests: on free ports, killed and started again.

``RedisProcess`` runs one in a work directory (TLS or cluster flags as asked);
``OwnRedis`` is the load tools' ``RedisServer`` with a URL and a key count.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from ops.harness.servers import RedisServer
from tests.doubles.net import free_port


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisProcess:
    """A private redis-server (no persistence) that can be killed and started again."""

    def __init__(self, workdir: Path, *args: str, tls: bool = False) -> None:
        self.port = _cluster_port() if "--cluster-enabled" in args else free_port()
        self.workdir = workdir
        ports = ["--port", "0", "--tls-port", str(self.port)] if tls else ["--port", str(self.port)]
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.argv = [binary, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.argv += list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


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
