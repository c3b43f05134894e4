"""Find an object's directory from an identifier or a unique prefix, done or not.

:meth:`xpmstore.store.lookup.Store.get` finds done objects (the index holds only those);
:func:`locate` also finds task directories that are running, failed or waiting, which
``xpmstore show``, ``logs``, ``kill`` and ``rm`` need.  The text is checked (1–64 lowercase hex)
before any path is built from it.  Reads only (and the index); safe across processes.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from pathlib import Path

from ..core.identifier import check_identifier, unique_match
from .index import Index
from .objectdirs import find_object_dirs
from .workspace import DONE, KINDS, Workspace

__all__ = ["bulk", "find_done", "locate", "object_kind"]


def object_kind(directory: Path) -> str:
    """``"task"`` or ``"cache"``, from where an object directory lies."""
    return "task" if directory.parent.parent.name == KINDS["task"] else "cache"


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a listing builds hundreds of thousands of
    small objects (they hold no cycles; the collector would only rescan them over and over),
    restoring its previous state after.  Not thread-local: it pauses the collector of the
    process, as a short bulk load may."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def find_done(workspace: Workspace, text: str) -> tuple[str, Path] | None:
    """(identifier, directory) of the done object that ``text`` names, found by the index alone
    (one read transaction and one ``stat``), or None when the index does not settle it (unknown,
    ambiguous, not done): then ask :meth:`xpmstore.store.lookup.Store.get`, which reconciles and
    says why.  The fast path of ``xpmstore get``; raises InvalidIdentifierError."""
    check_identifier(text)
    index = Index.for_workspace(workspace)
    if len(text) == 64:
        ident: str | None = text
        record = index.get_raw(bytes.fromhex(text))
    else:
        matches = index.with_prefix(text, limit=2)
        ident = matches[0] if len(matches) == 1 else None
        record = index.get(ident) if ident is not None else None
    if ident is None or record is None:
        return None
    directory = workspace.root / record["path"]
    if not os.path.exists(os.path.join(directory, DONE)):
        return None
    return ident, directory


def locate(workspace: Workspace, text: str) -> tuple[str, Path]:
    """(identifier, directory) of the object named by ``text`` (an identifier or a unique
    prefix), done or not.

    Raises InvalidIdentifierError (not 1–64 lowercase hex), NotFound, AmbiguousPrefixError.
    """
    check_identifier(text)
    index = Index.for_workspace(workspace)
    if len(text) == 64:
        record = index.get(text)
        if record is not None:
            directory = workspace.root / record["path"]
            if directory.is_dir():
                return text, directory
    else:
        matches = index.with_prefix(text)
        if len(matches) == 1:
            record = index.get(matches[0])
            if record is not None and (workspace.root / record["path"]).is_dir():
                return matches[0], workspace.root / record["path"]
    found = dict(find_object_dirs(workspace, text))
    ident = unique_match(text, found, where=f" in {workspace.root}")
    return ident, found[ident]
