"""A task directory's protocol files, and whether their holder is alive (docs/scheduler.md).

The one owner of the files of an object's ``.xpm/`` folder but its done manifest
(:mod:`~xpmstore.store.taskdirs`) and its progress (:mod:`~xpmstore.store.taskprogress`): their
names, their formats, every read and every write.

* ``state.json`` (:class:`StateDocument`): ``running`` (written once with the launch record, as
  one document), then ``done`` or ``failed`` with its times, exit code and reason;
* ``launch.json`` (:class:`LaunchRecord`): who holds the job, written by the claim, then
  rewritten by the job's process with its own pid;
* ``heartbeat``: touched every 10 s while the job runs, for schedulers on other hosts;
* ``attempts/<n>/``: the logs, state and progress of earlier attempts (:func:`move_attempt`);
* ``slurm.json`` (:class:`SlurmRecord`), ``slurm.sh``, ``slurm-<id>.out``: the Slurm launcher's.

Every file read back is input: a reader never raises for a missing, damaged or hostile file
(not JSON, not an object, a directory, a fifo, a device) and never blocks on one; it answers as
for a missing file.  The fields of a record read back may still hold other types than those
written: a reader of a field checks its type when a wrong one matters.

**Liveness** of a launch record: on the same host (same boot), the holder is alive when a
process with its pid exists and started at ``pid_start`` (so a recycled pid is not mistaken for
it).  On another host, the runner's heartbeat file (or, before its first beat, its launch
record) is fresh (refreshed every 10 s, stale after 60 s).  A Slurm job is alive while
``squeue`` shows it pending or running (when ``squeue`` cannot answer here, the rules above
apply).

Whether this process is a job's process (:func:`inside_job`) is known here too, set by the job's
runner: an experiment is then refused, and a ``@cache`` entry the job makes is pushed by its
experiment, not by the job.  Safe across processes: every write is atomic.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

from ..system import jsonio
from ..system.atomic import write_atomic, write_atomic_many
from .taskdirs import is_done
from .workspace import XPM

__all__ = [
    "ATTEMPTS", "HEARTBEAT", "HEARTBEAT_STALE", "LAUNCH", "SLURM_RECORD", "SLURM_SCRIPT", "STATE",
    "JobState", "LaunchRecord", "SlurmRecord", "StateDocument", "Status", "ask_slurm_at_once",
    "attempt_dir", "attempt_numbers", "boot_id", "heartbeat_path", "inside_job",
    "launch_is_live", "launch_record", "live_directories", "mark_job_process", "move_attempt",
    "object_status", "process_start", "read_attempt_state", "read_launch", "read_slurm_record",
    "read_state", "remove_own_launch", "remove_state", "slurm_output_path", "touch_heartbeat",
    "write_launch", "write_running", "write_slurm_record", "write_state",
]

# --- names, relative to an object directory ---------------------------------------------------

_STATE_NAME = "state.json"
STATE = f"{XPM}/{_STATE_NAME}"
"""The job's state (:class:`StateDocument`)."""
LAUNCH = f"{XPM}/launch.json"
"""The launch record (:class:`LaunchRecord`)."""
HEARTBEAT = f"{XPM}/heartbeat"
"""Touched while the job runs; its time is the beat."""
ATTEMPTS = f"{XPM}/attempts"
"""The folder of earlier attempts, one numbered folder each (1, 2...)."""
SLURM_RECORD = f"{XPM}/slurm.json"
"""The Slurm launcher's record of the job (:class:`SlurmRecord`)."""
SLURM_SCRIPT = f"{XPM}/slurm.sh"
"""The job's sbatch script."""

HEARTBEAT_STALE = 60.0
"""Seconds after which a heartbeat (or a launch record) of another host counts as dead."""

_MAX_DOCUMENT = 1 << 24  # bytes: far above any record xpmstore writes; a device is not read on

# --- the records ------------------------------------------------------------------------------

Status = Literal["done", "failed", "running", "queued", "absent"]
"""The status of an object directory (:func:`object_status`)."""

JobState = Literal["running", "done", "failed"]
"""The ``state`` of a state file."""


class LaunchRecord(TypedDict, total=False):
    """``launch.json``: the process that holds the job (:func:`launch_record`) and what the
    claim adds (the launcher, the run's tags, experiment and run; a Slurm job's id).  Once the
    job's process has started, it is the job's ``running`` state (:class:`StateDocument`)."""

    host: str
    boot_id: str
    pid: int
    pid_start: int | None
    time: float
    launcher: str
    tags: dict[str, Any]
    experiment: str
    run: str
    slurm_job_id: str
    started: float | None


class StateDocument(LaunchRecord, total=False):
    """``state.json``.  A ``running`` state is the job's launch record too (one document
    published under both names); ``done`` and ``failed`` hold the times, exit code and
    reason."""

    state: JobState
    ended: float
    exit_code: int
    reason: str


class SlurmRecord(TypedDict, total=False):
    """``slurm.json``: the Slurm job of a task, its afterok dependencies, the resubmissions
    made (``attempt``, ``history``) and the launcher that submitted it."""

    job_id: str
    attempt: int
    after: list[str]
    history: list[str]
    launcher: str


# --- reading and writing ----------------------------------------------------------------------


def _read_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in the file ``path``, or None (absent, unreadable, not an object).

    One ``open`` and its ``read`` calls (the job's path reads the launch record this way):
    non-blocking, so that a fifo is never waited on, and bounded, so that a device is not read
    on without end; a directory fails its read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > _MAX_DOCUMENT:
                return None
            chunks.append(chunk)
        data = jsonio.loads(b"".join(chunks), os.fspath(path))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else None


def _write(directory: str | os.PathLike[str], name: str, document: Any) -> None:
    """Publish ``document`` at ``directory/name`` atomically, without fsync (these files say
    what a job is doing; the done manifest alone says that it is done).  Raises OSError."""
    write_atomic(os.path.join(directory, name), json.dumps(document).encode(), durable=False)


_started: tuple[int, int | None] = (-1, None)  # (pid, its start time): read once per process


def launch_record(**extra: Any) -> LaunchRecord:
    """A launch record naming this process: host, boot id, pid and its start time, the time,
    plus ``extra`` (launcher, tags, experiment, run...)."""
    global _started
    pid = os.getpid()
    if _started[0] != pid:
        _started = (pid, process_start(pid))
    return cast(LaunchRecord, {"host": socket.gethostname(), "boot_id": boot_id(), "pid": pid,
                               "pid_start": _started[1], "time": time.time(), **extra})


def read_launch(directory: str | os.PathLike[str]) -> LaunchRecord | None:
    """The launch record of an object directory, or None (absent or unreadable)."""
    return cast("LaunchRecord | None", _read_object(os.path.join(directory, LAUNCH)))


def write_launch(directory: str | os.PathLike[str], record: LaunchRecord) -> None:
    """Publish the launch record (its ``.xpm/`` made when missing).  Raises OSError."""
    try:
        _write(directory, LAUNCH, record)
    except FileNotFoundError:
        os.makedirs(os.path.join(directory, XPM), exist_ok=True)
        _write(directory, LAUNCH, record)


def remove_own_launch(directory: str | os.PathLike[str]) -> None:
    """Remove the launch record when it names this process (a claim given up before its
    launch).  Raises OSError as ``unlink`` does."""
    record = read_launch(directory)
    if record is not None and record.get("pid") == os.getpid():
        os.unlink(os.path.join(directory, LAUNCH))


def read_state(directory: str | os.PathLike[str]) -> StateDocument:
    """The job's state file (``{}`` when absent or unreadable)."""
    return cast(StateDocument, _read_object(os.path.join(directory, STATE)) or {})


def write_state(directory: str | os.PathLike[str], state: JobState, **fields: Any) -> None:
    """Write the job's state with its fields (times, exit code, reason) and the time, atomically.
    Raises OSError."""
    _write(directory, STATE, {"state": state, "time": time.time(), **fields})


def write_running(directory: str | os.PathLike[str], document: StateDocument) -> None:
    """Publish the job's launch record and its state ``running``: the same document under both
    names, written once (the job's process, as it starts).  Raises OSError."""
    write_atomic_many((os.path.join(directory, LAUNCH), os.path.join(directory, STATE)),
                      json.dumps(document).encode())


def remove_state(directory: str | os.PathLike[str]) -> None:
    """Remove the job's state file.  Raises OSError as ``unlink`` does (FileNotFoundError)."""
    os.unlink(os.path.join(directory, STATE))


def heartbeat_path(directory: str | os.PathLike[str]) -> str:
    """The job's heartbeat file."""
    return os.path.join(directory, HEARTBEAT)


def touch_heartbeat(path: str) -> None:
    """Beat: set the heartbeat file's time to now, creating it on the first beat.  Never
    raises (a beat that fails is missed; the next one may pass)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError:
            pass
    except OSError:
        pass


def attempt_numbers(directory: str | os.PathLike[str]) -> list[int]:
    """The numbers of the earlier attempts kept in ``directory``, oldest first (names that are
    not a number written by :func:`move_attempt` are left out)."""
    try:
        names = os.listdir(os.path.join(directory, ATTEMPTS))
    except OSError:
        return []
    return sorted(int(n) for n in names
                  if n.isascii() and n.isdigit() and not n.startswith("0") and len(n) < 10)


def attempt_dir(directory: str | os.PathLike[str], number: int) -> Path:
    """The folder of attempt ``number`` (its ``stdout``, ``stderr`` and ``state.json``)."""
    return Path(directory, ATTEMPTS, str(number))


def read_attempt_state(directory: str | os.PathLike[str], number: int) -> StateDocument:
    """The state file of attempt ``number`` (``{}`` when absent or unreadable)."""
    return cast(StateDocument,
                _read_object(os.path.join(attempt_dir(directory, number), _STATE_NAME)) or {})


def move_attempt(directory: Path) -> int | None:
    """Move stdout, stderr, state and progress of a previous attempt to ``.xpm/attempts/<n>/``,
    with a copy of the ``params.json`` it ran with (its values: a re-run may be given others);
    other files stay (tasks may resume).  Returns n, or None when there was nothing to move.
    Raises OSError."""
    import shutil

    from .taskprogress import PROGRESS_FILE

    moved = [p for p in (directory / "stdout", directory / "stderr", directory / STATE,
                         directory / XPM / PROGRESS_FILE) if p.exists()]
    if not moved:
        return None
    attempts = directory / ATTEMPTS
    attempts.mkdir(parents=True, exist_ok=True)
    number = 1 + max(attempt_numbers(directory), default=0)
    target = attempts / str(number)
    target.mkdir()
    for path in moved:
        shutil.move(str(path), target / path.name)
    params = directory / "params.json"
    if os.path.isfile(params) and not os.path.islink(params):  # a regular file, never a link
        shutil.copyfile(params, target / "params.json")
    return number


def read_slurm_record(directory: str | os.PathLike[str]) -> SlurmRecord:
    """The Slurm launcher's record of the job (``{}`` when absent or unreadable)."""
    return cast(SlurmRecord, _read_object(os.path.join(directory, SLURM_RECORD)) or {})


def write_slurm_record(directory: str | os.PathLike[str], record: SlurmRecord) -> None:
    """Publish the Slurm launcher's record of the job.  Raises OSError."""
    _write(directory, SLURM_RECORD, record)


def slurm_output_path(directory: str | os.PathLike[str], job_id: str) -> Path:
    """Slurm's own output for the Slurm job ``job_id`` of the task (what ran before the
    runner redirected its streams)."""
    return Path(directory, XPM, f"slurm-{job_id}.out")


# --- liveness -----------------------------------------------------------------------------------

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


def ask_slurm_at_once(records: Iterable[LaunchRecord | None]) -> None:
    """Ask ``squeue`` once about every Slurm job these launch records name, so that the
    liveness checks that follow read its (cached) answers instead of asking once per job."""
    ids = [str(r["slurm_job_id"]) for r in records if r and r.get("slurm_job_id")]
    if ids:
        from ..system.slurmctl import active_states

        active_states(ids)


def live_directories(directories: Iterable[Path]) -> list[Path]:
    """The directories whose launch record names a live holder; the Slurm jobs among them are
    asked of ``squeue`` all at once rather than one by one."""
    records = [(d, read_launch(d)) for d in directories]
    ask_slurm_at_once(r for _, r in records)
    return [d for d, r in records if r is not None and launch_is_live(d, r)]


def launch_is_live(directory: Path, record: LaunchRecord | None = None) -> bool:
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
    for name in (HEARTBEAT, LAUNCH):  # the runner's first beat is its launch record
        try:
            beat = max(beat, (directory / name).stat().st_mtime)
        except OSError:
            pass
    return time.time() - beat < HEARTBEAT_STALE


def object_status(directory: Path) -> Status:
    """"done", "failed", "running", "queued" or "absent", read from an object directory.

    "queued": claimed by a live scheduler (or submitted to Slurm) but not started yet, such as
    a job claimed ahead of a free worker.  A job whose state says running but whose holder is
    gone (killed, machine rebooted) is "failed": it will run again on the next submit.
    """
    if is_done(directory):
        return "done"
    state = read_state(directory).get("state")
    if state == "failed":
        return "failed"
    if state == "running" or os.path.exists(directory / LAUNCH):
        if launch_is_live(directory):
            return "running" if state == "running" else "queued"  # claimed, not started
        return "failed" if state == "running" else "absent"
    return "absent"
