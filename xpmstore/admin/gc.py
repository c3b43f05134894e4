"""Garbage collection: delete what no root reaches (docs/cli.md).

**Roots** (:func:`find_roots`):

* the jobs and lookups of the **latest run** of each experiment that is not live, whatever its
  outcome (``ok``, ``failed``, ``interrupted``, or ``dead``: killed): one failed job never costs
  the good results of its run;
* the jobs and lookups of the last ``keep_runs`` runs of each experiment that ended with outcome
  ``ok`` (default 1; ``keep_runs`` 0 makes no ended run a root, the latest included);
* (in both, a run that recorded no job and no lookup does not count: a script that failed before
  its first submit hides no earlier run);
* a run record that roots (one of the above) with damaged lines stops gc before anything is
  deleted (``DamagedRunRecordError``): the jobs of its lost lines could otherwise go;
* the jobs and lookups of every **live** run (:mod:`xpmstore.scheduler.runs`: no end line, process
  alive);
* the pins (:mod:`xpmstore.store.pins`);
* every task directory that is not done and whose launch record names a live holder;
* every ``@cache`` entry a live process uses (its lease: :mod:`xpmstore.store.leases`), so that
  ``older_than`` and ``max_size`` apply only to entries no live process holds;

closed over their dependencies (read from the index records of done objects — a task's taken
from its params.json, :mod:`xpmstore.store.edges` — from params.json itself for a done object too
damaged to be indexed, and from the job lines of the runs).

**What goes** (:func:`mark`): every task directory (done or not: failed attempts, leftovers) that
no root reaches.  ``@cache`` entries are never reached by a dependency, so they are not deleted
by reachability alone: an unrooted entry goes when ``older_than`` is given and it was last used
before that, or when ``max_size`` is given and the store is still larger once the unreachable
tasks are gone (least recently used entries first, until it fits).  With ``older_than``, an
unreachable task used more recently (created, last accessed, or named by a run that started
since) is spared too.

**Safety** (:func:`collect`): marking happens again under the workspace's exclusive gc lock,
which submits take shared while they record their jobs and check reuse, so that a submit sees
either the store before this gc or after it, never half.  Each object goes under its own lock,
taken without waiting: an object whose lock (or run lock) is held is skipped, as is a job that
became live since.  Objects are renamed into ``.xpmstore/trash/`` (one ``rename``: an object is
there or gone, never half-deleted), their index records are dropped, the gc lock is released,
and only then is the trash emptied; a gc that was killed leaves a trash that the next one
empties.  Safe across processes: two gcs serialise on the gc lock.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import DamagedRunRecordError, TextValueError
from ..scheduler.runs import Run, read_runs
from ..store import leases
from ..store.edges import dependencies_on_disk
from ..store.index import Index
from ..store.locate import bulk
from ..store.pins import pinned
from ..store.reconcile import reconcile
from ..store.taskdirs import record_from_disk
from ..store.taskstate import LAUNCH, STATE, launch_is_live, live_directories
from ..store.workspace import XPM, Workspace
from ..system.locks import gc_lock, try_object_lock
from .candidates import Candidate, Candidates, IdentifierSet

__all__ = [
    "Candidate",
    "GcOptions",
    "GcOutcome",
    "GcPlan",
    "GcResult",
    "RootSource",
    "collect",
    "empty_trash",
    "find_roots",
    "gc",
    "mark",
    "parse_age",
    "parse_size",
    "reconcile_listing",
    "why_rooted",
]


_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 1000,
    "m": 1 << 20, "mib": 1 << 20, "mb": 1000 ** 2,
    "g": 1 << 30, "gib": 1 << 30, "gb": 1000 ** 3,
    "t": 1 << 40, "tib": 1 << 40, "tb": 1000 ** 4,
}
_NUMBER = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*")


def parse_age(text: str) -> float:
    """Seconds in an age such as ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or ``1.5d``.

    A unit is required; raises TextValueError (a ValueError) otherwise.
    """
    found = _NUMBER.fullmatch(text)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in _AGE_UNITS:
        raise TextValueError(f"{text!r} is not an age: write a number and a unit among s, m, h, d,"
                           " w (e.g. 30d)")
    return float(found.group(1)) * _AGE_UNITS[unit]


def parse_size(text: str) -> int:
    """Bytes in a size such as ``10G`` / ``10GiB`` (binary), ``10GB`` (decimal), ``512M`` or
    ``1048576``; raises TextValueError (a ValueError) otherwise."""
    found = _NUMBER.fullmatch(text)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in _SIZE_UNITS:
        raise TextValueError(f"{text!r} is not a size: write a number and an optional unit among"
                           " K, M, G, T (binary; KB, MB... are decimal), e.g. 50G")
    return int(float(found.group(1)) * _SIZE_UNITS[unit])


@dataclass(frozen=True)
class GcOptions:
    """What gc keeps: the last ``keep_runs`` successful runs of each experiment; with
    ``older_than`` (seconds), whatever was used more recently; with ``max_size`` (bytes), it also
    evicts unrooted cache entries, least recently used first, until the store fits."""

    keep_runs: int = 1
    older_than: float | None = None
    max_size: int | None = None

    def __post_init__(self) -> None:
        if self.keep_runs < 0:
            raise TextValueError(f"keep_runs={self.keep_runs}: expected 0 or more")
        if self.older_than is not None and self.older_than < 0:
            raise TextValueError(f"older_than={self.older_than}: expected 0 or more seconds")
        if self.max_size is not None and self.max_size < 0:
            raise TextValueError(f"max_size={self.max_size}: expected 0 or more bytes")


@dataclass(frozen=True)
class RootSource:
    """One source of gc roots and the identifiers it roots.

    ``role`` is ``"latest run"`` (the latest run of an experiment that is not live, whatever its
    outcome), ``"successful run"`` (one of the last ``keep_runs`` runs that ended ``ok``),
    ``"live run"``, ``"pins"``, ``"live jobs"`` or ``"in use"`` (``@cache`` entries live
    processes hold); a run's source names its ``experiment``, ``run`` and ``status``.  ``done``
    counts the identifiers that are done objects on disk (-1: not counted).
    """

    role: str
    identifiers: frozenset[str]
    experiment: str = ""
    run: str = ""
    status: str = ""
    done: int = -1

    def describe(self) -> str:
        """One line: which run (or what) roots how many objects."""
        count = f"{len(self.identifiers)} objects"
        if self.done >= 0:
            count += f", {self.done} done"
        if self.experiment:
            return f"{self.experiment}: {self.role} {self.run} ({self.status}): {count}"
        return f"{self.role}: {count}"

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready (the identifiers sorted)."""
        return {"role": self.role, "experiment": self.experiment, "run": self.run,
                "status": self.status, "objects": sorted(self.identifiers), "done": self.done}


@dataclass
class GcPlan:
    """The outcome of the mark phase: the roots (identifier → why), everything they reach, what
    goes (in (kind, name, identifier) order), and the sizes."""

    roots: dict[str, str]
    reachable: AbstractSet[str]
    candidates: Sequence[Candidate]
    objects: int
    total_size: int
    spared_recent: int = 0
    over_max_size: int = 0
    """Bytes above ``max_size`` that remain once every evictable entry is gone (0: it fits)."""
    sources: list[RootSource] = field(default_factory=list)
    """Where the roots come from: per experiment, which run roots what (:func:`find_roots`)."""

    @property
    def size(self) -> int:
        """Bytes the candidates take."""
        if isinstance(self.candidates, Candidates):
            return self.candidates.total_size()
        return sum(c.size for c in self.candidates)

    def to_json(self) -> dict[str, Any]:
        """The candidates and the sizes, the counts of roots and of objects reached, and the
        sources of the roots, JSON-ready."""
        return {"candidates": [c.to_json() for c in self.candidates], "size": self.size,
                "objects": self.objects, "total_size": self.total_size,
                "roots": len(self.roots), "reachable": len(self.reachable),
                "over_max_size": self.over_max_size,
                "sources": [s.to_json() for s in self.sources]}


@dataclass
class GcResult:
    """What a collection did: the objects deleted, those skipped (with the reason) and the
    bytes freed."""

    plan: GcPlan
    deleted: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[Candidate, str]] = field(default_factory=list)

    @property
    def freed(self) -> int:
        """Bytes freed."""
        return sum(c.size for c in self.deleted)

    def to_json(self) -> dict[str, Any]:
        """The objects deleted, the bytes freed and the objects skipped (each with its
        ``reason``), JSON-ready."""
        return {"deleted": [c.to_json() for c in self.deleted], "freed": self.freed,
                "skipped": [{**c.to_json(), "reason": why} for c, why in self.skipped]}


# --- listing --------------------------------------------------------------------------------


def reconcile_listing(index: Index, workspace: Workspace,
                      done: Mapping[str, str | os.PathLike[str]]) -> tuple[int, int]:
    """Bring the index in line with ``done`` (identifier → directory of every done object on
    disk), as :meth:`xpmstore.store.lookup.Store.reconcile` does, from a listing already made;
    returns (added, removed)."""
    known = index.identifiers()
    added = []
    for ident, directory in done.items():
        if ident not in known:
            record = record_from_disk(workspace, Path(directory))
            if record is not None:
                added.append((ident, record))
    removed = [ident for ident in known if ident not in done]
    if added:
        index.put_many(added)
    if removed:
        index.delete_many(removed)
    return len(added), len(removed)


def _tree_size(directory: Path) -> int:
    total = 0
    for current, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(current, name)).st_size
            except OSError:
                pass
    return total


def _mtime(directory: Path) -> float:
    latest = 0.0
    for path in (directory, directory / XPM, directory / STATE, directory / LAUNCH):
        try:
            latest = max(latest, path.stat().st_mtime)
        except OSError:
            pass
    return latest


# --- mark -----------------------------------------------------------------------------------


def find_roots(runs: list[Run], pins: Iterable[str], live_jobs: Iterable[str],
               keep_runs: int, in_use: Iterable[str] = ()) -> list[RootSource]:
    """The sources of roots (see the module doc), from the runs (oldest first within an
    experiment), the pins, the not-done jobs whose launch record is live and the ``@cache``
    entries live processes hold.  ``keep_runs`` 0 makes no ended run a root.  Pure.

    Raises DamagedRunRecordError when a run it roots from has damaged lines."""
    sources: list[RootSource] = []
    by_experiment: dict[str, list[Run]] = {}
    for run in runs:
        by_experiment.setdefault(run.experiment, []).append(run)
    for name, its_runs in by_experiment.items():
        # A live run roots its own jobs; a run that used nothing (its script failed before
        # any submit) roots nothing, and must not hide the run before it.  A damaged record
        # may have lost its jobs: it counts (and stops gc, below).
        ended = [run for run in its_runs
                 if not run.live and (run.jobs or run.roots or run.damaged)]
        successful = [run for run in ended if run.outcome == "ok"]
        kept = {run.name for run in successful[len(successful) - keep_runs:]} if keep_runs \
            else set()
        latest = ended[-1].name if keep_runs and ended else None
        for run in its_runs:
            if run.live:
                role = "live run"
            elif run.name == latest:
                role = "latest run"
            elif run.name in kept:
                role = "successful run"
            else:
                continue
            if run.damaged:
                raise DamagedRunRecordError(
                    f"{run.path}: {run.damaged} damaged line(s) in the {role} of experiment"
                    f" {name!r}: what it uses is not known in full, so gc deletes nothing;"
                    " repair the record, or delete it if that run's results may go")
            sources.append(RootSource(role, frozenset(run.used), name, run.name, run.status))
    for role, identifiers in (("pins", pins), ("live jobs", live_jobs), ("in use", in_use)):
        found = frozenset(identifiers)
        if found:
            sources.append(RootSource(role, found))
    return sources


def why_rooted(sources: Iterable[RootSource]) -> dict[str, str]:
    """Identifier → why it is a root (its first source: ``"latest run grid/<run>"``, ``"pin"``…)."""
    roots: dict[str, str] = {}
    for source in sources:
        why = f"{source.role} {source.experiment}/{source.run}" if source.experiment else \
            {"pins": "pin", "live jobs": "live job", "in use": "in use"}[source.role]
        for ident in source.identifiers:
            roots.setdefault(ident, why)
    return roots


def mark(workspace: Workspace, options: GcOptions | None = None,
         now: float | None = None) -> GcPlan:
    """Find what gc would delete (see the module doc); deletes nothing.

    Reconciles the index with the disk first (:mod:`xpmstore.store.reconcile`), then walks the
    index a chunk at a time: memory grows with what is reached and what goes (raw identifiers,
    candidates in columns), never with a Python record per object.  Takes no lock:
    :func:`collect` marks again under the exclusive gc lock before it deletes anything.
    """
    with bulk():
        return _mark(workspace, options, now)


_CHUNK = 5_000
"""Index records read per read transaction by the mark's walk of the store."""


class _Edges:
    """The dependencies the index does not hold, found when the closure asks: those the runs'
    job lines name (a job not done has no record), and those of done objects too damaged to be
    indexed (their params.json)."""

    def __init__(self, runs: list[Run], unreadable: dict[bytes, list[str]]):
        self._jobs = [run.jobs for run in runs]
        self._unreadable = unreadable

    def of(self, raw: bytes) -> list[bytes]:
        """The raw identifiers ``raw`` depends on, beyond its index record."""
        ident = raw.hex()
        found = [d for jobs in self._jobs if (job := jobs.get(ident)) is not None
                 for d in job.dependencies]
        found.extend(self._unreadable.get(raw, ()))
        return [dep for d in found if (dep := _raw(d)) is not None]


def _raw(identifier: str) -> bytes | None:
    try:
        return bytes.fromhex(identifier) if len(identifier) == 64 else None
    except ValueError:
        return None


def _mark(workspace: Workspace, options: GcOptions | None, now: float | None) -> GcPlan:
    """The mark in bounded memory: the index is walked a chunk at a time and never held; what
    a million objects leave in memory is the reached set (raw identifiers), the candidates (in
    columns: :mod:`xpmstore.admin.candidates`), and what the runs and roots name."""
    options = options or GcOptions()
    now = time.time() if now is None else now
    index = Index.for_workspace(workspace)
    index.reader_check()
    unindexed = reconcile(index, workspace).unindexed  # not done, or done but unreadable
    runs = read_runs(workspace)
    waiting = [d for d in unindexed if not d.done]
    live = {str(p) for p in live_directories(Path(d.path) for d in waiting)}
    live_jobs = [d.identifier for d in waiting if str(Path(d.path)) in live]
    sources = find_roots(runs, pinned(workspace, index), live_jobs, options.keep_runs,
                         leases.in_use(workspace))
    roots = why_rooted(sources)

    unindexed_done = {d.identifier for d in unindexed if d.done}
    edges = _Edges(runs, {bytes.fromhex(d.identifier): dependencies_on_disk(d.path)
                          for d in unindexed if d.done})
    roots_raw = {raw for ident in roots if (raw := _raw(ident)) is not None}
    reached = index.reach(roots_raw, edges.of)
    run_used: dict[str, float] = {}  # identifier → when a run that named it last started
    for run in runs:
        for ident in (*run.jobs, *run.roots):
            run_used[ident] = max(run_used.get(ident, 0.0), run.started)
    del runs, edges  # the runs' jobs are the largest thing read: gone before the walk
    used_at = run_used.get

    horizon = None if options.older_than is None else now - options.older_than
    candidates = Candidates(str(workspace.root))
    evictable: list[tuple[float, bytes, int, str, str, bool]] = []
    indexed_roots: set[bytes] = set()
    spared = 0
    total = 0
    objects = 0

    def consider(raw: bytes, kind: str, name: str, size: int, last: float, done: bool,
                 path: str | None) -> None:
        nonlocal spared
        recent = horizon is not None and last >= horizon
        if kind == "task":
            if recent:
                spared += 1
            else:
                candidates.add(raw, kind, name, size, last, done, path=path)
        elif horizon is not None and not recent:
            candidates.add(raw, kind, name, size, last, done, "older", path)
        elif options.max_size is not None:
            evictable.append((last, raw, size, name, path or "", done))

    start = b""
    while chunk := index.summaries_from(start, _CHUNK):
        for raw, record in chunk:
            objects += 1
            size = int(record.get("size") or 0)
            total += size
            if raw in reached:
                if raw in roots_raw:
                    indexed_roots.add(raw)
                continue
            ident = raw.hex()
            last = float(record.get("last_access") or record.get("created") or 0.0)
            last = max(last, used_at(ident, 0.0))
            path = record.get("path")
            consider(raw, str(record.get("kind")), str(record.get("name")), size, last, True,
                     f"{workspace.root}/{path}" if isinstance(path, str) else None)
        start = chunk[-1][0] + b"\0"
    for directory in unindexed:
        objects += 1
        size = _tree_size(Path(directory.path))
        total += size
        raw = bytes.fromhex(directory.identifier)
        if raw in reached:
            continue
        last = max(used_at(directory.identifier, 0.0), _mtime(Path(directory.path)))
        consider(raw, directory.kind, directory.name, size, last, directory.done,
                 directory.path)
    over = 0
    if options.max_size is not None:
        remaining = total - candidates.total_size()
        evictable.sort()
        for last, raw, size, name, path, done in evictable:
            if remaining <= options.max_size:
                break
            candidates.add(raw, "cache", name, size, last, done, "max-size", path or None)
            remaining -= size
        over = max(0, remaining - options.max_size)
    done_roots = {raw.hex() for raw in indexed_roots} | (unindexed_done & roots.keys())
    sources = [replace(source, done=len(source.identifiers & done_roots)) for source in sources]
    return GcPlan(roots=roots, reachable=IdentifierSet(reached), candidates=candidates.finish(),
                  objects=objects, total_size=total, spared_recent=spared,
                  over_max_size=over, sources=sources)


# --- sweep ----------------------------------------------------------------------------------


def _trash(workspace: Workspace) -> Path:
    return workspace.private / "trash"


def empty_trash(workspace: Workspace) -> int:
    """Delete whatever is in ``.xpmstore/trash/`` (what earlier collections moved there);
    returns how many entries were removed."""
    top = _trash(workspace)
    try:
        entries = os.listdir(top)
    except FileNotFoundError:
        return 0
    for entry in entries:
        path = top / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
    return len(entries)


def move_to_trash(workspace: Workspace, directory: Path, trash: Path) -> None:
    """Rename an object's directory into the trash folder ``trash`` (same file system: one
    atomic ``rename``)."""
    trash.mkdir(parents=True, exist_ok=True)
    os.rename(directory, trash / f"{directory.parent.parent.name}-{directory.name}")


def _take(workspace: Workspace, candidate: Candidate, trash: Path) -> str:
    """Move one candidate to the trash under its locks; returns "" or why it was skipped."""
    with try_object_lock(workspace.lock_path(candidate.identifier)) as acquired:
        if not acquired:
            return "its lock is held"
        with try_object_lock(workspace.run_lock_path(candidate.identifier)) as free:
            if not free:
                return "it is running"
            if not candidate.done and launch_is_live(Path(candidate.path)):
                return "it was launched since"
            try:
                move_to_trash(workspace, Path(candidate.path), trash)
            except FileNotFoundError:
                return "it is gone already"
    return ""


def collect(workspace: Workspace, options: GcOptions | None = None, *,
            only: Iterable[str] | None = None, now: float | None = None) -> GcResult:
    """Delete what no root reaches (see the module doc); returns what was deleted and skipped.

    ``only`` restricts the deletion to these identifiers (those a user confirmed after a dry
    run): anything else, and anything rooted since, stays.  Holds the exclusive gc lock while it
    marks and moves objects to the trash, then empties the trash.  Raises LockUnavailableError
    on a file system without working locks.
    """
    workspace.private.mkdir(parents=True, exist_ok=True)
    empty_trash(workspace)
    allowed = None if only is None else set(only)
    trash = _trash(workspace) / f"gc-{os.getpid()}-{time.time_ns()}"
    index = Index.for_workspace(workspace)
    with gc_lock(workspace.gc_lock_path, exclusive=True):
        leases.sweep(workspace)  # the leases of processes that are gone
        plan = mark(workspace, options, now)
        result = GcResult(plan)
        for candidate in plan.candidates:
            if allowed is not None and candidate.identifier not in allowed:
                continue
            why = _take(workspace, candidate, trash)
            if why:
                result.skipped.append((candidate, why))
            else:
                result.deleted.append(candidate)
        if result.deleted:
            index.delete_many(c.identifier for c in result.deleted)
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    return result


# --- the command ----------------------------------------------------------------------------


@dataclass
class GcOutcome:
    """What :func:`gc` did: its ``plan`` (the mark it made first, or that of the collection
    when it collected at once) and the ``result`` of the collection (None when nothing was
    collected: a dry run, nothing to delete, or a review that said no: then ``declined``)."""

    plan: GcPlan
    result: GcResult | None = None
    declined: bool = False


def gc(workspace: Workspace, options: GcOptions | None = None, *, dry_run: bool = False,
       review: Callable[[GcPlan], bool] | None = None, now: float | None = None) -> GcOutcome:
    """``xpmstore gc``: with ``dry_run``, what would go (:func:`mark`), deleting nothing;
    with ``review``, mark, then call ``review(plan)`` (with every plan, one that deletes
    nothing too, so that it can be shown) and, when it says yes and the plan deletes
    something, collect only the plan's candidates (those rooted since stay); with neither,
    collect at once (:func:`collect`).

    Raises what :func:`collect` raises.  Safe while experiments run (see the module doc).
    """
    if not dry_run and review is None:
        result = collect(workspace, options, now=now)
        return GcOutcome(result.plan, result)
    plan = mark(workspace, options, now)
    if dry_run or review is None:
        return GcOutcome(plan)
    approved = review(plan)
    if not plan.candidates:
        return GcOutcome(plan)
    if not approved:
        return GcOutcome(plan, declined=True)
    chosen = {c.identifier for c in plan.candidates}
    return GcOutcome(plan, collect(workspace, options, only=chosen, now=now))
