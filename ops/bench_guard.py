"""What reading bodies for index references costs the guard (only with ACCESS__INDICES set).

::

    .venv/bin/python -m ops.bench_guard            # 20000 rounds
    .venv/bin/python -m ops.bench_guard --rounds 5000

Times, in the same run, plain ``json.loads`` of a typical search body and of a
10-search ``_msearch`` body (the baseline) against the guard's reading of the same
bytes (strict JSON plus the walk), and prints microseconds per body and the ratio.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable

from gateway.web.index_refs import body_names, load_object, msearch_names

SEARCH = json.dumps(
    {
        "query": {
            "bool": {
                "must": [{"match": {"text": "hello world"}}],
                "filter": [{"terms": {"tags": ["a", "b"]}}, {"range": {"n": {"gte": 1}}}],
            }
        },
        "size": 10,
        "aggs": {"t": {"terms": {"field": "tags"}}},
        "highlight": {"fields": {"text": {}}},
    }
).encode()
MSEARCH = b"".join(b'{"index": "docs"}\n' + SEARCH + b"\n" for _ in range(10))


def _per_call_us(fn: Callable[[], object], rounds: int) -> float:
    return min(timeit.repeat(fn, number=rounds, repeat=3)) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20000)
    rounds = parser.parse_args().rounds
    cases = [
        (
            f"search body ({len(SEARCH)} B)",
            lambda: json.loads(SEARCH),
            lambda: list(body_names(load_object(SEARCH))),
        ),
        (
            f"msearch, 10 searches ({len(MSEARCH)} B)",
            lambda: [json.loads(line) for line in MSEARCH.split(b"\n") if line.strip()],
            lambda: list(msearch_names(MSEARCH)),
        ),
    ]
    for name, baseline, guard in cases:
        base_us = _per_call_us(baseline, rounds)
        guard_us = _per_call_us(guard, rounds)
        print(
            f"{name}: json.loads {base_us:.1f} us, guard {guard_us:.1f} us"
            f" ({guard_us / base_us:.1f}x)"
        )


if __name__ == "__main__":
    main()
