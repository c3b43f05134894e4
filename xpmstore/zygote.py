"""The zygote: a helper process that imports the task modules once and forks a job per request.

Started with spawn (``python -m xpmstore.zygote``, never forked from the scheduler, which holds
LMDB handles and threads) in its own session.  It reads JSON lines on stdin and answers on
stdout:

* ``{"op": "import", "path": [...], "modules": [...], "scripts": [...]}``: set ``sys.path`` and
  import modules (scripts of ``__main__`` classes by path), once each;
* ``{"op": "run", "taskdir": ..., "environ": {...}, "tags": {...}, "token": ...}``: fork; the
  child calls ``setsid()`` and :func:`xpmstore.runner.run_job`, then ``os._exit`` with its code;
  the zygote answers ``{"op": "started", "token", "pid"}``;
* whenever a child ends: ``{"op": "exited", "pid", "code"}``.

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


def _fork_job(message: dict[str, Any]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
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
            from .runner import run_job

            code = run_job(message["taskdir"], message.get("environ"), message.get("tags"))
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    return pid


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _reap(out: Any, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send(out, {"op": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def main() -> int:
    """Serve requests until stdin closes (see module doc)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler handles interrupts
    import filelock  # noqa: F401 - imported once, shared by every job (~30 ms each otherwise)

    import xpmstore  # noqa: F401
    from xpmstore import claim, manifest, objects, runner, serialize  # noqa: F401

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
    children: set[int] = set()
    imported: set[str] = set()
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
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                if message["op"] == "import":
                    _import(message, imported)
                elif message["op"] == "run":
                    pid = _fork_job(message)
                    children.add(pid)
                    _send(out, {"op": "started", "token": message.get("token"), "pid": pid})
        try:
            _reap(out, children)
        except BrokenPipeError:
            open_input = False
            children.clear()  # nobody listens: jobs finish on their own
    return 0


if __name__ == "__main__":
    sys.exit(main())
