"""Which upstream URL a request tries first: per-URL dead/alive state with exponential back-off.

Modelled on elastic-transport's node pool (``_node_pool.py``): a URL that could
not be connected to (refused, DNS failure, connect timeout: nothing was sent)
is marked dead for ``backoff_s * 2 ** (failures in a row - 1)`` seconds, at most
``max_backoff_s``. A dead URL is tried only after every live one has failed for
this request. When its back-off is over, the next request tries it first in its
configured place (the others keep skipping it for another back-off while that
one probes); any answer from it marks it alive again.

URLs keep their configured priority: the first live one takes every request,
later ones are failover targets. One warning is logged when a URL goes dead,
one line when it answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from yarl import URL

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Dead:
    failures: int  # connection failures in a row
    retry_at: float  # monotonic time after which one request may try it again


class UrlPool:
    def __init__(
        self,
        urls: Sequence[str],
        backoff_s: float,
        max_backoff_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.urls = tuple(urls)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._dead: dict[str, _Dead] = {}

    def dead(self) -> list[str]:
        """The URLs marked dead now, in configured order."""
        return [url for url in self.urls if url in self._dead]

    def order(self) -> list[str]:
        """The URLs in the order one request should try them.

        Live ones and dead ones whose back-off is over, in configured order (a dead
        one taken here is reserved for this request's probe); then the other dead
        ones, soonest to be retried first, as a last resort.
        """
        now = self._clock()
        ready: list[str] = []
        waiting: list[str] = []
        for url in self.urls:
            state = self._dead.get(url)
            if state is None:
                ready.append(url)
            elif state.retry_at <= now:
                state.retry_at = now + self._backoff(state.failures)
                ready.append(url)
            else:
                waiting.append(url)
        waiting.sort(key=lambda url: self._dead[url].retry_at)
        return ready + waiting

    def mark_dead(self, url: str, why: BaseException) -> None:
        state = self._dead.get(url)
        failures = state.failures + 1 if state else 1
        timeout = self._backoff(failures)
        self._dead[url] = _Dead(failures, self._clock() + timeout)
        if state is None:
            log.warning(
                "upstream %s unreachable (%s); tried after the others for %g s",
                _shown(url),
                type(why).__name__,
                timeout,
            )
        else:
            log.debug("upstream %s still unreachable (%d in a row)", _shown(url), failures)

    def mark_alive(self, url: str) -> None:
        if self._dead.pop(url, None) is not None:
            log.info("upstream %s answers again", _shown(url))

    def _backoff(self, failures: int) -> float:
        return float(min(self.backoff_s * 2 ** min(failures - 1, 64), self.max_backoff_s))


def _shown(url: str) -> str:
    """A base URL fit for logs: scheme, host and port (no credentials, no path)."""
    return str(URL(url).origin())
