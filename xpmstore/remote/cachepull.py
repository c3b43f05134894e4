"""``@cache`` entries pulled from the remote on a miss (DESIGN §11).

:func:`pull_entry` is what :mod:`xpmstore.cache` asks, under the entry's lock, before computing
an entry absent locally: when the workspace has a remote, ``pull = "auto"`` and ``pull_cache``
is not false, the entry is pulled, verified (:func:`xpmstore.remote.transfer.pull`), and the
method is then called with its path like on a hit.  It never raises for the remote's sake: a
missing entry costs one metadata call (2 s at most, one retry), a corrupt one a warning line
naming it, and an unreachable remote is noticed once per process — one warning line, after
which no ``@cache`` miss of this process asks it again.  Thread-safe.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from ..errors import (
    CorruptObjectError,
    FormatVersionError,
    NotFound,
    RemoteError,
    RemoteUnavailableError,
    XpmstoreError,
)
from ..workspace import Workspace
from .store import Remote, open_remote

__all__ = ["pull_entry", "reset"]

_lock = threading.Lock()
_remotes: dict[tuple[Path, str], Remote | None] = {}
_down: set[str] = set()  # URLs found unreachable by this process


def _warn(message: str) -> None:
    print(f"xpmstore: warning: {message}", file=sys.stderr)


def reset() -> None:
    """Forget the remotes opened and found unreachable by this process (tests)."""
    with _lock:
        _remotes.clear()
        _down.clear()


def _remote_for(workspace: Workspace) -> Remote | None:
    """The remote ``@cache`` pulls from for ``workspace`` (memoised per process), or None."""
    key = (workspace.root, os.environ.get("XPMSTORE_REMOTE", ""))
    with _lock:
        if key in _remotes:
            remote = _remotes[key]
            return None if remote is None or remote.url in _down else remote
    try:
        remote = open_remote(workspace)
    except XpmstoreError as exc:
        _warn(f"remote ignored for @cache: {exc}")
        remote = None
    if remote is not None and (not remote.settings.pull_cache
                               or remote.settings.pull != "auto"):
        remote = None
    with _lock:
        _remotes[key] = remote
        return None if remote is None or remote.url in _down else remote


def _unreachable(remote: Remote, exc: Exception) -> None:
    with _lock:
        if remote.url in _down:
            return
        _down.add(remote.url)
    _warn(f"remote unreachable, @cache entries are computed locally: {exc}")


def pull_entry(workspace: Workspace, identifier: str) -> bool:
    """Pull the ``@cache`` entry ``identifier`` from the workspace's remote into its local
    directory; True when it is now there and done.  The caller holds the entry's lock.  Never
    raises for the remote's sake (see the module doc)."""
    remote = _remote_for(workspace)
    if remote is None:
        return False
    from .transfer import pull

    try:
        pull(workspace, identifier, remote, locked=True)
        return True
    except NotFound:
        return False
    except RemoteUnavailableError as exc:
        _unreachable(remote, exc)
    except (CorruptObjectError, FormatVersionError) as exc:
        _warn(f"{exc}; rejected, computing {identifier[:12]} locally")
    except (RemoteError, OSError) as exc:
        _warn(f"pull of @cache entry {identifier[:12]} failed ({exc}); computing it locally")
    return False
