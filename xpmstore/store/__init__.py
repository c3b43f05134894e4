"""The workspace on disk: task directories, manifests, the index, lookups, pins, task state."""

from __future__ import annotations

from typing import Any

_MOVED = ("Explanation", "Record", "Store")


def __getattr__(name: str) -> Any:
    """``Store``, ``Record`` and ``Explanation`` from here, imported on first use: this package
    took the name of the module that held them (imports and pickles of a ``Record`` name it)."""
    if name in _MOVED:
        from . import lookup

        return getattr(lookup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
