"""Benchmarks of the gateway against baselines measured in the same run: `python -m bench --help`."""
