"""Operator tools: test runner, demo, benchmarks, evaluation."""
