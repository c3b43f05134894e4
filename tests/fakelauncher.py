"""A launcher that runs nothing: the engine's tests drive it by hand, in this process.

``FakeLauncher`` records every launch request; a job ends only when the test says so
(:meth:`FakeLauncher.complete`), which publishes the task's done manifest as a job does when it
succeeds (its task is never executed).  ``chains=True`` makes it a chaining launcher (as Slurm
is), whose references are ``fake-<identifier>``.
"""

from __future__ import annotations

import signal
import threading

from xpmstore.core.config import Task
from xpmstore.core.params import load
from xpmstore.scheduler.launchers.base import ExitCallback, Launcher, LaunchRequest
from xpmstore.store import taskdirs

from .storehelpers import wait_for


class FakeLauncher(Launcher):
    """At most ``workers`` jobs at once (None: no bound); nothing runs until :meth:`complete`."""

    name = "fake"

    def __init__(self, workers: int | None = 1, chains: bool = False,
                 log: list[str] | None = None):
        self.workers = workers
        self.chains = chains
        self.log = log if log is not None else []  # "launch <identifier>", in order
        self.requests: dict[str, LaunchRequest] = {}  # the last request of each job
        self.launched: list[str] = []  # every launch, in order
        self.running: list[str] = []
        self.killed: list[tuple[str, bool]] = []
        self.most_running = 0  # the most jobs running at once
        self.closed = False
        self._exits: dict[str, ExitCallback] = {}
        self._lock = threading.Lock()

    def capacity(self) -> int | None:
        """``workers`` less the jobs running."""
        with self._lock:
            return None if self.workers is None else self.workers - len(self.running)

    def launch(self, request: LaunchRequest) -> int:
        """Record ``request``; the job runs until :meth:`complete`."""
        with self._lock:
            assert request.identifier not in self.running, "launched twice while running"
            self.requests[request.identifier] = request
            self.launched.append(request.identifier)
            self.log.append(f"launch {request.identifier}")
            self.running.append(request.identifier)
            self.most_running = max(self.most_running, len(self.running))
            self._exits[request.identifier] = request.on_exit
        return 0

    def complete(self, identifier: str, code: int = 0) -> None:
        """End the job ``identifier`` with exit ``code``; on 0, its done manifest first."""
        if code == 0:  # what the job's process publishes when its task succeeds
            taskdir = self.requests[identifier].taskdir
            task = load(taskdir)
            assert isinstance(task, Task)
            taskdirs.finish(taskdir, identifier, "task", taskdir.parent.name,
                            extra=taskdirs.task_extra(task))
        with self._lock:
            self.running.remove(identifier)
            on_exit = self._exits.pop(identifier)
        on_exit(identifier, code)

    def kill(self, identifier: str, force: bool = False) -> None:
        """Record the kill; the job ends as if its process died of the signal."""
        with self._lock:
            self.killed.append((identifier, force))
            if identifier not in self.running:
                return
            self.running.remove(identifier)
            on_exit = self._exits.pop(identifier)
        if not self.chains:  # a chaining launcher's killed job is not reported (Slurm's)
            on_exit(identifier, -(signal.SIGKILL if force else signal.SIGTERM))

    def job_reference(self, identifier: str) -> str | None:
        """``fake-<identifier>`` while the job runs, when chaining."""
        with self._lock:
            return f"fake-{identifier}" if self.chains and identifier in self.running else None

    def close(self) -> None:
        """Note it (running jobs are left as they are)."""
        self.closed = True

    def wait_running(self, count: int) -> list[str]:
        """Wait until ``count`` jobs run; returns them, oldest launch first."""
        wait_for(lambda: len(self.running) == count, f"{count} running job(s)")
        with self._lock:
            return list(self.running)
