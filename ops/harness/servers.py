"""The servers a benchmark runs against, each a context manager that stops what it started.

- ``RedisServer`` / ``redis_server``: a private ``redis-server`` on a free port, no
  persistence (restartable, for runs that stop Redis midway)
- ``osmem``: osmem-server (OpenSearch API, in memory); ``seeded``: a BEIR corpus into it
- ``noida_db``: a fresh noida-db (Elasticsearch 8.15 API, ``--only elasticsearch``)
- ``running``: the gateway in this process (``create_app``), model loaded
- ``gateway_process``: ``python -m gateway`` with an environment of its own (``gateway_env``),
  its log in a file; ``wait_ready``; ``rss_kib`` / ``cpu_seconds`` of a process
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.app import create_app
from gateway.app import wait_ready as model_ready
from gateway.offline.seeding import Cluster, seed
from gateway.settings import Settings
from gateway.web.protocol import GatewayRunner
from ops.harness.ports import free_port, wait_http, wait_port

REPO = Path(__file__).resolve().parents[2]
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


# ------------------------------------------------------------------------ Redis


class RedisServer:
    """A private redis-server on a free port, restartable (``start`` / ``stop``)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (or pass --redis-url)")
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, *("--port", str(self.port), "--bind", "127.0.0.1"), *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 10)

    def stop(self) -> None:
        if self.process is not None:
            end(self.process)
            self.process = None


@contextmanager
def redis_server() -> Iterator[str]:
    """A started private Redis; its URL (database 0)."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


# --------------------------------------------------------------- search servers


@contextmanager
def osmem() -> Iterator[str]:
    """An empty osmem-server; its URL."""
    from osmem_server import OsmemServer

    server = OsmemServer.start()
    try:
        yield server.url
    finally:
        server.close()
        if server.process.stdout is not None:  # the launcher leaves its pipe open
            server.process.stdout.close()


def seeded(url: str, index: str, corpus: Path, limit: int | None = None) -> int:
    """(Re)create ``index`` at ``url`` from a BEIR ``corpus.jsonl`` (``title``, ``text``)."""
    return seed(Cluster(url, None, None), corpus, index, chunk=1000, limit=limit, recreate=True)


def noida_binary() -> str | None:
    # Also next to this interpreter: the venv's bin/ need not be on PATH.
    venv_bin = str(Path(sys.executable).parent)
    return shutil.which("noida-db") or shutil.which("noida-db", path=venv_bin)


@contextmanager
def noida_db(timeout_s: float = 30) -> Iterator[str]:
    """A fresh, empty noida-db on a free port; its URL. Stopped and its data removed after."""
    program = noida_binary()
    if program is None:
        raise RuntimeError("noida-db is not installed (pip install noida-db)")
    data_dir = tempfile.mkdtemp(prefix="noida-")
    port = free_port()
    argv = [program, "start", "--only", "elasticsearch", "--data-dir", data_dir]
    proc = subprocess.Popen(
        [*argv, "--elasticsearch-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # The launcher runs the server as a child: a group of its own lets both be stopped.
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/", timeout_s)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


# ---------------------------------------------------------------- the gateway


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    quiet: bool = False,
    timeout_s: float = 300,
) -> AsyncIterator[tuple[web.Application, str]]:
    """The gateway in this process on ``port`` (0: a free one), model loaded: (app, URL).
    ``quiet``: no access log."""
    app = create_app(settings)
    runner = GatewayRunner(app, access_log=None) if quiet else GatewayRunner(app)
    await runner.setup()
    port = port or free_port()
    try:
        await web.TCPSite(runner, host, port).start()
        await model_ready(app, timeout_s=timeout_s)
        yield app, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def gateway_env(settings: Mapping[str, str], passed_on: tuple[str, ...] = ()) -> dict[str, str]:
    """This environment without its ``GATEWAY_*`` variables (but those starting with one of
    ``passed_on``), plus ``settings`` (``GATEWAY_*`` name → value)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    if passed_on:
        env.update({k: v for k, v in os.environ.items() if k.startswith(passed_on)})
    env.update(settings)
    return env


@contextmanager
def gateway_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m gateway``, its log in a file (a pipe nobody reads would block it)."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"], env=env, cwd=REPO, stdout=sink, stderr=sink
        )
        try:
            yield process
        finally:
            end(process)


def end(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


async def wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    """Until the gateway process answers ``/_gateway/health/ready`` with 200."""
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the gateway exited with status {process.returncode}:\n{log_tail(log)}"
                )
            try:
                async with session.get(url + "/_gateway/health/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the gateway at {url} was not ready in {timeout_s} s")


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB (Linux ``/proc``)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
