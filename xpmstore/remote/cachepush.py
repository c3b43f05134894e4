"""``@cache`` entries pushed in the background with ``push = "auto"`` (docs/remote.md).

When a process creates an entry (:mod:`xpmstore.scheduler.cache`, on a miss) and its workspace's
remote says ``push = "auto"``, :func:`entry_created` notes the entry in the workspace's **outbox**,
``.xpmstore/outbox/<name>.<identifier>`` (one small file: the only cost on the caller's path).
Then:

* in an experiment's process, a plain script or any process that is not a job, the push is
  handed to a background thread of the process (the remote is opened there: not even boto3 is
  imported on the caller's path); the process waits for its pending pushes when it exits (an
  exit hook), and an experiment at its end
  (:meth:`xpmstore.remote.sync.RemoteSync.close` calls :func:`wait`);
* in a job's process, the note is all: the experiment pushes the entries of the outbox
  (:func:`drain`) on its own push threads, each time a job finishes and at its end.  The job
  neither waits for a push when it ends (which would delay its dependents) nor loses one: a job
  forked by the zygote leaves through ``os._exit``, which runs no exit hook.

A push that succeeds removes the note (so does one that finds the entry gone or damaged: one
warning line).  An entry computed because a pull of this process refused the remote's copy as
damaged is noted ``"verify": true``: its push verifies and repairs the remote's copy
(:func:`xpmstore.remote.upload.push_auto`) instead of finding it present.  Notes left behind —
a killed script, an unreachable remote (then nothing is asked of it: :mod:`.reach`), a job
whose experiment was killed — are pushed by the next experiment with ``push = "auto"``, or by
``xpmstore push --all``.  Thread-safe.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..core.identifier import is_full_identifier
from ..errors import CorruptObjectError, NotFound, RemoteUnavailableError
from ..store.taskstate import boot_id, inside_job, process_start
from ..store.workspace import Workspace
from ..system import jsonio
from . import reach
from .layout import Remote, remote_settings

__all__ = ["drain", "entry_created", "outbox", "wait"]

_THREADS = 2
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pending: dict[str, Future[None]] = {}  # identifier → its push in this process
_hooked = False


def outbox(workspace: Workspace) -> Path:
    """The folder of the entries created but not yet pushed."""
    return workspace.private / "outbox"


def _owner() -> dict[str, object]:
    if inside_job():
        return {"job": True}  # pushed by the experiment (see the module doc)
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot_id": boot_id(), "pid": pid,
            "pid_start": process_start(pid)}


def _busy_elsewhere(note: Path) -> bool:
    """Whether the note was written by another live process of this host that pushes it."""
    try:
        owner = jsonio.read(note)
    except (OSError, ValueError):
        return False
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname() \
            or owner.get("boot_id") != boot_id():
        return False
    pid = owner.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and \
        process_start(pid) == owner.get("pid_start")


def entry_created(workspace: Workspace, directory: Path) -> None:
    """Push the ``@cache`` entry just created at ``directory`` in the background when the
    workspace's remote says ``push = "auto"`` (see the module doc).  Never raises for the
    remote's sake."""
    try:
        settings = remote_settings(workspace)
    except Exception:  # wrong settings: the entry's pull already warned
        return
    if settings is None or settings.push != "auto":
        return
    name, identifier = directory.parent.name, directory.name
    note = outbox(workspace) / f"{name}.{identifier}"
    owner = _owner()
    if reach.is_damaged(identifier):  # (the pull that refused it ran in this process)
        owner["verify"] = True
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(json.dumps(owner))
    except OSError as exc:
        reach.warn(f"cannot note {identifier[:12]} for pushing ({exc}); push it with"
                   " `xpmstore push`")
    if "job" not in owner and not reach.down_from_environment():
        _submit(workspace, None, identifier, directory, note)


def drain(workspace: Workspace, remote: Remote) -> int:
    """Push (in the background) every entry of the outbox not being pushed by another live
    process of this host; returns how many were handed over.  Nothing when ``remote`` is down."""
    if reach.is_down(remote):
        return 0
    try:
        names = os.listdir(outbox(workspace))
    except FileNotFoundError:
        return 0
    handed = 0
    for filename in names:
        name, _, identifier = filename.rpartition(".")
        note = outbox(workspace) / filename
        if not is_full_identifier(identifier) or not name or _busy_elsewhere(note):
            continue
        if _submit(workspace, remote, identifier, workspace.cache / name / identifier, note):
            handed += 1
    return handed


def _at_exit(call: Callable[[], None]) -> None:
    """Run ``call`` when the interpreter exits, before thread pools refuse new work (a push
    uploads on a pool of its own): where :mod:`concurrent.futures` hooks its own shutdown."""
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # not CPython 3.9+: the plain exit hook
        atexit.register(call)
    else:
        register(call)  # run in reverse order of registration: before concurrent.futures'


def _submit(workspace: Workspace, remote: Remote | None, identifier: str, directory: Path,
            note: Path) -> bool:
    global _pool, _pool_pid, _hooked
    with _lock:
        if _pool is None or _pool_pid != os.getpid():  # none yet, or inherited by a fork
            _pool, _pool_pid = ThreadPoolExecutor(_THREADS, "xpmstore-cache-push"), os.getpid()
            _pending.clear()
        if identifier in _pending and not _pending[identifier].done():
            return False
        if len(_pending) > 64:
            for done in [i for i, f in _pending.items() if f.done()]:
                del _pending[done]
        try:
            if not _hooked:
                _at_exit(wait)
                _hooked = True
            _pending[identifier] = _pool.submit(_push, workspace, remote, directory, note)
        except RuntimeError:  # the interpreter is shutting down: left in the outbox
            return False
    return True


def _wants_verify(note: Path) -> bool:
    """Whether the note asks for a verifying push (see the module doc)."""
    try:
        owner = jsonio.read(note)
    except (OSError, ValueError):
        return False
    return isinstance(owner, dict) and owner.get("verify") is True


def _push(workspace: Workspace, remote: Remote | None, directory: Path, note: Path) -> None:
    from .upload import push_auto

    if remote is None:
        remote = reach.remote_for(workspace)
    if remote is None or remote.settings.push != "auto" or reach.is_down(remote):
        return  # left in the outbox
    try:
        push_auto(remote, directory, verify=_wants_verify(note))
    except NotFound:
        pass  # removed (gc, rm) since: nothing to push
    except CorruptObjectError as exc:
        reach.warn(f"{exc}")
    except RemoteUnavailableError as exc:
        if reach.mark_down(remote):
            reach.warn(f"remote {reach.down_reason(exc)}, @cache entries are not pushed:"
                       f" {exc}")
        return
    except Exception as exc:
        reach.warn(f"push of @cache entry {directory.name[:12]} failed ({exc}); it stays in"
                   f" {note.parent} for the next experiment, or `xpmstore push`")
        return
    try:
        note.unlink()
    except FileNotFoundError:
        pass


def wait() -> None:
    """Wait for this process's pending pushes of ``@cache`` entries."""
    while True:
        with _lock:
            if _pool_pid != os.getpid():
                return
            pending = [f for f in _pending.values() if not f.done()]
        if not pending:
            return
        for future in pending:
            future.exception()  # waits; _push reports its own failures
