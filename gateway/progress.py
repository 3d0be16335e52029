"""A one-line progress bar on a text stream (stderr), for long commands.

On a terminal the line is redrawn in place; elsewhere (a log, a pipe) a plain line is
written at most every ``every_s`` seconds, and once at the end.
"""

from __future__ import annotations

import time
from typing import TextIO

_WIDTH = 30


class Progress:
    def __init__(self, label: str, total: int | None, out: TextIO, every_s: float = 5.0) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._out = out
        self._tty = out.isatty()
        self._every_s = 0.1 if self._tty else every_s
        self._started = self._shown = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._shown >= self._every_s:
            self._shown = now
            self._draw(final=False)

    def close(self) -> None:
        self._draw(final=True)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = f"{self.done / elapsed:.1f}/s"
        if not self.total:
            return f"{self.label}: {self.done} ({rate})"
        share = min(self.done / self.total, 1.0)
        bar = "#" * round(share * _WIDTH)
        return f"{self.label}: [{bar:<{_WIDTH}}] {self.done}/{self.total} {share:4.0%} ({rate})"

    def _draw(self, final: bool) -> None:
        if self._tty:
            self._out.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self._out.write(self.line() + "\n")
        self._out.flush()
