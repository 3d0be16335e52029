"""The doubles and corpora every test tier shares; test modules import from here, never
from one another (and never from a ``conftest.py``, which holds fixtures only).

- ``corpora``: the repository paths and the small corpora (``tests/data``, the scripted
  clusters' documents, the evaluation queries).
- ``net``: free ports, a blocking JSON request, any aiohttp app on a free port, and the
  network faults (a TCP peer that never answers, a port whose connects time out).
- ``waits``: ``wait_for`` / ``wait_until``, polling an observable condition with a deadline.
- ``gateway``: settings built explicitly and the type of the ``gateway`` fixture.
- ``upstream``: the scripted Elasticsearch that records every request, and ``call``.
- ``search_servers``: seeding a real search server, a fresh noida-db, the official client.
- ``encoders``: cross-encoders and embedders with scripted behaviour (gated, recording, failing).
- ``experiments``: the gateway with an experiment in front of a real cluster, and its report.
- ``redis_servers``: private ``redis-server`` processes, stopped and started again.
- ``hub``: a scripted Hugging Face Hub; ``pki``: a throwaway CA; ``commands``: the CLI in a
  fresh process.
"""
