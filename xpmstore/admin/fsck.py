"""Verification: ``xpmstore fsck [--repair]`` (docs/cli.md).

:func:`check` re-hashes every done object against its done manifest (every listed file's size
and blake3, every link's target, no link followed on the way to an entry; the manifest itself
must parse — its own checksum, its fields, every path inside the object: see
:func:`xpmstore.store.manifest.parse` — and name the directory's identifier, kind and name; a task's
params.json must give back its identifier, and the dependencies the manifest lists must be those
params.json references: :mod:`xpmstore.store.edges`) and reconciles the index with the disk (records
added for done objects it lacks, dropped for objects that are gone or not done, rewritten where
they disagree with the disk — a task's dependencies always from its params.json).  The index's
files are walked page by page first (``lmdb.verify``); damaged ones are moved aside and rebuilt.

With ``repair``, a damaged object is marked **not done**: under its lock, its ``.xpm/done`` is
renamed to ``.xpm/done.damaged-<time>`` (kept as evidence), a task's state becomes ``failed``
with the reason ``damaged: …`` (so that ``show``, ``jobs`` and ``Store.status`` agree: failed),
and its index record is dropped, so the next submit (or ``@cache`` call) computes it again
(``ran:failed-before``).  Nothing else of the object is touched; an object whose lock is held
is left alone and reported.  An intact object whose manifest was written before manifests
carried a checksum is *sealed* by ``repair``: its manifest is rewritten, same content plus its
checksum, under its lock.  Safe across processes; re-hashing reads every byte of the store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.identifier import from_params
from ..errors import CorruptObjectError, FormatVersionError, XpmstoreError
from ..store.edges import dependencies_problem, params_dependencies
from ..store.index import Index
from ..store.locate import object_kind
from ..store.manifest import Manifest, build, verify
from ..store.objectdirs import list_object_dirs
from ..store.reconcile import note_undone
from ..store.taskdirs import is_done, read_manifest, record_from_disk
from ..store.workspace import DONE, Workspace
from ..system.atomic import write_atomic
from ..system.locks import try_object_lock
from .gc import reconcile_listing

__all__ = ["Damage", "FsckReport", "check", "check_object", "mark_not_done", "seal"]

_COMPARED = ("kind", "name", "path", "size", "tags", "dependencies", "identity", "config")
"""The fields of an index record that must agree with the disk (not ``last_access``)."""


@dataclass(frozen=True)
class Damage:
    """A done object whose bytes do not match its manifest (``problems``: one line each)."""

    identifier: str
    kind: str
    name: str
    path: Path
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return {"identifier": self.identifier, "kind": self.kind, "name": self.name,
                "path": str(self.path), "problems": self.problems}


@dataclass
class FsckReport:
    """What :func:`check` found and did."""

    checked: int = 0
    damaged: list[Damage] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    index_added: int = 0
    index_removed: int = 0
    index_fixed: int = 0
    unsealed: list[str] = field(default_factory=list)
    """Intact objects whose manifest has no checksum (written before manifests had one)."""
    sealed: list[str] = field(default_factory=list)
    """Those of them that ``repair`` sealed (their manifest rewritten with its checksum)."""

    @property
    def clean(self) -> bool:
        """Whether no damage remains (none found, or every damaged object repaired)."""
        return len(self.repaired) == len(self.damaged)

    @property
    def left(self) -> int:
        """How many damaged objects are left done (found, not repaired)."""
        return len(self.damaged) - len(self.repaired)

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return {"checked": self.checked, "damaged": [d.to_json() for d in self.damaged],
                "repaired": self.repaired, "busy": self.busy, "index_added": self.index_added,
                "index_removed": self.index_removed, "index_fixed": self.index_fixed,
                "unsealed": self.unsealed, "sealed": self.sealed}


def check_object(directory: Path) -> list[str]:
    """The problems of the done object at ``directory`` (empty when intact)."""
    return _check(directory)[0]


def _check(directory: Path) -> tuple[list[str], Manifest | None]:
    """The problems of the done object at ``directory``, and its manifest when it parses."""
    try:
        manifest = read_manifest(directory)
    except (CorruptObjectError, FormatVersionError) as exc:
        return [f"done manifest: {exc}"], None
    if manifest is None:
        return ["done manifest: missing"], None
    problems = []
    if manifest.identifier != directory.name:
        problems.append(f"done manifest names {manifest.identifier[:16]}, not the directory")
    if manifest.kind != object_kind(directory) or manifest.name != directory.parent.name:
        problems.append(f"done manifest says {manifest.kind} {manifest.name}, not where it lies")
    problems.extend(verify(directory, manifest))
    if manifest.kind == "task" and not any("params.json" in p for p in problems):
        problems.extend(_params_problems(directory, manifest))
    return problems, manifest


def _params_problems(directory: Path, manifest: Manifest) -> list[str]:
    """Whether params.json gives back the task's identifier and the manifest's dependencies."""
    from ..core.params import read_params

    try:
        document = read_params(directory / "params.json")
        recomputed = from_params(document.get("identity"))  # type: ignore[arg-type]
    except (XpmstoreError, OSError) as exc:
        return [f"params.json: {exc}"]
    problems = []
    if recomputed != directory.name:
        problems.append(f"params.json gives identifier {recomputed[:16]}")
    differs = dependencies_problem(manifest.dependencies, params_dependencies(document))
    if differs:
        problems.append(f"done manifest: {differs}")
    return problems


def seal(workspace: Workspace, directory: Path) -> bool:
    """Under the object's lock (not waiting), rewrite a done manifest that has no checksum with
    its checksum (same content); False when the lock is held or there is nothing to seal."""
    with try_object_lock(workspace.lock_path(directory.name)) as acquired:
        if not acquired:
            return False
        try:
            manifest = read_manifest(directory)  # again, under the lock
        except (CorruptObjectError, FormatVersionError):
            return False
        if manifest is None or manifest.sealed:
            return False
        write_atomic(directory / DONE, build(manifest))
    return True


def mark_not_done(workspace: Workspace, directory: Path, problems: list[str] | None = None) -> bool:
    """Under the object's lock (not waiting), rename its done manifest aside so that it is no
    longer done, and record a task as failed (``damaged: problems``); returns False (nothing
    done) when the lock is held by another process."""
    identifier = directory.name
    with try_object_lock(workspace.lock_path(identifier)) as acquired:
        if not acquired:
            return False
        done = directory / DONE
        try:
            os.rename(done, done.with_name(f"done.damaged-{time.time_ns()}"))
        except FileNotFoundError:
            pass
        kind = object_kind(directory)
        if kind == "task":
            _record_damage(directory, problems or ["its files do not match its done manifest"])
        note_undone(workspace, identifier, kind, directory.parent.name)  # for every index
    Index.for_workspace(workspace).delete(identifier)
    return True


def _record_damage(directory: Path, problems: list[str]) -> None:
    """The task's state: failed, damaged (its last state said done, which is no longer true).
    On a full disk, no state at all rather than a stale ``done``."""
    from ..store.taskstate import remove_state, write_state

    reason = f"damaged: {'; '.join(problems)} (marked not done by fsck --repair)"[:500]
    try:
        write_state(directory, "failed", ended=time.time(), reason=reason)
    except OSError:
        try:
            remove_state(directory)
        except OSError:
            pass


def check(workspace: Workspace, repair: bool = False,
          progress: Callable[[int, int], None] | None = None) -> FsckReport:
    """Verify every done object and reconcile the index (see the module doc).

    ``progress(done, total)`` is called after each object.  Raises LockUnavailableError on a
    file system without locks (only with ``repair``).
    """
    report = FsckReport()
    index = Index.for_workspace(workspace)
    index.check_files()  # damaged index files: moved aside and rebuilt (one line on stderr)
    directories = [d for d in list_object_dirs(workspace) if is_done(d)]
    intact: dict[str, Path] = {}
    for number, directory in enumerate(sorted(directories), 1):
        problems, manifest = _check(directory)
        report.checked += 1
        if problems:
            report.damaged.append(Damage(directory.name, object_kind(directory),
                                         directory.parent.name, directory, problems))
            if repair:
                if mark_not_done(workspace, directory, problems):
                    report.repaired.append(directory.name)
                else:
                    report.busy.append(directory.name)
        else:
            intact[directory.name] = directory
            if manifest is not None and not manifest.sealed:
                report.unsealed.append(directory.name)
                if repair and seal(workspace, directory):
                    report.sealed.append(directory.name)
        if progress is not None:
            progress(number, len(directories))
    damaged_left = {d.identifier for d in report.damaged} - set(report.repaired)
    done = {**intact, **{d.identifier: d.path for d in report.damaged
                         if d.identifier in damaged_left}}
    report.index_added, report.index_removed = reconcile_listing(index, workspace, done)
    fixes = []
    for ident, directory in done.items():  # damaged ones left done too: their dependencies
        recorded = index.get(ident)
        expected = record_from_disk(workspace, directory)
        if recorded is None or expected is None:
            continue
        if any(recorded.get(k) != expected.get(k) for k in _COMPARED):
            expected["last_access"] = max(recorded.get("last_access") or 0.0,
                                          expected["last_access"])
            fixes.append((ident, expected))
    if fixes:
        index.put_many(fixes)
    report.index_fixed = len(fixes)
    return report
