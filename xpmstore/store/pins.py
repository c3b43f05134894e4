"""Pins: gc roots set by hand (``xpmstore pin ID``), kept on disk in ``.xpmstore/pins/<id>``.

The files are the truth, so that a pin survives an index rebuild or an index moved aside; the
index's ``pins`` database mirrors them (:meth:`xpmstore.store.index.Index.replace_pins` after a
rebuild).  A pin recorded only in the index (an older workspace) counts too, and is written to
disk the first time :func:`pinned` sees it.  A pin may name an object that is absent: it then
simply keeps nothing.  Safe across threads and processes (one file per pin, created or removed
atomically).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.identifier import (
    check_full_identifier,
    check_identifier,
    is_full_identifier,
    unique_match,
)
from .index import Index
from .workspace import Workspace

__all__ = ["pin", "pin_path", "pinned", "pinned_match", "sync_index", "unpin"]


def pin_path(workspace: Workspace, identifier: str) -> Path:
    """The file that records the pin of ``identifier`` (InvalidIdentifierError unless 64 hex)."""
    check_full_identifier(identifier)
    return workspace.private / "pins" / identifier


def _write(workspace: Workspace, identifier: str) -> None:
    path = pin_path(workspace, identifier)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))


def pin(workspace: Workspace, identifier: str) -> bool:
    """Pin ``identifier`` (a full identifier); returns False when it was pinned already."""
    path = pin_path(workspace, identifier)
    existed = path.exists()
    _write(workspace, identifier)
    Index.for_workspace(workspace).pin(identifier)
    return not existed


def unpin(workspace: Workspace, identifier: str) -> bool:
    """Remove the pin of ``identifier``; returns whether it was pinned."""
    path = pin_path(workspace, identifier)
    index = Index.for_workspace(workspace)
    in_index = identifier in index.pins()
    try:
        path.unlink()
        on_disk = True
    except FileNotFoundError:
        on_disk = False
    if in_index:
        index.pin(identifier, pinned=False)
    return on_disk or in_index


def pinned_match(text: str, pins: set[str], what: str = "pin", where: str = "") -> str:
    """The one identifier of ``pins`` that ``text`` (an identifier or a prefix) names.  Raises
    InvalidIdentifierError, NotFound (``no {what} starts with …{where}``) and
    AmbiguousPrefixError."""
    check_identifier(text)
    return unique_match(text, (i for i in pins if i.startswith(text)), what, where)


def _on_disk(workspace: Workspace) -> set[str]:
    try:
        names = os.listdir(workspace.private / "pins")
    except FileNotFoundError:
        return set()
    return {name for name in names if is_full_identifier(name)}


def pinned(workspace: Workspace, index: Index | None = None) -> set[str]:
    """Every pinned identifier: the files, plus pins found only in the index (written to disk
    now, so that they survive the next rebuild)."""
    found = _on_disk(workspace)
    index = index if index is not None else Index.for_workspace(workspace)
    for identifier in index.pins() - found:
        _write(workspace, identifier)
        found.add(identifier)
    return found


def sync_index(workspace: Workspace, index: Index | None = None) -> int:
    """Make the index's pins exactly the pins on disk (after a rebuild); returns their count."""
    index = index if index is not None else Index.for_workspace(workspace)
    found = _on_disk(workspace)
    index.replace_pins(found)
    return len(found)
