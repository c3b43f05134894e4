"""What one process knows of its remotes: the remote a workspace opens (memoised) and which
remotes are unreachable (docs/remote.md).

An unreachable remote costs its timeout once per process: :func:`mark_down` records the verdict
(the caller warns once, when it returns True) and every later :func:`is_down` answers at once.
A process started with ``XPMSTORE_REMOTE_DOWN=1`` in its environment treats every remote as
unreachable from the start: an experiment that found its remote unreachable passes that to the
jobs it launches, so that they do not each pay the timeout again (it is also a way to work
offline).  An experiment looks afresh when it starts (:func:`forget`).  It also remembers which
remote objects a pull of this process refused as damaged (:func:`note_damaged`): the push of
the object computed instead verifies and repairs the remote's copy rather than finding it
present.  Thread-safe.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from ..errors import RemoteUnwritableError, XpmstoreError
from ..store.workspace import Workspace
from .layout import Remote, open_remote

__all__ = ["DOWN_VARIABLE", "down_reason", "forget", "is_damaged", "is_down", "mark_down",
           "note_damaged", "remote_for", "reset", "warn"]

DOWN_VARIABLE = "XPMSTORE_REMOTE_DOWN"
"""Set to ``1``: this process treats its remote as unreachable (what an experiment passes its
jobs once it found the remote unreachable)."""

_lock = threading.Lock()
_remotes: dict[tuple[Path, str], Remote | None] = {}
_down: set[tuple[str, str]] = set()
_damaged: set[str] = set()  # identifiers whose remote copy a pull of this process refused


def warn(message: str) -> None:
    """Print one warning line on stderr."""
    print(f"xpmstore: warning: {message}", file=sys.stderr)


def down_reason(exc: Exception) -> str:
    """How to name a remote judged down because of ``exc``: "not writable" or "unreachable"."""
    return "not writable" if isinstance(exc, RemoteUnwritableError) else "unreachable"


def _key(remote: Remote) -> tuple[str, str]:
    return remote.url, remote.settings.endpoint_url or ""


def down_from_environment() -> bool:
    """Whether ``$XPMSTORE_REMOTE_DOWN`` says the remote is unreachable."""
    return os.environ.get(DOWN_VARIABLE, "") not in ("", "0")


def is_down(remote: Remote) -> bool:
    """Whether ``remote`` is known to be unreachable in this process."""
    return down_from_environment() or _key(remote) in _down


def mark_down(remote: Remote) -> bool:
    """Record that ``remote`` cannot be reached; True the first time (then warn, once)."""
    with _lock:
        if _key(remote) in _down:
            return False
        _down.add(_key(remote))
    return not down_from_environment()


def forget(remote: Remote) -> None:
    """Forget that ``remote`` was found unreachable (an experiment starts with a fresh look;
    ``$XPMSTORE_REMOTE_DOWN`` still holds)."""
    with _lock:
        _down.discard(_key(remote))


def note_damaged(identifier: str) -> None:
    """Remember that a pull of this process refused the remote's copy of ``identifier`` as
    damaged."""
    with _lock:
        _damaged.add(identifier)


def is_damaged(identifier: str) -> bool:
    """Whether a pull of this process refused the remote's copy of ``identifier``: its push
    must verify and repair it (a plain push would find it present)."""
    with _lock:
        return identifier in _damaged


def remote_for(workspace: Workspace) -> Remote | None:
    """The remote configured for ``workspace``, opened once per process (None when none is,
    or when its settings are wrong: one warning line)."""
    key = (workspace.root, os.environ.get("XPMSTORE_REMOTE", ""))
    with _lock:
        if key in _remotes:
            return _remotes[key]
    try:
        remote = open_remote(workspace)
    except XpmstoreError as exc:
        warn(f"remote ignored: {exc}")
        remote = None
    with _lock:
        return _remotes.setdefault(key, remote)


def reset() -> None:
    """Forget the remotes opened and found unreachable by this process (tests)."""
    with _lock:
        _remotes.clear()
        _down.clear()
        _damaged.clear()
