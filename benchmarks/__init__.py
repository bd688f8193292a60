"""Hyac's benchmarks: each figure is a ratio against a baseline measured in the same run.
Run them all with ``python -m benchmarks`` (see benchmarks/README.md)."""
