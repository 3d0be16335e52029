"""rerank-gateway: a transparent Elasticsearch/OpenSearch proxy that reranks searches."""

__version__ = "0.1.0"
