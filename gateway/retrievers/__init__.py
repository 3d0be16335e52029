"""Elasticsearch's ``retriever`` tree, run by the gateway on any cluster.

::

    parse    the ``retriever`` section → a typed tree (ES-shaped 400s on bad bodies)
    expand   the simplified ``fields`` + ``query`` forms → leaves, from the index mapping
    run      each leaf as its own search (the leaves of a node concurrently), one union
             search for totals and aggregations, fusion (rrf / linear), reranking
             (text_similarity_reranker) through the profile's relevance path
    shape    the answer in the shape Elasticsearch returns for that retriever
    hybrid   a profile option: a plain match / multi_match search run as
             text_similarity_reranker(rrf|linear(standard, knn))

Elasticsearch runs fusion and reranking retrievers only with an Enterprise licence and
OpenSearch has no ``retriever`` element; the gateway runs them itself (README
"Retrievers"). ``QueryEmbedder`` is the hook a ``query_vector_builder`` (and the hybrid
profile) needs: anything with ``async embed(texts) -> list[list[float]]``.
"""
