"""The zygote: a helper process that imports the task modules once and forks a job per request.

Started with spawn (``python -m xpmstore.zygote [EXITS_FD]``, never forked from the scheduler,
which holds LMDB handles and threads) in its own session.  It reads JSON lines on stdin and
answers on stdout:

* ``{"op": "import", "path": [...], "modules": [...], "scripts": [...]}``: set ``sys.path`` and
  import modules (scripts of ``__main__`` classes by path), once each;
* ``{"op": "run", "taskdir": ..., "environ": {...}, "tags": {...}, "token": ..., "report":
  bool}``: hand the job to the spare child (forked ahead, already in its own session; forked now
  if there is none), which calls :func:`xpmstore.runner.run_job`, then ``os._exit`` with its
  code; the zygote answers ``{"op": "started", "token", "pid"}`` and forks the next spare while
  the job runs (an ``import`` releases the spare, which lacks the new modules);
* whenever a child ends: ``{"op": "exited", "token", "pid", "code"}``.

``EXITS_FD``, when given, is the write end of a pipe to the scheduler: a job asked to ``report``
writes its own ``{"op": "exited", ...}`` line there once its work is over (run lock released,
logs flushed), just before ``os._exit`` — the exit of a process forked from a large interpreter
(freeing its copied pages) and the zygote's wake-up are then off the scheduler's path.  The
zygote's own line still follows; the scheduler keeps the first one of each token.

On end of input (the scheduler ended or was killed) the zygote stops forking but lets running
jobs finish in their own sessions.  Single-threaded by design, so forking it is safe.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import sys
from typing import Any

__all__ = ["main"]


def _import(message: dict[str, Any], imported: set[str]) -> None:
    for entry in message.get("path", []):
        if entry not in sys.path:
            sys.path.append(entry)
    for module in message.get("modules", []):
        if module not in imported:
            imported.add(module)
            try:
                importlib.import_module(module)
            except Exception:
                pass
    for script in message.get("scripts", []):
        if script not in imported:
            imported.add(script)
            from .serialize import _main_module

            try:
                _main_module(script)
            except Exception:
                pass


_close_in_child: list[int] = []
_exits_fd: int | None = None  # the pipe where jobs report their own exit (see the module doc)


class _Spare:
    """A child forked ahead of need: it makes its own session, then waits for one line on its
    pipe — a job to run, or an empty line (or end of file) to exit unused.  Forking costs a few
    milliseconds here; done while the previous job runs, it is off the next job's path."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(write_fd)
            _child(read_fd)
        os.close(read_fd)
        self.pid = pid
        self.write_fd = write_fd

    def hand(self, message: dict[str, Any]) -> int:
        """Give the spare its job; returns its pid."""
        try:
            os.write(self.write_fd, (json.dumps(message) + "\n").encode())
        finally:
            os.close(self.write_fd)
        return self.pid

    def release(self) -> None:
        """Let the spare exit unused (it lacks modules imported since, or the zygote ends)."""
        try:
            os.write(self.write_fd, b"\n")
        except OSError:
            pass
        finally:
            os.close(self.write_fd)


def _child(read_fd: int) -> None:
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
        from .runner import prepare, run_job

        prepare()  # what every job needs (its heartbeat thread...), made while it waits
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data += chunk
        os.close(read_fd)
        if not data.strip():
            code = 0  # released unused
        else:
            message = json.loads(data)
            if message.get("report") and _exits_fd is not None:
                report = message.get("token")
            code = run_job(message["taskdir"], message.get("environ"), message.get("tags"))
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            if report is not None:
                _report_exit(report, code)
            os._exit(code)


def _report_exit(token: Any, code: int) -> None:
    """Tell the scheduler that this job is over (one write below PIPE_BUF on a non-blocking
    pipe: whole or not at all; when it fails, the zygote's own line reports the job)."""
    assert _exits_fd is not None
    try:
        line = json.dumps({"op": "exited", "token": token, "pid": os.getpid(), "code": code})
        os.write(_exits_fd, (line + "\n").encode())
    except BaseException:
        pass


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _reap(out: Any, children: dict[int, Any]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid not in children:
            continue  # a spare released unused
        token = children.pop(pid)
        _send(out, {"op": "exited", "token": token, "pid": pid,
                    "code": os.waitstatus_to_exitcode(status)})


def main(argv: list[str] | None = None) -> int:
    """Serve requests until stdin closes (see module doc)."""
    global _exits_fd
    args = sys.argv[1:] if argv is None else argv
    if args:
        _exits_fd = int(args[0])
        os.set_inheritable(_exits_fd, False)  # the jobs' own programs never see it
        os.set_blocking(_exits_fd, False)  # a full pipe drops a report, never blocks a job
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler handles interrupts
    # What jobs need, imported once.  Nothing more: each module makes the zygote larger, and
    # forking it and ending each job cost more (twice as much with filelock's imports).
    import xpmstore  # noqa: F401
    from xpmstore import claim, manifest, objects, runner, serialize  # noqa: F401
    from xpmstore.liveness import boot_id

    boot_id()  # read once here, inherited by every job

    runner._inside_job = True  # a user script imported here must not start an experiment

    out = os.fdopen(os.dup(1), "w")
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    _close_in_child.extend([out.fileno(), wake_read, wake_write])
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    children: dict[int, Any] = {}  # pid -> token
    imported: set[str] = set()
    spare: _Spare | None = None
    buffer = b""
    open_input = True
    while open_input or children:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "wake":
                os.read(wake_read, 4096)
                continue
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                open_input = False
                selector.unregister(sys.stdin.fileno())
                if spare is not None:
                    spare.release()
                    spare = None
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                if message["op"] == "import":
                    if spare is not None:  # it was forked without these modules
                        spare.release()
                        spare = None
                    _import(message, imported)
                elif message["op"] == "run":
                    pid = (spare or _Spare()).hand(message)
                    spare = None
                    children[pid] = message.get("token")
                    _send(out, {"op": "started", "token": message.get("token"), "pid": pid})
                    spare = _Spare()  # the next job's process, forked while this one runs
        try:
            _reap(out, children)
        except BrokenPipeError:
            open_input = False
            children.clear()  # nobody listens: jobs finish on their own
    return 0


if __name__ == "__main__":
    sys.exit(main())
