"""The job's process: run one task in its directory and publish it (DESIGN §7).

Either forked from the zygote (:mod:`xpmstore.zygote`) or started as
``python -m xpmstore.runner TASKDIR``.  In both cases :func:`run_job`:

1. takes the job's run lock without waiting (exit :data:`EXIT_WAITED` if another process holds
   it), re-checks ``.xpm/done`` (exit 0 if done), and rewrites the launch record with its pid;
2. redirects stdout and stderr to the task directory's ``stdout`` and ``stderr``, changes to the
   task directory, applies ``job.environ``;
3. rebuilds the task from params.json, sets ``__taskdir__``, ``__tags__`` and
   ``__maintaskdir__``, and calls ``execute()``;
4. on a normal return, writes the done manifest (the last write) and the state ``done``;
   otherwise prints the traceback to ``stderr`` and records the state ``failed``.

A heartbeat file is refreshed every 10 s for schedulers on other hosts.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_WAITED", "inside_job", "main", "run_job"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_WAITED = 75
HEARTBEAT_PERIOD = 10.0

_inside_job = False


def inside_job() -> bool:
    """Whether this process is a job's process (``experiment()`` is then refused)."""
    return _inside_job


def _redirect(taskdir: Path) -> None:
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(taskdir / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_PERIOD):
        try:
            path.touch()
        except OSError:
            pass


def _workspace_of(taskdir: Path) -> Path:
    return taskdir.parent.parent.parent  # WORKSPACE/jobs/<name>/<id>


def run_job(taskdir: str | os.PathLike[str], environ: dict[str, str] | None = None,
            tags: dict[str, Any] | None = None) -> int:
    """Run the job of ``taskdir`` in this process; returns the exit code (see module doc).

    Never raises for a failure of the task itself: the failure is recorded.
    """
    global _inside_job
    _inside_job = True
    from . import claim, objects
    from .atomic import write_atomic
    from .config import Task, class_spec
    from .locks import LockTimeout
    from .serialize import load
    from .workspace import Workspace, set_active_workspace

    directory = Path(taskdir)
    workspace = Workspace.at(_workspace_of(directory))
    identifier = directory.name
    try:
        lock = claim.start_run(workspace, identifier)
    except LockTimeout:
        return EXIT_WAITED
    stop = threading.Event()
    try:
        if objects.is_done(directory):
            return EXIT_OK
        previous = claim.launch_record()
        recorded = _read_json(directory / ".xpm" / "launch.json")
        write_atomic(directory / ".xpm" / "launch.json",
                     json.dumps({**recorded, **previous}).encode(), durable=False)
        threading.Thread(target=_heartbeat, args=(directory / ".xpm" / "heartbeat", stop),
                         daemon=True).start()
        started = time.time()
        claim.write_state(directory, "running", started=started, pid=os.getpid())
        _redirect(directory)
        os.chdir(directory)
        if environ:
            os.environ.update(environ)
        set_active_workspace(workspace)
        try:
            task = load(directory)
            if not isinstance(task, Task):
                raise TypeError(f"{directory}/params.json does not describe a Task")
            objects.bind(task, workspace)
            task.__dict__["_xpm_run_tags"] = dict(tags if tags is not None
                                                  else recorded.get("tags", {}))
            task.execute()
            name = class_spec(type(task)).identity_name
            exclude = tuple(getattr(type(task), "__xpm_exclude__", ()))
            sys.stdout.flush()
            sys.stderr.flush()
            objects.finish(directory, identifier, "task", name, exclude,
                           objects.task_extra(task))
        except BaseException as exc:
            traceback.print_exc()
            sys.stderr.flush()
            code = 130 if isinstance(exc, KeyboardInterrupt) else EXIT_FAILED
            claim.write_state(directory, "failed", exit_code=code, started=started,
                              ended=time.time(), reason=f"{type(exc).__name__}: {exc}"[:500])
            return code
        claim.write_state(directory, "done", exit_code=0, started=started, ended=time.time())
        return EXIT_OK
    finally:
        stop.set()
        lock.close()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: list[str] | None = None) -> int:
    """``python -m xpmstore.runner TASKDIR [ENVIRON_JSON]``: run one job in a fresh process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m xpmstore.runner TASKDIR [ENVIRON_JSON]", file=sys.stderr)
        return 2
    environ = json.loads(args[1]) if len(args) == 2 else None
    return run_job(args[0], environ)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: the flag that refuses an
    # experiment inside a job must be set on ``xpmstore.runner`` itself.
    from xpmstore import runner as _runner

    sys.exit(_runner.main())
