"""Tests of tripwire.risk: limits, gates and sizing."""
