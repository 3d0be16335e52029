"""Waiting on what a test can observe, never for a fixed time.

``await wait_for(predicate, timeout_s)`` polls ``predicate`` (a function, or a
coroutine function) until it returns something truthy and returns that value;
``wait_until`` does the same from blocking code (a thread, a subprocess test).
Both fail the test with ``what`` once the deadline passes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

POLL_S = 0.02


class _Deadline:
    """``timeout_s`` from now; ``check`` fails the test with ``what`` once it has passed."""

    def __init__(self, timeout_s: float, what: str) -> None:
        self._at = time.monotonic() + timeout_s
        self._message = f"{what} did not hold within {timeout_s} s"

    def check(self) -> None:
        if time.monotonic() >= self._at:
            pytest.fail(self._message)


async def wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout_s: float = 10.0,
    *,
    what: str = "the condition",
    poll_s: float = POLL_S,
) -> T:
    """The first truthy value of ``predicate()``, polled every ``poll_s`` for ``timeout_s``."""
    deadline = _Deadline(timeout_s, what)
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        deadline.check()
        await asyncio.sleep(poll_s)


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float = 10.0,
    *,
    what: str = "the condition",
    poll_s: float = POLL_S,
) -> T:
    """``wait_for`` for blocking code."""
    deadline = _Deadline(timeout_s, what)
    while not (value := predicate()):
        deadline.check()
        time.sleep(poll_s)
    return value
