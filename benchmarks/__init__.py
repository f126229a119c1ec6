"""Benchmarks for tripwire (run as modules, e.g. ``python -m benchmarks.detector``)."""
