"""A fresh noida-db (Elasticsearch 8.15 API, ``--only elasticsearch``) for tests and ops runs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def binary() -> str | None:
    # Also next to this interpreter: the venv's bin/ need not be on PATH.
    venv_bin = str(Path(sys.executable).parent)
    return shutil.which("noida-db") or shutil.which("noida-db", path=venv_bin)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout_s} s")


@contextmanager
def noida_db(timeout_s: float = 30) -> Iterator[str]:
    """A fresh, empty noida-db on a free port; its URL. Stopped and its data removed after."""
    program = binary()
    if program is None:
        raise RuntimeError("noida-db is not installed (pip install noida-db)")
    data_dir = tempfile.mkdtemp(prefix="noida-")
    port = _free_port()
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
        _wait_http(url + "/", timeout_s)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
