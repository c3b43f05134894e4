"""The team's remote as the pages show it: whether one is configured, which objects it holds
(``xpmstore ls --remote``: :func:`xpmstore.remote.remote_entries`), and whether one object is
there.  Blocking (network): the server calls these on worker threads, and a page asks for them
apart from the rest, so that a slow remote never delays a page.
"""

from __future__ import annotations

from typing import Any

from ..errors import XpmstoreError
from ..store.objectdirs import scan_objects
from ..store.workspace import Workspace

__all__ = ["remote_info", "remote_listing", "remote_presence"]


def remote_info(workspace: Workspace) -> dict[str, Any]:
    """``configured`` and ``url`` (``error`` when the settings do not open a remote)."""
    from ..remote import open_remote

    try:
        remote = open_remote(workspace)
    except XpmstoreError as exc:
        return {"configured": False, "url": None, "error": str(exc)}
    return {"configured": remote is not None, "url": remote.url if remote else None}


def remote_presence(workspace: Workspace, identifier: str) -> dict[str, Any]:
    """Whether the remote holds the object ``identifier`` (a full identifier): ``configured``,
    ``present`` (None without a remote), ``error`` when the remote did not answer."""
    from ..remote import open_remote

    try:
        remote = open_remote(workspace)
        if remote is None:
            return {"configured": False, "present": None}
        return {"configured": True, "url": remote.url,
                "present": identifier in remote.present([identifier])}
    except (XpmstoreError, OSError) as exc:
        return {"configured": True, "present": None, "error": str(exc)}


def remote_listing(workspace: Workspace) -> dict[str, Any]:
    """Every object of the remote (identifier, kind, name, size, created, tags, ``local``:
    whether it is done in this workspace), newest first."""
    from ..remote import open_remote, remote_entries

    try:
        remote = open_remote(workspace)
        if remote is None:
            return {"configured": False, "items": []}
        entries = remote_entries(remote)
    except (XpmstoreError, OSError) as exc:
        return {"configured": True, "items": [], "error": str(exc)}
    local = {o.identifier for o in scan_objects(workspace) if o.done}
    for entry in entries:
        entry["local"] = entry["identifier"] in local
    return {"configured": True, "url": remote.url, "items": entries}
