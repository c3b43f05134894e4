"""Pulling objects from the workspace's remote: ``xpmstore pull ID...`` (docs/remote.md).

Each object is verified before anything of it is published (:func:`xpmstore.remote.transfer.pull`:
every file's size and blake3, the done manifest against its own checksum, the identifier
recomputed from the object's identity); a corrupt object is refused and nothing of it is kept.
Each object is pulled even when one before it failed.  Safe across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RemoteUnavailableError, XpmstoreError
from ..remote.transfer import pull as pull_object
from ..remote.transferprogress import TransferProgress
from ..store.workspace import Workspace
from .remotes import need_remote

__all__ = ["PullReport", "pull"]


@dataclass
class PullReport:
    """What a pull did: the objects pulled (identifier, local directory) and those that failed
    (the text asked for, why)."""

    pulled: list[tuple[str, Path]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def pull(workspace: Workspace, identifiers: Sequence[str], *,
         progress: TransferProgress | None = None,
         on_result: Callable[[str, Path | None, str], None] | None = None,
         report: PullReport | None = None) -> PullReport:
    """Pull the objects named by ``identifiers`` (full identifiers or unique prefixes) from the
    workspace's remote into the workspace, one after the other.

    ``on_result(text, directory, why)`` is called as each one ends: its local directory, or
    None and why it failed; ``progress`` counts objects and bytes; ``report``, when given, is
    filled as objects end (what a caller interrupted by Ctrl-C reads).  Failures of single
    objects (not found, corrupt, in use here...) are collected in the report; raises RemoteError
    when no remote is configured, RemoteUnavailableError when it cannot be reached (the others
    would fail the same way), KeyboardInterrupt once the downloads in flight stopped after a
    Ctrl-C (nothing of the object being pulled is kept).
    """
    remote = need_remote(workspace)
    report = report if report is not None else PullReport()
    if progress is not None:
        progress.expect(objects=len(identifiers))
    for text in identifiers:
        try:
            identifier = remote.resolve(text)
            directory = pull_object(workspace, identifier, remote, progress=progress)
        except RemoteUnavailableError:
            raise
        except (XpmstoreError, OSError) as exc:
            why = str(exc) or type(exc).__name__
            report.failed.append((text, why))
            if on_result is not None:
                on_result(text, None, why)
        else:
            report.pulled.append((identifier, directory))
            if on_result is not None:
                on_result(text, directory, "")
        if progress is not None:
            progress.finished()
    return report
