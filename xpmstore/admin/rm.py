"""Invalidate results: ``xpmstore rm ID [--cascade]`` (docs/cli.md).

Removing an object deletes its directory (moved into ``.xpmstore/trash/`` with one ``rename``,
then deleted) and its index record, so the next submit runs it again.  It is refused for a
running job (its lock or run lock held, or a live launch record), for a ``@cache`` entry a live
process uses (:mod:`xpmstore.store.leases`), and for an object on which done objects depend, unless
``cascade``: then those dependents go too, transitively, dependents first.  Dependents are found
in the index, whose records take a task's dependencies from its params.json (not from its
manifest, which may be damaged), and, for a done object too damaged to be indexed, from its
params.json directly (:mod:`xpmstore.store.edges`).  Runs under the workspace's exclusive gc lock,
so that no submit decides to reuse an object while it goes.  Safe across processes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import HasDependentsError, ObjectInUseError
from ..store import leases
from ..store.edges import dependencies_on_disk
from ..store.index import Index
from ..store.locate import locate
from ..store.lookup import Store
from ..store.objectdirs import scan_objects
from ..store.taskdirs import is_done
from ..store.taskstate import launch_is_live
from ..store.workspace import Workspace
from ..system.locks import gc_lock, try_object_lock
from .gc import move_to_trash

__all__ = ["dependents_closure", "remove", "unindexed_dependents"]


def dependents_closure(index: Index, identifier: str,
                       unindexed: Mapping[str, set[str]] | None = None) -> list[str]:
    """Every object recorded in the index as depending on ``identifier``, directly or not,
    dependents first: each identifier comes before the objects it depends on.  ``unindexed``
    adds, for an identifier, the done objects the index lacks that depend on it."""
    extra = unindexed or {}

    def dependents_of(ident: str) -> set[str]:
        return set(index.dependents(ident)) | extra.get(ident, set())

    order: list[str] = []
    seen: set[str] = {identifier}
    stack: list[tuple[str, bool]] = [(d, False) for d in sorted(dependents_of(identifier))]
    while stack:
        ident, expanded = stack.pop()
        if expanded:
            order.append(ident)
            continue
        if ident in seen:
            continue
        seen.add(ident)
        stack.append((ident, True))
        stack.extend((d, False) for d in sorted(dependents_of(ident)) if d not in seen)
    return order  # post-order: each object after everything that depends on it


def unindexed_dependents(workspace: Workspace,
                         index: Index) -> tuple[dict[str, set[str]], dict[str, Path]]:
    """The done objects the index lacks (too damaged to be indexed): identifier → the objects
    among them that depend on it (read from their params.json), and their directories."""
    known = index.identifiers()
    reverse: dict[str, set[str]] = {}
    paths: dict[str, Path] = {}
    for found in scan_objects(workspace):
        if found.done and found.identifier not in known:
            paths[found.identifier] = Path(found.path)
            for dependency in dependencies_on_disk(found.path):
                reverse.setdefault(dependency, set()).add(found.identifier)
    return reverse, paths


def _in_use(identifier: str, directory: Path, leased: dict[str, str]) -> str:
    """Why the object cannot go now, with what to do ("" when it can)."""
    if not is_done(directory) and launch_is_live(directory):
        return f"it is running; stop it first (xpmstore kill {identifier[:12]})"
    if identifier in leased:
        return f"in use by {leases.holder(leased[identifier])}; end that process first"
    return ""


def remove(workspace: Workspace, text: str, cascade: bool = False) -> list[tuple[str, Path]]:
    """Remove the object named by ``text`` (identifier or unique prefix), and with ``cascade``
    every done object that depends on it; returns the (identifier, former directory) removed,
    dependents first.

    Raises InvalidIdentifierError, NotFound, AmbiguousPrefixError, ObjectInUseError (running,
    or its lock is held: nothing is removed), HasDependentsError (done dependents and no
    ``cascade``: nothing is removed).
    """
    store = Store(workspace)
    identifier, directory = locate(workspace, text)
    trash = workspace.private / "trash" / f"rm-{os.getpid()}-{time.time_ns()}"
    removed: list[tuple[str, Path]] = []
    with gc_lock(workspace.gc_lock_path, exclusive=True):
        store.reconcile()
        index = store.index
        unindexed, unindexed_paths = unindexed_dependents(workspace, index)
        dependents = dependents_closure(index, identifier, unindexed)
        done_dependents = []
        for ident in dependents:
            record = index.get(ident)
            path = workspace.root / record["path"] if record is not None \
                else unindexed_paths.get(ident)
            if path is not None and is_done(path):
                done_dependents.append((ident, path))
        if done_dependents and not cascade:
            shown = ", ".join(i[:12] for i, _ in done_dependents[:5])
            more = f" and {len(done_dependents) - 5} more" if len(done_dependents) > 5 else ""
            raise HasDependentsError(
                f"{identifier[:12]}: {len(done_dependents)} done object(s) depend on it"
                f" ({shown}{more}); remove them too with --cascade",
                dependents=[i for i, _ in done_dependents])
        targets = [*done_dependents, (identifier, directory)]
        leased = leases.in_use(workspace)
        for ident, path in targets:
            why = _in_use(ident, path, leased)
            if why:
                raise ObjectInUseError(f"{ident[:12]} ({path.parent.name}): {why}",
                                       identifier=ident)
        for ident, path in targets:
            with try_object_lock(workspace.lock_path(ident)) as acquired, \
                    try_object_lock(workspace.run_lock_path(ident)) as free:
                if not (acquired and free) or _in_use(ident, path, leased):
                    raise ObjectInUseError(
                        f"{ident[:12]} ({path.parent.name}): its lock is held by another"
                        f" process (running or being computed); nothing more was removed"
                        f" ({len(removed)} removed)", identifier=ident)
                move_to_trash(workspace, path, trash)
            index.delete(ident)
            removed.append((ident, path))
    shutil.rmtree(trash, ignore_errors=True)
    return removed
