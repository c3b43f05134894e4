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
from typing import TYPE_CHECKING

from ..errors import MissingExtraError, ServeError

if TYPE_CHECKING:
    from ..store.workspace import Workspace

__all__ = ["EXTRA_MODULES", "INSTALL_HINT", "missing_extra", "require_extra", "start"]

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


def require_extra() -> None:
    """MissingExtraError, naming the modules and what to install, unless every module of the
    ``serve`` extra can be imported."""
    missing = missing_extra()
    if missing:
        raise MissingExtraError(f"xpmstore serve needs {', '.join(missing)}: {INSTALL_HINT}")


def start(workspace: Workspace, host: str, port: int, allow_actions: bool = False) -> None:
    """``xpmstore serve``: serve ``workspace`` until interrupted (:func:`.server.serve`: the URL
    on the first line of stdout).  Raises MissingExtraError when the web stack is not
    installed (:func:`require_extra`, before anything of it is imported), ServeError when it
    cannot listen on ``host``:``port``, and KeyboardInterrupt on Ctrl-C."""
    require_extra()
    from .server import serve

    try:
        serve(workspace, host=host, port=port, allow_actions=allow_actions)
    except OSError as error:
        if error.filename:  # a file of the workspace, not the address
            raise
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
