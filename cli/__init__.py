"""The ``xpmstore`` command line: a thin click layer over the library (installed as
``xpmstore_cli``, so that running from the repository root never shadows it)."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
