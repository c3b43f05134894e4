"""Pins by hand: ``xpmstore pin ID`` and ``unpin ID``, in the workspace or, with ``remote``, in
the team's remote (docs/cli.md, docs/remote.md).

A pin of the workspace is a gc root (:mod:`xpmstore.store.pins`: a file in
``.xpmstore/pins/``, so it survives an index rebuild); a pin of the remote is a root of
``gc --remote`` for the whole team (:mod:`xpmstore.remote.collect`).  Safe across processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.identifier import check_identifier
from ..store import pins
from ..store.locate import locate
from ..store.workspace import Workspace

__all__ = ["PinResult", "pin", "unpin"]


@dataclass(frozen=True)
class PinResult:
    """A pin: the object's ``identifier``, whether it was ``added`` (False: pinned already), and
    its identity ``name`` (a pin of the workspace; ``""`` for a pin of the remote)."""

    identifier: str
    added: bool
    name: str = ""


def pin(workspace: Workspace, text: str, *, remote: bool = False) -> PinResult:
    """Pin the object ``text`` (an identifier or unique prefix) names: an object of the workspace
    (done or not), or with ``remote`` an object of the workspace's remote.

    Raises InvalidIdentifierError, AmbiguousPrefixError, NotFound, RemoteError (``remote``: none
    configured, or unreachable).
    """
    if remote:
        from ..remote.collect import pin_remote
        from .remotes import need_remote

        identifier, added = pin_remote(need_remote(workspace), text)
        return PinResult(identifier, added)
    identifier, directory = locate(workspace, text)
    return PinResult(identifier, pins.pin(workspace, identifier), directory.parent.name)


def unpin(workspace: Workspace, text: str, *, remote: bool = False) -> str:
    """Remove the pin that ``text`` (a pinned identifier or a unique prefix of one) names, of the
    workspace or with ``remote`` of its remote; returns its identifier.

    Raises InvalidIdentifierError, AmbiguousPrefixError, NotFound (no such pin), RemoteError.
    """
    if remote:
        from ..remote.collect import unpin_remote
        from .remotes import need_remote

        return unpin_remote(need_remote(workspace), text)
    check_identifier(text)
    chosen = pins.pinned_match(text, pins.pinned(workspace))
    pins.unpin(workspace, chosen)
    return chosen
