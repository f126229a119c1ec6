"""Venue adapters (package docstring written below)."""
