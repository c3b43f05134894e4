"""The claim protocol: at most one running copy of a job, exactly one completion
(docs/scheduler.md).

Two locks per job, both ``flock``-based (released by the kernel when their holder dies, so a
``kill -9`` never leaves a stale lock on one host):

* the **claim lock** (``.xpmstore/locks/<ab>/<id>``), held for milliseconds by a scheduler that
  decides whether to launch;
* the **run lock** (``…/<id>.run``), held by the job's process for its whole run.

A scheduler claims a job under the claim lock: it re-checks ``.xpm/done``; if the run lock is
held, or ``.xpm/launch.json`` names a live holder, it waits for that holder instead of launching;
otherwise it moves the logs of a failed attempt to ``.xpm/attempts/<n>/``, rewrites the values
section of params.json with the submission's values (a re-run sees today's Meta values), writes
the launch record atomically and launches.  The job's process then takes the run lock without
waiting (it exits as ``waited`` if another process holds it), re-checks done, and rewrites the
launch record with its own pid.  Safe across processes and hosts sharing the file system.
The files it reads and writes (launch record, state, earlier attempts) are those of
:mod:`xpmstore.store.taskstate`; this module holds the decisions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..store.taskdirs import is_done
from ..store.taskstate import (
    launch_is_live,
    launch_record,
    move_attempt,
    read_launch,
    read_state,
    write_launch,
)
from ..store.workspace import Workspace
from ..system.locks import HeldLock, hold_under, path_lock, try_object_lock

if TYPE_CHECKING:
    from ..core.config import Config

__all__ = ["Claim", "ClaimOutcome", "HolderState", "claim", "holder_state", "start_run"]

ClaimOutcome = Literal["done", "held", "launch"]
"""What a claim decided (:class:`Claim`)."""

HolderState = Literal["done", "running", "gone"]
"""What :func:`holder_state` found."""


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: ``"done"``, ``"held"`` (by ``holder``) or ``"launch"``."""

    outcome: ClaimOutcome
    holder: str = ""
    failed_before: bool = False


def _run_lock_held(workspace: Workspace, identifier: str) -> bool:
    """Whether some process holds the job's run lock right now (a probe: call it under the
    claim lock, or it may collide with a job taking its run lock)."""
    path = workspace.run_lock_path(identifier)
    if not os.path.exists(path):  # never taken: nobody holds it (and no file is created here;
        return False              # a job creates it under the claim lock, which we hold)
    with try_object_lock(path) as acquired:
        return not acquired


def claim(workspace: Workspace, identifier: str, taskdir: Path, *, values: Config | None = None,
          **launch: Any) -> Claim:
    """Decide, under the job's claim lock, whether this process launches the job.

    The order matters: the run lock first (a running job holds it and publishes its done
    manifest before it lets go), then the done manifest, then the launch record (a job launched
    but not started yet).  Job processes take their run lock under the claim lock too (see
    :func:`start_run`), so no probe here ever makes a starting job believe it has a rival.

    When this process is to launch the job and ``values`` is the submitted task, params.json's
    values section becomes the task's (:func:`xpmstore.core.params.refresh_values`): the job runs
    with the values of the submission that launches it, while a done task keeps the values it
    was made with.  ``launch`` goes into the launch record (launcher name, Slurm job id...).
    Raises LockUnavailableError on a file system without working locks.
    """
    with path_lock(workspace.lock_path(identifier)):
        if _run_lock_held(workspace, identifier):
            if is_done(taskdir):
                return Claim("done")
            holder = read_launch(taskdir) or {}
            return Claim("held", str(holder.get("host", "?")))
        if is_done(taskdir):
            return Claim("done")
        record = read_launch(taskdir)
        if record is not None and launch_is_live(taskdir, record) and (
            record.get("pid") != os.getpid() or record.get("slurm_job_id")
        ):
            return Claim("held", str(record.get("host", "?")))
        state = read_state(taskdir)
        failed_before = state.get("state") in ("failed", "running")
        if record is not None or state:  # else no attempt ever started: nothing to move
            move_attempt(taskdir)
        if values is not None:
            from ..core.params import refresh_values

            refresh_values(taskdir, values)
        write_launch(taskdir, launch_record(**launch))
        # No state file until the job's process writes "running": the launch record is the
        # claim's record (a job claimed, not started: a live launch record and no state).
        # The run lock's file is made here, so that the job only opens it (probes of a lock
        # nobody took find it free all the same).
        os.close(os.open(workspace.run_lock_path(identifier), os.O_RDWR | os.O_CREAT, 0o644))
        return Claim("launch", failed_before=failed_before)


def holder_state(workspace: Workspace, identifier: str, taskdir: Path) -> HolderState:
    """Under the claim lock: ``"done"``, ``"running"`` (run lock held or a live launch record
    naming another process) or ``"gone"`` (nobody holds the job and it is not done)."""
    with path_lock(workspace.lock_path(identifier)):
        if is_done(taskdir):
            return "done"
        if _run_lock_held(workspace, identifier):
            return "running"
        record = read_launch(taskdir)
        if record is not None and (record.get("pid") != os.getpid()
                                   or record.get("slurm_job_id")) and launch_is_live(
            taskdir, record
        ):
            return "running"
        return "done" if is_done(taskdir) else "gone"


def start_run(workspace: Workspace, identifier: str) -> HeldLock:
    """Take the job's run lock for this process (the job's process calls it); ``close()`` lets
    it go.

    The run lock is taken under the claim lock, so that the probes of claims never collide with
    it; raises LockTimeout when another process runs the job.
    """
    return hold_under(workspace.lock_path(identifier), workspace.run_lock_path(identifier))
