"""Benchmarks at realistic scale; each prints its figures and a ratio against a baseline
run in the same process. Run one as `python -m bench.<name> --help`."""
