"""Elasticsearch's request JSON as the cluster reads it: strict bodies, ndjson, query text."""
