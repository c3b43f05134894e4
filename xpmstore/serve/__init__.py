"""``xpmstore serve``: the store as a web service (docs/serve.md).

A Starlette application over a workspace: experiments and their runs, live jobs, objects with
their params, files and logs, provenance graphs, search, results tables, the remote, and the
JSON API under ``/api/`` that the pages use.  It reads the disk and the index through the
library's own functions (listing, describe, runs, jobs, remote) and never writes unless started
with ``allow_actions``.

The web stack (starlette, uvicorn, jinja2) is the optional extra ``xpmstore[serve]``: this
module imports none of it, so that :func:`missing_extra` can say what to install.  Nothing else
of xpmstore imports this package.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRA_MODULES", "INSTALL_HINT", "missing_extra"]

EXTRA_MODULES = ("starlette", "uvicorn", "jinja2")
"""The modules of the ``serve`` extra."""

INSTALL_HINT = "pip install 'xpmstore[serve]'"


def missing_extra() -> list[str]:
    """The modules of the ``serve`` extra that cannot be imported (``[]`` when all can)."""
    missing = []
    for name in EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing
