"""Pickles written before the modules moved name ``xpmstore.checks`` for the immutable
containers of config values: they live in :mod:`xpmstore.core.typecheck`."""

from __future__ import annotations

from .core.typecheck import FrozenDict, FrozenList

__all__ = ["FrozenDict", "FrozenList"]
