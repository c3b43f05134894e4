"""Running and recent jobs: ``xpmstore jobs``, ``kill ID`` and ``logs ID [-f]`` (docs/cli.md).

The jobs are read from the run records (:mod:`xpmstore.scheduler.runs`): those of live runs and of
the latest run of each experiment (of every run with ``every_run``), each with its status read from
its directory (one ``stat`` of the done manifest, then its state and launch record).

:func:`kill_job` signals a running job of this host: the job's process runs in its own session,
so the signal goes to its process group (its children too).  It is refused for a job that is not
running, runs on another host, or is still starting (its launch record does not name the job's
own process yet).  Safe across processes.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import NotFound, ObjectInUseError, XpmstoreError
from ..scheduler.runs import Run, read_runs
from ..store.locate import locate
from ..store.taskprogress import ProgressLevel, read_progress
from ..store.taskstate import Status, launch_is_live, object_status, read_launch, read_state
from ..store.workspace import Workspace

__all__ = ["JobInfo", "Killed", "follow", "kill", "kill_job", "list_jobs", "log_paths", "logs"]


@dataclass(frozen=True)
class JobInfo:
    """One job of a run: identity, status read from the disk, reason, its run, the tags it was
    submitted with, when it started and ended (its state file), and the progress its task
    reported (running and failed jobs)."""

    identifier: str
    name: str
    status: Status
    reason: str
    experiment: str
    run: str
    path: Path
    tags: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    progress: list[ProgressLevel] | None = None

    def elapsed(self, now: float | None = None) -> float | None:
        """Seconds it ran (so far, while running), or None when it never started."""
        if self.started is None:
            return None
        end = self.ended if self.ended is not None and self.status != "running" else (
            time.time() if now is None else now)
        return max(0.0, end - self.started)

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return {"identifier": self.identifier, "name": self.name, "status": self.status,
                "reason": self.reason, "experiment": self.experiment, "run": self.run,
                "path": str(self.path), "tags": dict(self.tags), "started": self.started,
                "ended": self.ended, "elapsed": self.elapsed(), "progress": self.progress}


def _timing(directory: Path, status: Status) -> tuple[float | None, float | None]:
    """(started, ended) from the job's state file, when it holds numbers."""
    if status not in ("running", "done", "failed"):
        return None, None
    state = read_state(directory)
    times = [state.get(k) for k in ("started", "ended")]
    started, ended = (t if isinstance(t, (int, float)) and not isinstance(t, bool) else None
                      for t in times)
    return started, ended


def _selected(runs: list[Run], every_run: bool) -> list[Run]:
    if every_run:
        return runs
    latest: dict[str, Run] = {}
    for run in runs:
        latest[run.experiment] = run  # runs come oldest first
    return [run for run in runs if run.live or latest[run.experiment] is run]


def list_jobs(workspace: Workspace, every_run: bool = False) -> list[JobInfo]:
    """The jobs of live runs and of the latest run of each experiment (of every run with
    ``every_run``), running ones first, then queued ones (claimed, not started), then by
    experiment and run."""
    found: list[JobInfo] = []
    for run in _selected(read_runs(workspace), every_run):
        for job in run.jobs.values():
            if not job.name or "/" in job.name or job.name.startswith("."):
                continue
            directory = workspace.jobs / job.name / job.identifier
            status = object_status(directory)
            started, ended = _timing(directory, status)
            found.append(JobInfo(job.identifier, job.name, status, job.reason,
                                 run.experiment, run.name, directory, dict(job.tags), started,
                                 ended, read_progress(directory)
                                 if status in ("running", "failed") else None))
    order = {"running": 0, "queued": 1, "failed": 2, "absent": 3, "done": 4}
    return sorted(found, key=lambda j: (order.get(j.status, 9), j.experiment, j.run))


def log_paths(directory: Path) -> dict[str, Path]:
    """The job's ``stdout`` and ``stderr`` files (they may not exist yet)."""
    return {"stdout": directory / "stdout", "stderr": directory / "stderr"}


def kill_job(directory: Path, force: bool = False) -> int:
    """Send SIGTERM (SIGKILL with ``force``) to the running job of ``directory``; returns its pid
    (0 for a Slurm job, which is ``scancel``-led instead).

    Raises ObjectInUseError when the job is starting (try again), XpmstoreError when it is not
    running or runs on another host.
    """
    name = f"{directory.parent.name} {directory.name[:12]}"
    launch = read_launch(directory)
    if launch is None or not launch_is_live(directory, launch):
        raise XpmstoreError(f"{name} is not running")
    if launch.get("slurm_job_id"):  # a Slurm job: Slurm stops it wherever it runs
        from ..system.slurmctl import cancel

        cancel([str(launch["slurm_job_id"])], force=force)
        return 0
    if launch.get("host") != socket.gethostname():
        raise XpmstoreError(f"{name} runs on {launch.get('host')}; kill it there")
    state = read_state(directory)
    pid = launch.get("pid")
    if state.get("state") != "running" or state.get("pid") != pid or not isinstance(pid, int):
        raise ObjectInUseError(f"{name} is starting; try again in a moment",
                               identifier=directory.name)
    sig = signal.SIGKILL if force else signal.SIGTERM
    try:
        if os.getpgid(pid) == pid:  # the job leads its own session: signal its children too
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        raise XpmstoreError(f"{name} is not running") from None
    return pid


def follow(paths: list[Path], out: IO[bytes], running: Callable[[], bool],
           pause: float = 0.2) -> None:
    """Copy what is appended to ``paths`` to ``out`` while ``running()`` holds, then what is
    left (``tail -f`` for a job's logs).  Files that appear later are followed too."""
    offsets = {path: 0 for path in paths}

    def drain() -> bool:
        moved = False
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    handle.seek(offsets[path])
                    data = handle.read()
            except FileNotFoundError:
                continue
            if data:
                offsets[path] += len(data)
                out.write(data)
                moved = True
        out.flush()
        return moved

    drain()
    while running():
        if not drain():
            time.sleep(pause)
    drain()


@dataclass(frozen=True)
class Killed:
    """A job :func:`kill` signalled: its identifier, identity name and process id (0 for a
    Slurm job, stopped with ``scancel``)."""

    identifier: str
    name: str
    pid: int


def kill(workspace: Workspace, text: str, force: bool = False) -> Killed:
    """Stop the running job that ``text`` (an identifier or a unique prefix) names: SIGTERM
    (SIGKILL with ``force``) to its process group on this host, or ``scancel`` for a Slurm job
    (:func:`kill_job`).  Raises what :func:`~xpmstore.store.locate.locate` and :func:`kill_job`
    raise."""
    identifier, directory = locate(workspace, text)
    return Killed(identifier, directory.parent.name, kill_job(directory, force=force))


def logs(workspace: Workspace, text: str, out: IO[bytes], *, stream: str = "both",
         tail: bool = False) -> None:
    """Write the logs of the job that ``text`` (an identifier or a unique prefix) names to
    ``out``: its ``stdout`` and ``stderr`` (``stream``: ``"both"``, ``"stdout"`` or
    ``"stderr"``), each under a ``==> name <==`` line when both; with ``tail``, what they hold
    and then what is appended while the job runs (interleaved, without headers: :func:`follow`).

    Raises ValueError for another ``stream``, NotFound when the job has no logs yet (without
    ``tail``), and what :func:`~xpmstore.store.locate.locate` raises.
    """
    if stream not in ("both", "stdout", "stderr"):
        raise ValueError(f"stream={stream!r}: expected 'both', 'stdout' or 'stderr'")
    _, directory = locate(workspace, text)
    paths = log_paths(directory)
    chosen = [paths[s] for s in (("stdout", "stderr") if stream == "both" else (stream,))]
    if tail:
        follow(chosen, out, lambda: object_status(directory) in ("running", "queued"))
        return
    present = [p for p in chosen if p.exists()]
    if not present:
        raise NotFound(f"{directory.parent.name} {directory.name[:12]} has no logs yet")
    for path in present:
        if len(chosen) > 1:
            out.write(f"==> {path.name} <==\n".encode())
        out.write(path.read_bytes())
        out.flush()
