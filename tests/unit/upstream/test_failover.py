"""Per-URL dead/alive state: back-off doubling, one probe at a time, last-resort order."""

from __future__ import annotations

import logging

import pytest

from gateway.upstream.failover import UrlPool

A, B, C = "http://a:9200", "http://b:9200", "http://c:9200"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(clock: Clock, *urls: str) -> UrlPool:
    return UrlPool(urls or (A, B, C), backoff_s=1.0, max_backoff_s=8.0, clock=clock)


def test_live_urls_keep_their_configured_order() -> None:
    assert pool(Clock()).order() == [A, B, C]


def test_dead_url_goes_last_until_its_backoff_ends() -> None:
    clock = Clock()
    urls = pool(clock)
    urls.mark_dead(A, ConnectionRefusedError())
    assert urls.dead() == [A]
    assert urls.order() == [B, C, A]
    clock.now += 1.0
    assert urls.order() == [A, B, C]  # this request probes it, in its place
    assert urls.order() == [B, C, A]  # the others keep skipping it meanwhile
    urls.mark_alive(A)
    assert urls.dead() == []
    assert urls.order() == [A, B, C]


@pytest.mark.parametrize(
    ("failures", "backoff_s"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]
)
def test_backoff_doubles_per_failure_up_to_the_cap(failures: int, backoff_s: float) -> None:
    clock = Clock()
    urls = pool(clock)
    for _ in range(failures):
        urls.mark_dead(A, TimeoutError())
    clock.now += backoff_s - 0.01
    assert urls.order()[0] == B
    clock.now += 0.01
    assert urls.order()[0] == A


def test_all_dead_are_still_tried_soonest_first() -> None:
    clock = Clock()
    urls = pool(clock)
    urls.mark_dead(B, OSError())
    clock.now += 0.5
    urls.mark_dead(A, OSError())
    urls.mark_dead(A, OSError())
    urls.mark_dead(C, OSError())
    # Retry times: B 101.0, C 101.5, A 102.5.
    assert urls.order() == [B, C, A]


def test_logs_once_per_outage_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.upstream.failover")
    secret = "http://user:hunter2@a:9200"
    urls = pool(Clock(), secret, B)
    for _ in range(3):
        urls.mark_dead(secret, ConnectionRefusedError())
    urls.mark_alive(secret)
    urls.mark_alive(B)  # was never dead: nothing to say
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.INFO]
    assert "hunter2" not in caplog.text
    assert "http://a:9200" in caplog.records[0].getMessage()
