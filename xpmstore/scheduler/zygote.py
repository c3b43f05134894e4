"""The zygote: a helper process that imports the task modules once and forks a job per request.

Started with spawn (``python -m xpmstore.scheduler.zygote REQUESTS_FD MESSAGES_FD [EXITS_FD
[JOBS_FD]]``, never forked from the scheduler, which holds LMDB handles and threads) in its own
session.  It keeps one **spare** child forked ahead of need, already in its own session, waiting for
a job; it reads JSON lines on ``REQUESTS_FD`` and answers on ``MESSAGES_FD``: pipes of their own,
never stdin and stdout, which belong to the task modules it imports (their ``print`` at import, a
``logging`` handler, a module that closes stdout).  Its stdout is its stderr, the experiment's:
what those modules print goes there; its stdin is ``/dev/null``.

* ``{"op": "import", "path": [...], "modules": [...], "scripts": [...]}``: set ``sys.path`` and
  import modules (scripts of ``__main__`` classes by path), once each; the spare, which lacks
  them, is released and another forked;
* ``{"op": "run", "taskdir": ..., "environ": {...}, "tags": {...}, "token": ..., "report":
  bool}``: fork a child for the job (after an ``import``, so it has the new modules), which
  calls :func:`xpmstore.scheduler.runner.run_job`, then ``os._exit`` with its code;
* whenever a child takes a job: ``{"op": "started", "token", "pid"}``;
* whenever a child ends: ``{"op": "exited", "token", "pid", "code"}``.

``JOBS_FD``, when given, is a ``SOCK_SEQPACKET`` socket on which the scheduler sends the same
``run`` messages (one message, one job) straight to the spare, without waking the zygote: the
spare tells the zygote which job it took, and the zygote forks the next spare while the job
runs.  A spare older than an ``import`` may take such a job: the job then imports what it lacks
itself (slower, still right).

``EXITS_FD``, when given, is the write end of a pipe to the scheduler: a job asked to ``report``
writes its own ``{"op": "exited", ...}`` line there once its work is over (run lock released,
logs flushed), just before ``os._exit`` — the exit of a process forked from a large interpreter
(freeing its copied pages) and the zygote's wake-up are then off the scheduler's path.  The
zygote's own line still follows; the scheduler keeps the first one of each token.

On end of input (the scheduler ended or was killed) the zygote stops forking but lets running
jobs finish in their own sessions.  Single-threaded by design, so forking it is safe — unless a
task module it imports starts a thread: a job forked then may hang on a lock that thread held.
The zygote says so once, in one line naming the import (:func:`_fork`), instead of the
DeprecationWarning of Python 3.12+ that names only this module's line.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import sys
import threading
import time
import warnings
from typing import Any

from . import runner

__all__ = ["main", "preload"]


def _import(message: dict[str, Any], imported: set[str]) -> None:
    """Import the modules and scripts of ``message``, once each.  One that fails is left out
    (a failed script's half-run module too): each job then imports it again itself, and
    fails with its error (``experiment()`` entered inside a job's process, say), exactly as a
    job of a fresh process does.  The Python threads an import leaves running are noted."""
    for entry in message.get("path", []):
        if entry not in sys.path:
            sys.path.append(entry)
    for module in message.get("modules", []):
        if module not in imported:
            imported.add(module)
            before = set(threading.enumerate())
            try:
                importlib.import_module(module)
            except BaseException:  # SystemExit too: a module may call sys.exit()
                pass
            _note_threads(module, before)
    for script in message.get("scripts", []):
        if script not in imported:
            imported.add(script)
            from ..core.params import _main_module

            before = set(threading.enumerate())
            try:
                _main_module(script)  # a script that fails half-way is not kept
            except BaseException:
                pass
            _note_threads(script, before)
    _settle_standard_streams()


_thread_origins: list[str] = []
"""What started the Python threads of the zygote: ``"the import of MODULE (thread 'NAME')"``."""
_threads_reported = False


def _note_threads(origin: str, before: set[threading.Thread]) -> None:
    """Note the threads that the import of ``origin`` left running (alive and not in
    ``before``)."""
    for thread in threading.enumerate():
        if thread not in before:
            _thread_origins.append(f"the import of {origin} (thread {thread.name!r})")


_FORK_WARNING = r"This process \(pid=\d+\) is multi-threaded, use of fork\(\)"
"""The DeprecationWarning of Python 3.12+ when a multi-threaded process forks."""


def _has_threads() -> bool:
    """Whether this process has more than one thread, as the kernel counts them."""
    try:
        return len(os.listdir("/proc/self/task")) > 1
    except OSError:  # no /proc: nothing known, nothing said
        return False


def _fork() -> int:
    """``os.fork()``.  The first time the zygote forks with more than one thread (the kernel's
    count, Python's own; a library that stops its threads before a fork, as OpenBLAS does, is
    not counted), one line on stderr names what started them and what to do, in place of
    Python's DeprecationWarning, which names only this line."""
    global _threads_reported
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _FORK_WARNING, DeprecationWarning)
        pid = os.fork()
    if pid and not _threads_reported and _has_threads():
        _threads_reported = True
        origin = ", ".join(_thread_origins) or "a library the task modules loaded"
        print(f"xpmstore: warning: the zygote, the process that forks the local jobs, has"
              f" threads, started by {origin}: a job forked from it may hang on a lock one of"
              f" them held; start threads in execute(), or run these jobs in new processes"
              f" (LocalLauncher(fresh_process=True), or fresh_process = True on the task class)",
              file=sys.stderr, flush=True)
    return pid


def _settle_standard_streams() -> None:
    """After imports of user code: file descriptors 0, 1 and 2 open (a module that closed
    stdout would let the next pipe take descriptor 1, and a stray ``print`` land in it), and
    nothing left in the buffers of stdout and stderr."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = _devnull()
            try:
                os.dup2(2 if fd == 1 else null, fd)
            except OSError:  # stderr closed too
                os.dup2(null, fd)
            os.close(null)
    runner.flush_standard_streams()


def _devnull() -> int:
    """A new descriptor of /dev/null (read and write)."""
    return os.open(os.devnull, os.O_RDWR)


_close_in_child: list[int] = []
_exits_fd: int | None = None  # the pipe where jobs report their own exit (see the module doc)
_jobs_fd: int | None = None  # the socket where the scheduler sends jobs to the spare
_taken_fd: int | None = None  # the pipe where a spare tells the zygote which job it took


class _Child:
    """A forked child that makes its own session, then waits for its job: on its pipe from the
    zygote (a line: the job, or empty to exit unused; end of file: the zygote is gone) or, for
    the **spare** (``spare=True``), on the scheduler's socket.  Forking costs a few
    milliseconds here; the spare is forked while the previous job runs, off the next job's
    path."""

    def __init__(self, spare: bool) -> None:
        runner.flush_standard_streams()  # what user code left there: a fork would copy it
        read_fd, write_fd = os.pipe()
        pid = _fork()
        if pid == 0:
            os.close(write_fd)
            _child(read_fd, spare)
        os.close(read_fd)
        self.pid = pid
        self.write_fd = write_fd

    def hand(self, message: dict[str, Any]) -> None:
        """Give the child its job (not a spare: nothing else reaches it).  A child that died
        meanwhile is reported when reaped."""
        try:
            os.write(self.write_fd, (json.dumps(message) + "\n").encode())
        except OSError:
            pass
        finally:
            os.close(self.write_fd)

    def release(self) -> None:
        """Let the child exit unused (it lacks modules imported since, or the zygote ends)."""
        try:
            os.write(self.write_fd, b"\n")
        except OSError:
            pass
        finally:
            os.close(self.write_fd)

    def forget(self) -> None:
        """The spare took a job of the socket (or died): close its pipe."""
        os.close(self.write_fd)


def _wait_for_job(read_fd: int, spare: bool) -> dict[str, Any] | None:
    """In a child: the job it takes (from the zygote's pipe, or the scheduler's socket for the
    spare), or None when it is released (or the zygote is gone)."""
    import select

    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    if spare and _jobs_fd is not None:
        poller.register(_jobs_fd, select.POLLIN)
    received = bytearray(1 << 16)  # made (and its pages touched) before the job comes
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if read_fd in ready:  # first: a release must win over a job that needs new modules
            data = b""
            while not data.endswith(b"\n"):
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                data += chunk
            return json.loads(data) if data.strip() else None
        if _jobs_fd in ready:
            try:
                size = os.readv(_jobs_fd, [received])  # one message (non-blocking socket)
            except BlockingIOError:
                continue  # another spare took it
            if not size:
                return None  # the scheduler closed its end
            message: dict[str, Any] = json.loads(received[:size])  # below 64 KiB (its rule)
            if _taken_fd is not None:  # the zygote forks the next spare, reports "started"
                line = json.dumps({"pid": os.getpid(), "token": message.get("token"),
                                   "taskdir": message.get("taskdir")})
                os.write(_taken_fd, (line + "\n").encode())
            return message


def _child(read_fd: int, spare: bool) -> None:
    """The body of a forked child: wait for its job, run it, report its end, exit with its
    code."""
    code = 1
    report: Any = None  # the job's token, when it reports its own end (see the module doc)
    try:
        os.setsid()
        for fd in _close_in_child:  # the zygote's pipes are not the job's business
            try:
                os.close(fd)
            except OSError:
                pass
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        from .runner import prepare, run_job, write_done_state

        prepare(heartbeat=False)  # what every job needs, made while it waits (the zygote
        # refreshes the heartbeat files of its jobs: no thread in them)
        message = _wait_for_job(read_fd, spare)
        for kept in (read_fd, _jobs_fd, _taken_fd):  # the job keeps only its exit pipe
            if kept is not None:
                os.close(kept)
        if message is None:
            code = 0  # released unused
        else:
            if message.get("report") and _exits_fd is not None:
                report = message.get("token")
            code = run_job(message["taskdir"], message.get("environ"), message.get("tags"),
                           heartbeat=False, done_later=report is not None)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            runner.flush_standard_streams()
        finally:
            if report is not None and code in (0, 75):  # done, or waited (another runs it);
                _report_exit(report, code)  # a failure is reported once its process is gone
            if report is not None:
                try:
                    write_done_state()  # after the report: off the scheduler's path
                except BaseException:
                    pass
            os._exit(code)


def _report_exit(token: Any, code: int) -> None:
    """Tell the scheduler that this job is over (one write below PIPE_BUF on a non-blocking
    pipe: whole or not at all; when it fails, the zygote's own line reports the job)."""
    assert _exits_fd is not None
    try:
        line = json.dumps({"op": "exited", "token": token, "pid": os.getpid(), "code": code,
                           "own": True})
        os.write(_exits_fd, (line + "\n").encode())
    except BaseException:
        pass


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _reap(out: Any, children: dict[int, Any]) -> tuple[dict[int, int], bool]:
    """Report the jobs that ended.  Returns the other children that ended (pid -> exit code:
    spares, or a job whose "taken" line is not read yet), and whether no child is left."""
    others: dict[int, int] = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return others, True
        if pid == 0:
            return others, False
        code = os.waitstatus_to_exitcode(status)
        if pid not in children:
            others[pid] = code
            continue
        token = children.pop(pid)
        _send(out, {"op": "exited", "token": token, "pid": pid, "code": code})


def _beat(beats: dict[int, tuple[str, float]], children: dict[int, Any]) -> None:
    """Refresh the heartbeat files of the running jobs that are due (schedulers on other hosts
    read them; see xpmstore.store.taskstate); forget the jobs that ended."""
    from ..store.taskstate import touch_heartbeat
    from .runner import HEARTBEAT_PERIOD

    now = time.monotonic()
    for pid, (path, due) in list(beats.items()):
        if pid not in children:
            del beats[pid]
        elif now >= due:
            beats[pid] = (path, now + HEARTBEAT_PERIOD)
            touch_heartbeat(path)


def _lines(fd: int, buffer: bytearray) -> list[dict[str, Any]]:
    """The complete JSON lines readable now on the non-blocking ``fd``."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        buffer += chunk
    *lines, rest = bytes(buffer).split(b"\n")
    buffer[:] = rest
    return [json.loads(line) for line in lines if line]


def preload() -> None:
    """Import, once, every module a job's process needs (what :func:`runner.run_task` imports):
    a module imported after the fork is imported again by every job.  Nothing more: each
    module makes the zygote larger, and forking it and ending each job cost more (twice as
    much with filelock's imports)."""
    import xpmstore  # noqa: F401
    from xpmstore.core import params  # noqa: F401
    from xpmstore.scheduler import claim, runner  # noqa: F401
    from xpmstore.store import leases, manifest, taskdirs, taskprogress  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Serve requests until REQUESTS_FD closes (see module doc)."""
    global _exits_fd, _jobs_fd, _taken_fd
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(
            "usage: python -m xpmstore.scheduler.zygote REQUESTS_FD MESSAGES_FD [EXITS_FD"
            " [JOBS_FD]]",
            file=sys.stderr,
        )
        return 2
    requests_fd, messages_fd = int(args[0]), int(args[1])
    for fd in (requests_fd, messages_fd):
        os.set_inheritable(fd, False)
    if len(args) > 2:
        _exits_fd = int(args[2])
        os.set_inheritable(_exits_fd, False)  # the jobs' own programs never see it
        os.set_blocking(_exits_fd, False)  # a full pipe drops a report, never blocks a job
    if len(args) > 3:
        _jobs_fd = int(args[3])
        os.set_inheritable(_jobs_fd, False)
        os.set_blocking(_jobs_fd, False)  # several spares may wake for one job: one gets it
    # The protocol has its own pipes: stdout is stderr (what modules print at import reaches
    # the experiment's stderr), stdin is /dev/null.
    null = _devnull()
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler handles interrupts
    preload()
    from xpmstore.core.digests import keep_pool_out
    from xpmstore.store.taskstate import boot_id, heartbeat_path, mark_job_process

    keep_pool_out()  # a task module that hashes a large input at import starts no thread here

    boot_id()  # read once here, inherited by every job

    mark_job_process()  # a user script imported here must not start an experiment

    out = os.fdopen(messages_fd, "w")
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    taken_read, _taken_fd = os.pipe()
    os.set_blocking(taken_read, False)
    _close_in_child.extend([out.fileno(), requests_fd, wake_read, wake_write, taken_read])
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(requests_fd, selectors.EVENT_READ, "requests")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    selector.register(taken_read, selectors.EVENT_READ, "taken")
    children: dict[int, Any] = {}  # pid -> token of a child that took a job
    imported: set[str] = set()
    spare: _Child | None = None
    taken = bytearray()
    buffer = b""
    open_input = True

    released: set[int] = set()  # spares let go unused
    ended: dict[int, int] = {}  # children just reaped that we did not know took a job
    beats: dict[int, tuple[str, float]] = {}  # job pid -> (its heartbeat file, next beat)

    def running(pid: int, token: Any, taskdir: Any) -> None:
        children[pid] = token
        if isinstance(taskdir, str):
            beats[pid] = (heartbeat_path(taskdir),
                          time.monotonic() + runner.HEARTBEAT_PERIOD)

    def took(message: dict[str, Any]) -> None:
        nonlocal spare
        pid = message["pid"]
        released.discard(pid)  # released, it took a job first: a job like any other
        _send(out, {"op": "started", "token": message.get("token"), "pid": pid})
        if spare is not None and spare.pid == pid:
            spare.forget()
            spare = None
        if pid in ended:  # it ran and ended between two reads of the "taken" pipe
            _send(out, {"op": "exited", "token": message.get("token"), "pid": pid,
                        "code": ended.pop(pid)})
        else:
            running(pid, message.get("token"), message.get("taskdir"))

    def release() -> None:
        nonlocal spare
        if spare is not None:
            released.add(spare.pid)
            spare.release()
            spare = None

    while open_input or children:
        if spare is None and open_input and _jobs_fd is not None:
            spare = _Child(spare=True)  # the next job's process, forked while this one runs
        for key, _ in selector.select(timeout=1.0):
            if key.data == "wake":
                os.read(wake_read, 4096)
                continue
            if key.data == "taken":
                for message in _lines(taken_read, taken):
                    took(message)
                continue
            chunk = os.read(requests_fd, 65536)
            if not chunk:
                open_input = False
                selector.unregister(requests_fd)
                release()
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                if message["op"] == "import":
                    release()  # the spare was forked without these modules
                    _import(message, imported)
                elif message["op"] == "run":
                    child = _Child(spare=False)
                    child.hand(message)
                    running(child.pid, message.get("token"), message.get("taskdir"))
                    _send(out, {"op": "started", "token": message.get("token"),
                                "pid": child.pid})
        try:
            for message in _lines(taken_read, taken):
                took(message)
            others, none_left = _reap(out, children)
            for pid, code in others.items():
                if pid in released:
                    released.discard(pid)
                    continue
                if spare is not None and pid == spare.pid:  # it died idle, or took a job
                    spare.forget()                          # and ended before we read so
                    spare = None
                ended[pid] = code
            for message in _lines(taken_read, taken):  # a child that took a job and ended
                took(message)                          # wrote it before it ended: here now
            ended.clear()  # the others never took a job (their pids may be reused)
            if none_left and children:  # never happens: do not wait for them forever
                for pid in list(children):
                    _send(out, {"op": "exited", "token": children.pop(pid), "pid": pid,
                                "code": 1})
            _beat(beats, children)
        except BrokenPipeError:
            open_input = False
            children.clear()  # nobody listens: jobs finish on their own
    return 0


if __name__ == "__main__":
    sys.exit(main())
