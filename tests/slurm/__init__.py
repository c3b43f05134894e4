"""Tests against the real single-node Slurm that ``scripts/slurm-up`` starts (conftest.py)."""
