"""Vectors without ML nodes: query vectors at search time, document vectors on write, backfill."""
