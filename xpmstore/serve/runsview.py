"""Experiments, runs and their jobs as the pages show them (JSON-ready dicts).

Everything is read through :mod:`xpmstore.scheduler.runs` (the run records) and the task directories
(status, state, launch record, in-task progress), as ``xpmstore experiments`` and ``xpmstore
jobs`` read them.  Reads only; safe across threads and processes.  Blocking (disk): the server
calls these functions on worker threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..scheduler.runs import Run, RunJob
from ..store.taskstate import (
    LaunchRecord,
    StateDocument,
    Status,
    object_status,
    read_launch,
    read_state,
)
from ..store.workspace import Workspace
from .progressview import job_progress
from .runcache import RunCache

__all__ = [
    "COUNTED",
    "experiments_view",
    "job_directory",
    "job_view",
    "run_summary",
    "run_view",
]

COUNTED = ("done", "running", "queued", "failed", "reused")
"""The counts of a run's jobs, in the order the pages show them."""


def job_directory(workspace: Workspace, job: RunJob) -> Path | None:
    """The task directory of a job line (None for a name that cannot name a folder)."""
    if not job.name or "/" in job.name or job.name.startswith(".") or "\x00" in job.name:
        return None
    return workspace.jobs / job.name / job.identifier


def _category(status: str, reason: str, live: bool) -> str:
    """Which count a job falls in: reused (its run reused it), else its status on the disk
    (absent counts as queued while the run is live, as not run after)."""
    if reason.startswith(("reused", "pulled")):
        return "reused"
    if status == "absent":
        return "queued" if live else "not run"
    return status


def _summary(run: Run, categories: list[str]) -> dict[str, Any]:
    counts = dict.fromkeys((*COUNTED, "not run"), 0)
    for category in categories:
        counts[category] += 1
    return {"experiment": run.experiment, "run": run.name, "status": run.status,
            "started": run.started, "ended": run.ended, "host": run.header.get("host"),
            "jobs": len(run.jobs), "counts": counts}


def run_summary(workspace: Workspace, run: Run) -> dict[str, Any]:
    """A run with the counts of its jobs by :data:`COUNTED` category (and ``not run``)."""
    categories = []
    for job in run.jobs.values():
        directory = job_directory(workspace, job)
        status = object_status(directory) if directory is not None else "absent"
        categories.append(_category(status, job.reason, run.live))
    return _summary(run, categories)


def experiments_view(runs: RunCache) -> list[dict[str, Any]]:
    """Every experiment (by name) with its runs, newest run first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run in runs.runs():
        grouped.setdefault(run.experiment, []).append(run_summary(runs.workspace, run))
    return [{"name": name, "runs": list(reversed(runs))} for name, runs in grouped.items()]


def job_view(workspace: Workspace, job: RunJob, live: bool = True) -> dict[str, Any]:
    """One job of a run: identity, status read from its directory, reason, tags, launcher,
    start and end times (the page counts the elapsed time), and in-task progress."""
    directory = job_directory(workspace, job)
    state: StateDocument = {}
    launch: LaunchRecord = {}
    status: Status = "absent"
    progress = None
    if directory is not None:
        status = object_status(directory)
        state = read_state(directory)
        launch = read_launch(directory) or {}
        if status == "running":
            progress = job_progress(directory)
    started = state.get("started", launch.get("started"))
    ended = state.get("ended") if status != "running" else None
    return {
        "identifier": job.identifier, "name": job.name, "status": status,
        "category": _category(status, job.reason, live), "reason": job.reason,
        "tags": job.tags, "dependencies": job.dependencies,
        "launcher": launch.get("launcher"), "host": launch.get("host"),
        "started": started if isinstance(started, (int, float)) else None,
        "ended": ended if isinstance(ended, (int, float)) else None,
        "exit_code": state.get("exit_code"), "failure": state.get("reason"),
        "progress": progress,
    }


def run_view(runs: RunCache, experiment: str, run_name: str) -> dict[str, Any] | None:
    """A run with every job (see :func:`job_view`), or None when there is no such run.  The
    names must be checked by the caller (:func:`xpmstore.scheduler.runs.is_experiment_name`)."""
    run = runs.run(experiment, run_name)
    if run is None:
        return None
    jobs = [job_view(runs.workspace, job, run.live) for job in run.jobs.values()]
    summary = _summary(run, [job["category"] for job in jobs])
    summary["jobs"] = jobs
    summary["header"] = {k: run.header.get(k) for k in ("host", "pid", "xpmstore", "python",
                                                         "git")}
    return summary
