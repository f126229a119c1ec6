"""Batch jobs run with ``ray job submit -- python -m serve_apps.jobs.<name>`` (or directly)."""
