"""Benchmarks: each module has a `run() -> dict`; `python -m bench.<module>` prints a table."""
