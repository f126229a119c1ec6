"""Tests against a real local SLURM."""
