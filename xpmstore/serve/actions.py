"""What the pages may change, only when the server runs with ``--allow-actions``: kill a job,
pin or unpin an object, remove one (``rm``), pull one from the remote.  Each is the library
function its command calls (``xpmstore kill``, ``pin``, ``unpin``, ``rm``, ``pull``), with
its rules and errors.  Blocking: the server calls them on worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..admin.jobs import kill
from ..admin.pin import pin
from ..admin.rm import remove
from ..core.identifier import check_identifier
from ..errors import NotFound
from ..store.locate import locate
from ..store.pins import unpin
from ..store.workspace import Workspace

__all__ = ["ACTIONS", "run_action"]


def _kill(workspace: Workspace, text: str, options: dict[str, Any]) -> dict[str, Any]:
    force = options.get("force") is True
    killed = kill(workspace, text, force=force)
    signal = "SIGKILL" if force else "SIGTERM"
    whom = f"pid {killed.pid}" if killed.pid else "its Slurm job"
    return {"identifier": killed.identifier, "message": f"sent {signal} to {whom}"}


def _pin(workspace: Workspace, text: str, options: dict[str, Any]) -> dict[str, Any]:
    pinned = pin(workspace, text)
    return {"identifier": pinned.identifier,
            "message": "pinned" if pinned.added else "already pinned"}


def _unpin(workspace: Workspace, text: str, options: dict[str, Any]) -> dict[str, Any]:
    identifier, _ = locate(workspace, text)
    if not unpin(workspace, identifier):
        raise NotFound(f"{identifier[:12]} is not pinned")
    return {"identifier": identifier, "message": "unpinned"}


def _rm(workspace: Workspace, text: str, options: dict[str, Any]) -> dict[str, Any]:
    removed = remove(workspace, text, cascade=options.get("cascade") is True)
    return {"identifier": removed[-1][0] if removed else text,
            "message": f"removed {len(removed)} object(s)",
            "removed": [ident for ident, _ in removed]}


def _pull(workspace: Workspace, text: str, options: dict[str, Any]) -> dict[str, Any]:
    from ..admin.remotes import need_remote
    from ..remote import pull

    check_identifier(text)
    remote = need_remote(workspace)
    identifier = remote.resolve(text)
    path = pull(workspace, identifier, remote)
    return {"identifier": identifier, "message": f"pulled to {path}"}


ACTIONS: dict[str, Callable[[Workspace, str, dict[str, Any]], dict[str, Any]]] = {
    "kill": _kill, "pin": _pin, "unpin": _unpin, "rm": _rm, "pull": _pull,
}
"""Action name -> function(workspace, identifier or prefix, options)."""


def run_action(workspace: Workspace, action: str, text: str,
               options: dict[str, Any]) -> dict[str, Any]:
    """Run ``action`` on the object ``text`` names; a dict with ``identifier`` and a
    ``message``.  Raises KeyError for an unknown action, and the action's own errors."""
    return ACTIONS[action](workspace, text, options)
