"""The job's process: run one task in its directory and publish it (docs/scheduler.md).

Either forked from the zygote (:mod:`xpmstore.scheduler.zygote`) or started as
``python -m xpmstore.scheduler.runner TASKDIR``.  In both cases :func:`run_job`:

1. takes the job's run lock without waiting (exit :data:`EXIT_WAITED` if another process holds
   it), re-checks ``.xpm/done`` (exit 0 if done), and publishes its launch record (its own pid)
   and the state ``running``: one document, written once under both names;
2. redirects stdout and stderr to the task directory's ``stdout`` and ``stderr``, changes to the
   task directory, applies ``job.environ``;
3. rebuilds the task from params.json; fails (``dependency <Name> <id> not done``, exit 1,
   nothing executed) when a task it depends on has no done manifest; sets ``__taskdir__``,
   ``__tags__`` and ``__maintaskdir__``, and calls ``execute()``;
4. on a normal return, writes the done manifest (the last write) and the state ``done`` (a job
   of the zygote: once it has told the scheduler it is done); otherwise prints the traceback to
   ``stderr`` and records the state ``failed``.

A heartbeat file is refreshed every 10 s for schedulers on other hosts: by a thread of the job
(``heartbeat=True``), or by the zygote for the jobs it forked.  What every job needs whatever its
task (its launch record's fields, the heartbeat thread) is made by :func:`prepare`, which a
zygote's spare calls while it waits for its job.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExperimentInJobError
from .progress import describe_error

if TYPE_CHECKING:
    from ..store.taskstate import LaunchRecord

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_REFUSED", "EXIT_WAITED", "flush_standard_streams",
           "main", "prepare", "run_job", "write_done_state"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_WAITED = 75
EXIT_REFUSED = 78
"""The job's task could not even be rebuilt because importing its script entered an
``experiment()`` (an unguarded script): every job of that script fails the same way."""
HEARTBEAT_PERIOD = 10.0


class _DependencyNotDone(Exception):
    """A task the job depends on has no done manifest: the job fails without executing."""


class _Heartbeat:
    """A daemon thread that touches a job's heartbeat file every :data:`HEARTBEAT_PERIOD`
    seconds, once told which file (started ahead of the job, off its path)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._path: str | None = None
        self._stopped = False
        threading.Thread(target=self._run, daemon=True, name="xpmstore-heartbeat").start()

    def start(self, path: str) -> None:
        with self._cond:
            self._path = path
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        from ..store.taskstate import touch_heartbeat

        with self._cond:
            while self._path is None and not self._stopped:
                self._cond.wait()
            while not self._stopped:
                self._cond.wait(HEARTBEAT_PERIOD)
                if self._stopped or self._path is None:
                    return
                touch_heartbeat(self._path)


_own: tuple[int, LaunchRecord] | None = None  # (pid, launch record fields) of this process
_heartbeat: tuple[int, _Heartbeat] | None = None  # (pid, the next job's heartbeat)


def prepare(heartbeat: bool = True) -> tuple[LaunchRecord, _Heartbeat | None]:
    """Make ahead what a job of this process needs: the fields of its launch record (host,
    boot id, pid and its start time) and, with ``heartbeat``, its heartbeat thread.  Idempotent
    until a job takes them (:func:`run_job` does)."""
    global _own, _heartbeat
    pid = os.getpid()
    if _own is None or _own[0] != pid:
        from ..store.taskstate import launch_record

        _own = (pid, launch_record())
    if not heartbeat:
        return _own[1], None
    if _heartbeat is None or _heartbeat[0] != pid:
        _heartbeat = (pid, _Heartbeat())
    return _own[1], _heartbeat[1]


def _redirect(taskdir: Path) -> None:
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(taskdir / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _workspace_of(taskdir: Path) -> Path:
    return taskdir.parent.parent.parent  # WORKSPACE/jobs/<name>/<id>


def run_job(taskdir: str | os.PathLike[str], environ: dict[str, str] | None = None,
            tags: dict[str, Any] | None = None, heartbeat: bool = True,
            done_later: bool = False) -> int:
    """Run the job of ``taskdir`` in this process; returns the exit code (see module doc).
    ``heartbeat=False``: another process (the zygote) refreshes the job's heartbeat file.
    ``done_later=True``: the state ``done`` is written by :func:`write_done_state`, after the
    caller has reported the job's end (the done manifest, written and synced, is what says it
    is done).

    Never raises for a failure of the task itself: the failure is recorded.
    """
    global _heartbeat
    from ..core.config import Task, class_spec, dependencies
    from ..core.params import load
    from ..store import leases, taskdirs, taskstate
    from ..store.taskprogress import progress
    from ..store.workspace import Workspace, set_active_workspace
    from ..system.locks import LockTimeout
    from . import claim

    taskstate.mark_job_process()
    directory = Path(taskdir)
    workspace = Workspace.at(_workspace_of(directory))
    identifier = directory.name
    try:
        lock = claim.start_run(workspace, identifier)
    except LockTimeout:
        return EXIT_WAITED
    own, beat = prepare(heartbeat)
    if beat is not None:
        _heartbeat = None  # this job's: the next job of this process (tests) makes its own
    try:
        if taskdirs.is_done(directory):
            return EXIT_OK
        recorded = taskstate.read_launch(directory) or {}
        started = time.time()
        # The launch record now names this process, and the state says running: the same
        # document under both names (one file written; the state file's other fields are the
        # launch record's).  Later states replace the state file alone.
        slurm = os.environ.get("XPMSTORE_SLURM_JOB_ID")  # set by SlurmLauncher's script: the
        if slurm:  # id stays in the record even if the runner read it before sbatch returned
            recorded["slurm_job_id"] = slurm
        try:
            taskstate.write_running(directory, {**recorded, **own, "time": started,
                                                "state": "running", "started": started})
            _redirect(directory)
            os.chdir(directory)
        except OSError as exc:  # a full disk, say: the job fails before it starts
            _record_failure(directory, EXIT_FAILED, started, f"not started: {describe_error(exc)}")
            return EXIT_FAILED
        if beat is not None:
            beat.start(taskstate.heartbeat_path(directory))
        progress.begin(directory)
        if environ:
            os.environ.update(environ)
        set_active_workspace(workspace)
        try:
            task = load(directory)
            if not isinstance(task, Task):
                raise TypeError(f"{directory}/params.json does not describe a Task")
            for dependency in dependencies(task):  # one stat each
                name = class_spec(type(dependency)).identity_name
                if not _seen_done(workspace.task_dir(name, dependency.__identifier__)):
                    raise _DependencyNotDone(
                        f"dependency {name} {dependency.__identifier__[:12]} not done")
            taskdirs.bind(task, workspace)
            task.__dict__["_xpm_run_tags"] = dict(tags if tags is not None
                                                  else recorded.get("tags", {}))
            task.execute()
            name = class_spec(type(task)).identity_name
            exclude = tuple(getattr(type(task), "__xpm_exclude__", ()))
            flush_standard_streams()  # the logs are listed in the done manifest
            taskdirs.finish(directory, identifier, "task", name, exclude,
                            taskdirs.task_extra(task))
        except BaseException as exc:
            if isinstance(exc, _DependencyNotDone):
                _to_stderr(f"xpmstore: {exc}: the task was not run\n")
                reason = str(exc)
            else:
                _to_stderr(traceback.format_exc())
                reason = describe_error(_refusal(exc) or exc)[:500]
            code = 130 if isinstance(exc, KeyboardInterrupt) else \
                EXIT_REFUSED if _refusal(exc) is not None else EXIT_FAILED
            _record_failure(directory, code, started, reason)
            return code
        fields = {"exit_code": 0, "started": started, "ended": time.time()}
        if done_later:
            global _done_state
            _done_state = (directory, fields)
        else:
            try:
                taskstate.write_state(directory, "done", **fields)
            except OSError:
                pass  # the done manifest says it all; the state is for people
        return EXIT_OK
    finally:
        progress.end()
        if beat is not None:
            beat.stop()
        leases.release()  # the job's @cache leases: its process exits without atexit
        lock.close()


def _refusal(exc: BaseException) -> ExperimentInJobError | None:
    """The refusal of an ``experiment()`` entered in this job (an unguarded script) that caused
    ``exc``, if one did (loading the task wraps it into a ClassNotFoundError)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ExperimentInJobError):
            return cause
        cause = cause.__cause__
    return None


def flush_standard_streams() -> None:
    """Write out the buffers of ``sys.stdout`` and ``sys.stderr``; one that user code closed
    or replaced, or a file that cannot grow (a full disk), is no failure of the job."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _to_stderr(text: str) -> None:
    """``text`` into the task's ``stderr`` (lost when that file cannot grow: a full disk)."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _record_failure(directory: Path, code: int, started: float, reason: str) -> None:
    """Write the state ``failed``; on a full disk the scheduler records what it can."""
    from ..store.taskstate import write_state

    try:
        write_state(directory, "failed", exit_code=code, started=started, ended=time.time(),
                    reason=reason)
    except OSError:
        pass


_done_state: tuple[Path, dict[str, Any]] | None = None


def write_done_state() -> None:
    """Write the state ``done`` of the job that :func:`run_job` ran with ``done_later``."""
    global _done_state
    if _done_state is not None:
        from ..store.taskstate import write_state

        (directory, fields), _done_state = _done_state, None
        try:
            write_state(directory, "done", **fields)
        except OSError:
            pass  # the done manifest says it all; the state is for people


DEPENDENCY_GRACE = float(os.environ.get("XPMSTORE_DEPENDENCY_GRACE", "30"))
"""Seconds a job waits to see a dependency's done manifest before it fails: a job started by
Slurm's afterok on another node may not see a fresh file yet (network file systems cache).
``XPMSTORE_DEPENDENCY_GRACE`` sets it."""


def _seen_done(taskdir: Path) -> bool:
    """Whether ``taskdir``'s done manifest is there: one stat, and only when it is not, the
    directory re-listed (which refreshes a network file system's view) for up to
    DEPENDENCY_GRACE seconds."""
    from ..store.taskdirs import is_done, is_done_listed

    if is_done(taskdir):
        return True
    end = time.monotonic() + DEPENDENCY_GRACE
    while time.monotonic() < end:  # a poll on the file system, on the failure path only
        if is_done_listed(taskdir):
            return True
        time.sleep(0.5)
    return False


_USAGE = "usage: python -m xpmstore.scheduler.runner TASKDIR [ENVIRON_JSON]"
_HELP = f"""{_USAGE}

Run the job of TASKDIR (WORKSPACE/jobs/NAME/ID, made by a submit) in this process, as the local
launcher (fresh_process=True) and Slurm job scripts do. ENVIRON_JSON is a JSON object of
environment variables set for the task. Exit code: 0 done (or done already), 1 the task failed,
2 bad arguments, {EXIT_WAITED} another process runs it."""


def _arguments(args: list[str]) -> tuple[Path, dict[str, str] | None]:
    """The task directory and the environment given on the command line; ValueError (one line,
    naming the argument) when they are not a task directory and a JSON object of strings."""
    from ..core.identifier import check_identifier

    directory = Path(args[0])
    try:
        named = len(check_identifier(directory.name)) == 64
    except ValueError:
        named = False
    if not named or directory.parent.parent.name != "jobs" \
            or not (directory / "params.json").is_file():
        raise ValueError(f"{args[0]} is not a task directory (WORKSPACE/jobs/NAME/ID holding a"
                         " params.json)")
    if len(args) == 1:
        return directory, None
    try:
        environ = json.loads(args[1])
    except ValueError:
        environ = None
    if not isinstance(environ, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in environ.items()):
        raise ValueError(f"ENVIRON_JSON {args[1][:80]!r}: expected a JSON object of strings")
    return directory, environ


def main(argv: list[str] | None = None) -> int:
    """``python -m xpmstore.scheduler.runner TASKDIR [ENVIRON_JSON]``: run one job in a fresh
    process (``--help``: what it does).  Bad arguments are one line on stderr and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(_HELP)
        return 0
    if len(args) not in (1, 2):
        print(
            f"xpmstore.scheduler.runner: expected TASKDIR [ENVIRON_JSON] ({_USAGE})",
            file=sys.stderr,
        )
        return 2
    try:
        directory, environ = _arguments(args)
    except ValueError as error:
        print(f"xpmstore.scheduler.runner: {error}", file=sys.stderr)
        return 2
    return run_job(directory, environ)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: its globals (the heartbeat's
    # period, which tests change) are the ones every other module sees.
    from xpmstore.scheduler import runner as _runner

    sys.exit(_runner.main())
