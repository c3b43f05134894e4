"""Is the holder of a launch record alive?  (docs/scheduler.md)

A launch record ``.xpm/launch.json`` names ``{host, boot_id, pid, pid_start, launcher,
slurm_job_id}``.  On the same host (same boot), the holder is alive when a process with that pid
exists and started at ``pid_start`` (so a recycled pid is not mistaken for it).  On another host,
the runner's heartbeat file (or, before its first beat, its launch record) is fresh (refreshed
every 10 s, stale after 60 s).  A Slurm job is alive while ``squeue`` shows it pending or running
(when ``squeue`` cannot answer here, the rules above apply).  Reads only.

Whether this process is a job's process (:func:`inside_job`) is known here too, set by the job's
runner: an experiment is then refused, and a ``@cache`` entry the job makes is pushed by its
experiment, not by the job.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..system import jsonio
from .taskdirs import is_done

__all__ = ["HEARTBEAT_STALE", "boot_id", "inside_job", "launch_is_live", "live_directories",
           "mark_job_process", "object_status", "process_start", "read_launch"]

HEARTBEAT_STALE = 60.0

_inside_job = False


def inside_job() -> bool:
    """Whether this process runs a job (or is the zygote that forks jobs)."""
    return _inside_job


def mark_job_process() -> None:
    """Mark this process as a job's process, for the rest of its life (the runner, the zygote)."""
    global _inside_job
    _inside_job = True


@functools.cache
def boot_id() -> str:
    """This machine's boot id (changes at every reboot; read once per process)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot, or None when it is gone
    (zombies count as gone)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def read_launch(directory: Path) -> dict[str, Any] | None:
    """The launch record of an object directory, or None."""
    try:
        data = jsonio.read(directory / ".xpm" / "launch.json")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def live_directories(directories: Iterable[Path]) -> list[Path]:
    """The directories whose launch record names a live holder; the Slurm jobs among them are
    asked of ``squeue`` all at once rather than one by one."""
    records = [(d, read_launch(d)) for d in directories]
    slurm_ids = [str(r["slurm_job_id"]) for _, r in records if r and r.get("slurm_job_id")]
    if slurm_ids:
        from ..system.slurmctl import active_states

        active_states(slurm_ids)  # fills the cache the checks below read
    return [d for d, r in records if r is not None and launch_is_live(d, r)]


def launch_is_live(directory: Path, record: dict[str, Any] | None = None) -> bool:
    """Whether the launch record of ``directory`` names a live holder (local pid or heartbeat)."""
    record = record if record is not None else read_launch(directory)
    if record is None:
        return False
    slurm_job_id = record.get("slurm_job_id")
    if slurm_job_id:  # a Slurm job: live while Slurm has not ended it (when Slurm answers)
        from ..system.slurmctl import active_states

        active = active_states([str(slurm_job_id)])
        if active is not None:
            return active[str(slurm_job_id)]
    if record.get("host") == socket.gethostname() and record.get("boot_id") == boot_id():
        pid = record.get("pid")
        return isinstance(pid, int) and process_start(pid) == record.get("pid_start")
    beat = 0.0
    for name in ("heartbeat", "launch.json"):  # the runner's first beat is its launch record
        try:
            beat = max(beat, (directory / ".xpm" / name).stat().st_mtime)
        except OSError:
            pass
    return time.time() - beat < HEARTBEAT_STALE


def object_status(directory: Path) -> str:
    """"done", "failed", "running", "queued" or "absent", read from an object directory.

    "queued": claimed by a live scheduler (or submitted to Slurm) but not started yet, such as
    a job claimed ahead of a free worker.  A job whose state says running but whose holder is
    gone (killed, machine rebooted) is "failed": it will run again on the next submit.
    """
    if is_done(directory):
        return "done"
    try:
        data = jsonio.read(directory / ".xpm" / "state.json")
    except (OSError, ValueError):
        data = None
    state = data.get("state") if isinstance(data, dict) else None
    if state == "failed":
        return "failed"
    if state == "running" or os.path.exists(directory / ".xpm" / "launch.json"):
        if launch_is_live(directory):
            return "running" if state == "running" else "queued"  # claimed, not started
        return "failed" if state == "running" else "absent"
    return "absent"
