"""Benchmarks run with `python -m pytest benchmarks --benchmark-enable`."""
