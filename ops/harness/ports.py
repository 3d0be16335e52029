"""Loopback ports: a free one, and waiting until something answers on one."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout_s: float) -> None:
    """Until a TCP connection to 127.0.0.1:``port`` succeeds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout_s} s"
                ) from exc
            time.sleep(0.05)


def wait_http(url: str, timeout_s: float) -> None:
    """Until ``GET url`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 in {timeout_s} s")
        time.sleep(0.1)
