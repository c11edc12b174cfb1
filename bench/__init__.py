"""Benchmarks of the HCPCS pipeline: `python bench/run.py` measures it and writes docs/benchmarks.md."""
