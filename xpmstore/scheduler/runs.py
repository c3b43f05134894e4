"""Experiments and their runs, read back from ``experiments/<name>/<run>.jsonl`` (docs/scheduler.md,
docs/cli.md).

A run record (:mod:`xpmstore.scheduler.runlog`) holds a header (host, boot id, pid and its start
time; the first ``git`` line's state is read as the header's ``git``, where older records held
it), one line per job (identifier, name, reason, dependencies), reason lines decided at launch,
root lines (Store lookups inside the run) and, once the run is over, an end line with its outcome.

* A run is **live** when it has no end line and its process is alive: on this host (same boot),
  the header's pid runs with the recorded start time; on another host, where no process can be
  probed, while its record was written to within :data:`REMOTE_RUN_GRACE` (a run record without
  any header yet counts as live the same way).  A run without an end line that is not live
  ended abnormally (killed): its status is ``"dead"``.
* Identifiers read from a record are checked (64 lowercase hex) before anything uses them.

Reads only; safe across threads and processes (a run being appended may end with a torn line,
which is skipped).
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from typing import Any

from ..core.identifier import is_full_identifier
from ..errors import TextValueError
from ..store.taskstate import boot_id, process_start
from ..store.workspace import Workspace
from .runlog import git_state_of, iter_run

__all__ = ["REMOTE_RUN_GRACE", "Run", "RunJob", "check_experiment_name", "is_experiment_name",
           "read_runs", "run_is_live"]

REMOTE_RUN_GRACE = 7 * 24 * 3600.0
"""Seconds after its last write that a run of another host without an end line counts as live."""

_NAME = re.compile(r"[^/\x00]+")


def is_experiment_name(name: object) -> bool:
    """Whether ``name`` can name an experiment: a plain, non-empty folder name (no '/', no NUL,
    not starting with '.')."""
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and not name.startswith(".")


def check_experiment_name(name: object) -> str:
    """``name`` if it can name an experiment, else TextValueError (a ValueError)."""
    if not is_experiment_name(name):
        raise TextValueError(f"experiment name {name!r}: expected a plain, non-empty name"
                             " (no '/', not starting with '.')")
    return str(name)


@dataclass(slots=True)
class RunJob:
    """One job of a run: its identifier, identity name, latest reason, dependencies and the
    tags it was submitted with."""

    identifier: str
    name: str
    reason: str
    dependencies: list[str] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """One run of an experiment, read from its record."""

    experiment: str
    name: str
    path: Path
    header: dict[str, Any]
    started: float
    ended: float | None
    outcome: str | None
    live: bool
    jobs: dict[str, RunJob] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    damaged: int = 0
    """Lines of the record that could not be read (not a document, or a job, reason or root
    line without a valid identifier): what the run submitted is then not known in full."""

    @property
    def status(self) -> str:
        """``"live"``, the outcome of the end line (``"ok"``, ``"failed"``, ``"interrupted"``),
        or ``"dead"`` (no end line and no live process)."""
        if self.outcome is not None:
            return self.outcome
        return "live" if self.live else "dead"

    @property
    def used(self) -> set[str]:
        """Every identifier the run submitted or looked up (its gc roots while it counts)."""
        return set(self.jobs) | set(self.roots)

    def to_json(self) -> dict[str, Any]:
        """The run, JSON-ready (jobs as a list)."""
        return {
            "experiment": self.experiment, "run": self.name, "path": str(self.path),
            "status": self.status, "started": self.started, "ended": self.ended,
            "host": self.header.get("host"), "pid": self.header.get("pid"),
            "jobs": [{"id": j.identifier, "name": j.name, "reason": j.reason,
                      "dependencies": j.dependencies} for j in self.jobs.values()],
            "roots": self.roots, "damaged": self.damaged,
        }


def run_is_live(header: dict[str, Any] | None, modified: float, now: float | None = None) -> bool:
    """Whether a run without an end line is live (see the module doc)."""
    now = time.time() if now is None else now
    if not header:
        return now - modified < REMOTE_RUN_GRACE
    if header.get("host") == socket.gethostname():
        if header.get("boot_id") != boot_id():
            return False  # this machine rebooted since: the run's process is gone
        pid = header.get("pid")
        return isinstance(pid, int) and pid > 0 and process_start(pid) == header.get("pid_start")
    return now - modified < REMOTE_RUN_GRACE


def _ids(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [intern(v) for v in values if is_full_identifier(v)]


def _tags(values: Any) -> dict[str, Any]:
    """The tags of a job line: str names with str, int, float or bool values (others dropped)."""
    if not isinstance(values, dict):
        return {}
    return {k: v for k, v in values.items()
            if isinstance(k, str) and isinstance(v, (str, int, float, bool))}


def read_one(experiment: str, path: Path, now: float | None = None) -> Run | None:
    """The run recorded at ``path`` (None when the file vanished)."""
    try:
        modified = path.stat().st_mtime
        lines = iter_run(path)
    except FileNotFoundError:
        return None
    header: dict[str, Any] = {}
    end: dict[str, Any] | None = None
    jobs: dict[str, RunJob] = {}
    roots: list[str] = []
    invalid = 0
    for line in lines:
        if not isinstance(line, dict):
            invalid += 1
            continue
        kind = line.get("type")
        raw = line.get("id")  # identifiers and names recur across runs: one copy each
        ident = intern(raw) if is_full_identifier(raw) else ""
        valid = bool(ident)
        if kind in ("job", "reason", "root") and not valid:
            invalid += 1
        elif kind == "header" and not header:
            header = line
        elif kind == "git" and header and "git" not in header:
            header = {**header, "git": git_state_of(line)}  # as older headers held it
        elif kind == "end":
            end = line
        elif kind == "job" and valid:
            jobs[ident] = RunJob(ident, intern(str(line.get("name", ""))),
                                 intern(str(line.get("reason", ""))),
                                 _ids(line.get("dependencies")), _tags(line.get("tags")))
        elif kind == "reason" and valid and ident in jobs:
            jobs[ident].reason = intern(str(line.get("reason", "")))
        elif kind == "root" and valid:
            roots.append(ident)
    started = header.get("started")
    ended = end.get("ended") if end is not None else None
    return Run(
        experiment=experiment, name=path.name.removesuffix(".jsonl"), path=path, header=header,
        started=float(started) if isinstance(started, (int, float)) else modified,
        ended=float(ended) if isinstance(ended, (int, float)) else None,
        outcome=str(end.get("outcome")) if end is not None else None,
        live=end is None and run_is_live(header, modified, now),
        jobs=jobs, roots=roots, damaged=invalid + lines.damaged,
    )


def read_runs(workspace: Workspace, experiment: str | None = None) -> list[Run]:
    """Every run of every experiment (or of ``experiment``), oldest first within an experiment
    (run names start with their UTC start time), experiments by name."""
    top = workspace.experiments
    try:
        names = sorted(os.listdir(top)) if experiment is None else [experiment]
    except FileNotFoundError:
        return []
    now = time.time()
    runs: list[Run] = []
    for name in names:
        if not is_experiment_name(name):
            continue
        folder = top / name
        try:
            files = sorted(f for f in os.listdir(folder) if f.endswith(".jsonl"))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for file in files:
            run = read_one(name, folder / file, now)
            if run is not None:
                runs.append(run)
    return runs

