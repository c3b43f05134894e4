"""Stress tests of the store: many real processes at once."""
