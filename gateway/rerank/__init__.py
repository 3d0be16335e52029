"""Scoring a window: profiles, document text, chunking, reranker, its cache and batcher, fusion."""
