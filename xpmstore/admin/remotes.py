"""The workspace's remote as the commands need it: ``xpmstore remote init``, ``gc --remote``,
and the remote of ``push``, ``pull``, ``ls --remote``, ``pin --remote``, ``table --remote``
(docs/remote.md).

The remote is the one configured for the workspace (``[remote] url`` in xpmstore.toml or the
user settings; ``$XPMSTORE_REMOTE`` overrides).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RemoteError
from ..remote.collect import RemoteGcPlan, collect_remote, plan_remote
from ..remote.layout import Remote, open_remote
from ..store.workspace import Workspace

__all__ = ["RemoteGcOutcome", "gc_remote", "init_remote", "need_remote"]


def need_remote(workspace: Workspace) -> Remote:
    """The workspace's remote; RemoteError when none is configured (or its URL is malformed)."""
    remote = open_remote(workspace)
    if remote is None:
        raise RemoteError("no remote configured: set [remote] url in xpmstore.toml or the user"
                          " settings, or $XPMSTORE_REMOTE (see docs/remote.md)")
    return remote


def init_remote(workspace: Workspace, url: str | None = None) -> str:
    """Create the remote on purpose: the workspace's configured one, or the one at ``url`` (with
    the endpoint and region of the workspace's settings); its directory (file://) or its bucket
    (s3://).  Returns one line saying what was done.  Raises RemoteError."""
    target = open_remote(workspace, url) if url is not None else None  # a URL always opens
    return (target or need_remote(workspace)).backend.init()


@dataclass
class RemoteGcOutcome:
    """What :func:`gc_remote` did on the remote at ``url``: its ``plan``, what would be
    deleted, or (``deleted``) what was; ``declined`` when a review said no."""

    url: str
    plan: RemoteGcPlan
    deleted: bool = False
    declined: bool = False


def gc_remote(workspace: Workspace, older_than: float | None = None, *, dry_run: bool = False,
              review: Callable[[RemoteGcPlan, str], bool] | None = None) -> RemoteGcOutcome:
    """``xpmstore gc --remote``: collect the workspace's remote (its roots: the remote pins and
    the manifests written within ``older_than`` seconds, with what they depend on;
    :mod:`xpmstore.remote.collect`).  With ``dry_run``, what would go, deleting nothing; with
    ``review``, plan, then call ``review(plan, url)`` (with every plan, one that deletes nothing
    too, so that it can be shown) and collect when it says yes and the plan deletes something;
    with neither, collect at once.

    Raises RemoteError (none configured), RemoteUnavailableError.
    """
    remote = need_remote(workspace)
    if dry_run or review is not None:
        plan = plan_remote(remote, older_than)
        if dry_run or review is None:
            return RemoteGcOutcome(remote.url, plan)
        approved = review(plan, remote.url)
        if not plan.manifests and not plan.blobs:
            return RemoteGcOutcome(remote.url, plan)
        if not approved:
            return RemoteGcOutcome(remote.url, plan, declined=True)
    return RemoteGcOutcome(remote.url, collect_remote(remote, older_than), deleted=True)
