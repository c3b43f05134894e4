"""``LocalLauncher``: jobs as processes of this machine, forked from a zygote.

The zygote (:mod:`xpmstore.zygote`) is spawned once per launcher, imports xpmstore and the task
modules once, and forks one process per job, so a small task costs a fork rather than a new
interpreter.  Jobs whose environment changes start-up variables (``LD_*``, ``PYTHON*``) or that
ask ``fresh_process=True`` run as ``python -m xpmstore.runner TASKDIR`` instead.  Each job runs
in its own session (process group).  ``workers`` bounds how many run at once (default: the
number of cores); ``gpus`` hands each job one of them as ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import ExitCallback, Launcher

__all__ = ["LocalLauncher"]

_STARTUP_VARIABLES = ("LD_", "PYTHON")


def _needs_fresh(environ: dict[str, str]) -> bool:
    return any(name.startswith(_STARTUP_VARIABLES) for name in environ)


class _Zygote:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xpmstore.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, start_new_session=True, env=env,
        )
        self.lock = threading.Lock()
        self.started: dict[str, threading.Event] = {}
        self.pids: dict[str, int] = {}
        self.exits: dict[int, ExitCallback] = {}
        self.owner: dict[int, str] = {}
        self.pending_exits: dict[int, int] = {}
        self.imported: set[str] = set()
        self.reader = threading.Thread(target=self._read, daemon=True, name="xpmstore-zygote")
        self.reader.start()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            if message["op"] == "started":
                with self.lock:
                    self.pids[message["token"]] = message["pid"]
                    self.started[message["token"]].set()
            elif message["op"] == "exited":
                with self.lock:
                    callback = self.exits.pop(message["pid"], None)
                    identifier = self.owner.pop(message["pid"], "")
                    if callback is None:
                        self.pending_exits[message["pid"]] = message["code"]
                if callback is not None:
                    callback(identifier, message["code"])

    def run(self, identifier: str, taskdir: Path, environ: dict[str, str],
            tags: dict[str, Any], modules: list[str], scripts: list[str],
            on_exit: ExitCallback) -> int:
        wanted = [m for m in [*modules, *scripts] if m not in self.imported]
        if wanted:
            self.imported.update(wanted)
            self._send({"op": "import", "path": [p for p in sys.path if p],
                        "modules": [m for m in modules if m in wanted],
                        "scripts": [s for s in scripts if s in wanted]})
        token = identifier
        event = threading.Event()
        with self.lock:
            self.started[token] = event
        self._send({"op": "run", "taskdir": str(taskdir), "environ": environ, "tags": tags,
                    "token": token})
        event.wait()
        with self.lock:
            pid = self.pids.pop(token)
            del self.started[token]
            code = self.pending_exits.pop(pid, None)
            if code is None:
                self.exits[pid] = on_exit
                self.owner[pid] = identifier
        if code is not None:
            on_exit(identifier, code)
        return pid

    def close(self) -> None:
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass


class LocalLauncher(Launcher):
    """Run jobs on this machine, at most ``workers`` at once (default: the number of cores).

    ``gpus``: device ids; each job gets one as ``CUDA_VISIBLE_DEVICES`` and waits for a free one.
    ``fresh_process=True`` runs every job in a new interpreter instead of forking the zygote.
    """

    name = "local"

    def __init__(self, workers: int | None = None, gpus: Sequence[int | str] | None = None,
                 fresh_process: bool = False):
        if workers is not None and workers < 1:
            raise ValueError(f"LocalLauncher(workers={workers}): expected at least 1")
        self.workers = workers or os.cpu_count() or 1
        self.gpus = [str(g) for g in gpus] if gpus is not None else None
        self.fresh_process = fresh_process
        self._running: set[str] = set()
        self._gpu_of: dict[str, str] = {}
        self._lock = threading.Lock()
        self._zygote: _Zygote | None = None

    def describe(self) -> str:
        """One line for logs and the launch record."""
        gpus = f", gpus={self.gpus}" if self.gpus is not None else ""
        return f"local(workers={self.workers}{gpus})"

    def capacity(self, identifier: str) -> bool:
        """Whether a worker (and a GPU, when asked) is free."""
        with self._lock:
            if len(self._running) >= self.workers:
                return False
            return self.gpus is None or len(self._gpu_of) < len(self.gpus)

    def launch(self, identifier: str, taskdir: Path, environ: dict[str, str],
               tags: dict[str, Any], modules: list[str], scripts: list[str],
               fresh_process: bool, on_exit: ExitCallback) -> int:
        """Start the job (see the module doc); returns its pid."""
        environ = dict(environ)
        if self.gpus is not None:
            with self._lock:
                free = [g for g in self.gpus if g not in self._gpu_of.values()]
                self._gpu_of[identifier] = free[0]
            environ["CUDA_VISIBLE_DEVICES"] = free[0]

        def finished(ident: str, code: int) -> None:
            with self._lock:
                self._running.discard(identifier)
                self._gpu_of.pop(identifier, None)
            on_exit(identifier, code)

        with self._lock:
            self._running.add(identifier)  # the worker is taken until the job exits
        if fresh_process or self.fresh_process or _needs_fresh(environ):
            return self._spawn(identifier, taskdir, environ, finished)
        if self._zygote is None:
            self._zygote = _Zygote()
        return self._zygote.run(identifier, taskdir, environ, tags, modules, scripts, finished)

    def _spawn(self, identifier: str, taskdir: Path, environ: dict[str, str],
               finished: ExitCallback) -> int:
        env = {**os.environ, **environ}
        env["PYTHONPATH"] = os.pathsep.join([*(p for p in sys.path if p),
                                             env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        process = subprocess.Popen(
            [sys.executable, "-m", "xpmstore.runner", str(taskdir), json.dumps(environ)],
            start_new_session=True, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def wait() -> None:
            finished(identifier, process.wait())

        threading.Thread(target=wait, daemon=True).start()
        return process.pid

    def kill(self, pid: int, force: bool = False) -> None:
        """Signal the job's process group (SIGTERM, or SIGKILL with ``force``)."""
        try:
            os.killpg(pid, signal.SIGKILL if force else signal.SIGTERM)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Stop the zygote from taking work; running jobs finish in their own sessions."""
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
