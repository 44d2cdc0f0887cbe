"""Benchmarks: `python -m bench` (or `make bench`) prints one table and writes RESULTS.md."""
