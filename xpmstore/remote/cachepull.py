"""``@cache`` entries pulled from the remote on a miss (docs/remote.md).

:func:`pull_entry` is what :mod:`xpmstore.scheduler.cache` asks, under the entry's lock, before
computing an entry absent locally: when the workspace has a remote, ``pull = "auto"`` and
``pull_cache`` is not false, the entry is pulled, verified (:func:`xpmstore.remote.transfer.pull`),
and the method is then called with its path like on a hit.  It never raises for the remote's sake: a
missing entry costs one metadata call (2 s at most, one retry), a corrupt one a warning line
naming it, and an unreachable remote is noticed once per process (:mod:`.reach`) — one warning
line, after which no ``@cache`` miss or push of this process asks it again; a job whose
experiment found the remote unreachable does not ask it at all (``XPMSTORE_REMOTE_DOWN``).
Thread-safe.
"""

from __future__ import annotations

from ..store.workspace import Workspace
from . import reach
from .layout import Remote

__all__ = ["pull_entry", "reset", "unreachable"]


def reset() -> None:
    """Forget the remotes opened and found unreachable by this process (tests)."""
    reach.reset()


def unreachable(remote: Remote, exc: Exception) -> None:
    """Note that ``remote`` cannot be reached (one warning line per process)."""
    if reach.mark_down(remote):
        reach.warn(f"remote unreachable, @cache entries are computed locally: {exc}")


def pull_entry(workspace: Workspace, identifier: str) -> bool:
    """Pull the ``@cache`` entry ``identifier`` from the workspace's remote into its local
    directory; True when it is now there and done.  The caller holds the entry's lock.  Never
    raises for the remote's sake (see the module doc)."""
    if reach.down_from_environment():
        return False  # before opening anything: the experiment found the remote unreachable
    remote = reach.remote_for(workspace)
    if remote is None or reach.is_down(remote) or not remote.settings.pull_cache \
            or remote.settings.pull != "auto":
        return False
    from .transfer import pull_instead

    return pull_instead(workspace, identifier, remote, "@cache entry ", "computing",
                        lambda exc: unreachable(remote, exc), locked=True)
