"""The benchmark harness: what every ``ops`` benchmark and evaluation starts and reads.

- ``ports``    a free loopback port; waiting for a port or an HTTP answer
- ``servers``  context managers: a private redis-server, osmem-server (seeded), noida-db,
               the gateway in this process or as ``python -m gateway``; process facts (RSS, CPU)
- ``beir``     a BEIR directory's judged queries and corpus (reading: ``gateway.offline``)
- ``bm25``     a small in-memory BM25 and the (query, passage) pairs of its top hits
- ``metrics``  ranking measures through ``ir-measures``; score agreement (Kendall tau)
- ``options``  command-line options for paths: required, or from a ``GATEWAY_*`` variable
- ``peer``     the same weights in PyTorch (the ``bench`` extra), for speed comparisons
- ``users``    simulated users: the search they send, the hits they click

Nothing here has a default path of any machine: data and models come from flags.
"""
