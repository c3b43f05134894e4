"""Run records read once per change: the pages poll runs of tens of thousands of jobs, whose
parsing is costly (docs/serve.md), so a parsed run is kept until its file's size or time
changes (a run record is only ever appended to).  Its liveness, which changes with its process
and not with its file, is decided again at each read.  Thread-safe; reads only.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any

from ..scheduler.runs import Run, is_experiment_name, read_one, run_is_live
from ..store.workspace import Workspace

__all__ = ["JobEdges", "RunCache"]


class JobEdges:
    """The dependencies the job lines of every run record name: ``depends`` (job -> its
    dependencies), ``used_by`` (dependency -> jobs), ``names`` (job -> identity name)."""

    def __init__(self, runs: list[Run]):
        self.depends: dict[str, set[str]] = {}
        self.used_by: dict[str, set[str]] = {}
        self.names: dict[str, str] = {}
        for run in runs:
            for job in run.jobs.values():
                self.names.setdefault(job.identifier, job.name)
                for dependency in job.dependencies:
                    self.depends.setdefault(job.identifier, set()).add(dependency)
                    self.used_by.setdefault(dependency, set()).add(job.identifier)


class RunCache:
    """Parsed run records of one workspace, by file (see the module doc)."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._runs: dict[str, tuple[int, int, Run]] = {}
        self._lock = threading.Lock()
        self._edges: tuple[Any, JobEdges] | None = None

    def run(self, experiment: str, name: str) -> Run | None:
        """The run ``name`` of ``experiment`` (names checked by the caller), or None."""
        path = self.workspace.experiments / experiment / f"{name}.jsonl"
        try:
            info = os.stat(path)
        except OSError:
            return None
        key = str(path)
        with self._lock:
            known = self._runs.get(key)
        if known is not None and known[:2] == (info.st_size, info.st_mtime_ns):
            run = known[2]
        else:
            parsed = read_one(experiment, path)
            if parsed is None:
                return None
            run = parsed
            with self._lock:
                self._runs[key] = (info.st_size, info.st_mtime_ns, run)
        live = run.outcome is None and run_is_live(run.header, info.st_mtime, time.time())
        return run if live == run.live else dataclasses.replace(run, live=live)

    def runs(self, experiment: str | None = None) -> list[Run]:
        """Every run of every experiment (or of ``experiment``), in the order of
        :func:`xpmstore.scheduler.runs.read_runs`."""
        top = self.workspace.experiments
        try:
            names = sorted(os.listdir(top)) if experiment is None else [experiment]
        except OSError:
            return []
        found: list[Run] = []
        seen: set[str] = set()
        for name in names:
            if not is_experiment_name(name):
                continue
            try:
                files = sorted(f for f in os.listdir(top / name) if f.endswith(".jsonl"))
            except OSError:
                continue
            for file in files:
                seen.add(str(top / name / file))
                run = self.run(name, file.removesuffix(".jsonl"))
                if run is not None:
                    found.append(run)
        if experiment is None:  # forget the runs whose files are gone
            with self._lock:
                for key in set(self._runs) - seen:
                    del self._runs[key]
        return found

    def edges(self) -> JobEdges:
        """The :class:`JobEdges` of every run, made again only when a run record changed."""
        runs = self.runs()
        with self._lock:
            version = tuple(sorted((key, size, mtime) for key, (size, mtime, _)
                                   in self._runs.items()))
            if self._edges is not None and self._edges[0] == version:
                return self._edges[1]
        edges = JobEdges(runs)
        with self._lock:
            self._edges = (version, edges)
        return edges
