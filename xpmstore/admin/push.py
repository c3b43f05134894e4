"""Pushing done objects to the workspace's remote: ``xpmstore push [--verify] ID... | --all``
(docs/remote.md).

The transfer itself is :func:`xpmstore.remote.upload.push`: files the remote already holds
(same blake3) are not sent again, every file is sent before the manifest that lists it, a few
objects at a time; with ``verify``, the remote's copy of each object is read back and what is
damaged in it replaced from the local copy (:func:`xpmstore.remote.upload.verify_one`).  Safe
across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..remote.transferprogress import TransferProgress
from ..remote.upload import PushReport
from ..remote.upload import push as push_objects
from ..store.objectdirs import scan_objects
from ..store.workspace import Workspace
from .remotes import need_remote

__all__ = ["push"]


def push(workspace: Workspace, identifiers: Sequence[str] | None = None, *,
         verify: bool = False, progress: TransferProgress | None = None,
         on_result: Callable[[str, str, str], None] | None = None,
         report: PushReport | None = None) -> PushReport:
    """Push the done objects named by ``identifiers`` (full identifiers or unique prefixes;
    None: every done object of the workspace) to the workspace's remote; ``verify``: check the
    remote's copy of each and repair it.

    ``on_result(outcome, identifier, why)`` is called (from a worker thread) as each one
    ends: ``"pushed"``, ``"present"`` (the remote held it), ``"verified"`` (its remote copy is
    intact), ``"repaired"``, ``"interrupted"`` or ``"failed"``; ``progress`` counts objects and
    bytes; ``report``, when given, is filled as objects end (what a caller interrupted by
    Ctrl-C reads).  Failures of single objects are collected in the report; raises RemoteError
    when no remote is configured, RemoteUnavailableError when it cannot be reached,
    KeyboardInterrupt once the uploads in flight stopped after a Ctrl-C.
    """
    remote = need_remote(workspace)
    chosen = list(identifiers) if identifiers is not None else \
        [found.identifier for found in scan_objects(workspace) if found.done]
    return push_objects(workspace, chosen, remote, progress, on_result, verify=verify,
                        report=report)
