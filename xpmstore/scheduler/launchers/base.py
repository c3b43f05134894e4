"""The interface between the scheduler and a launcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ExitCallback", "LaunchRequest", "Launcher"]

ExitCallback = Callable[[str, int], None]
"""``on_exit(identifier, exit_code)``, called from a launcher thread when a job is over: it
reported its own end (done, or waited), or its process ended."""


@dataclass(frozen=True)
class LaunchRequest:
    """One job to launch: its task directory (claimed and prepared), what its process needs,
    and whom to tell when it is over."""

    identifier: str
    taskdir: Path
    environ: dict[str, str]
    """Added on top of the inherited environment (from the job's SubmitHooks)."""
    tags: dict[str, Any]
    modules: list[str]
    """The modules that define the task's configs (imported once by a zygote)."""
    scripts: list[str]
    """The scripts (``__main__``) that define some of them, by path."""
    fresh_process: bool
    """Whether the task asks for a new interpreter (``fresh_process = True`` on its class)."""
    on_exit: ExitCallback
    """Called exactly once, from any thread, when the job is over (see :data:`ExitCallback`)."""
    after: tuple[str, ...] = ()
    """A chaining launcher's references of the dependencies still pending or running
    (:meth:`Launcher.job_reference`): the job starts after they succeed (Slurm's afterok)."""
    after_dirs: tuple[Path, ...] = ()
    """The task directories of ``after``, in the same order."""
    options: dict[str, Any] = field(default_factory=dict)
    """Per-job launcher options from the SubmitHooks (``job.launcher_options``)."""


class Launcher:
    """Starts job processes.  Subclasses implement :meth:`capacity`, :meth:`launch`,
    :meth:`kill` and :meth:`close`; the scheduler calls them from its own thread."""

    name = "launcher"
    chains = False
    """Whether :meth:`launch` honours a request's ``after`` (jobs submitted before their
    dependencies end: Slurm's ``afterok``) and its ``options``."""
    keeps_running = False
    """Whether jobs outlive the scheduler's interrupt (Slurm jobs: the next submit follows them
    with :meth:`adopt`) instead of being stopped on Ctrl-C."""

    def capacity(self) -> int | None:
        """How many more jobs can start now; None when there is no bound (the launcher queues
        what it cannot start yet)."""
        raise NotImplementedError

    def launch(self, request: LaunchRequest) -> int:
        """Start the job's process; returns its pid when known at once, else 0 (the launcher
        keeps it: :meth:`kill` takes the job's identifier).  ``request.on_exit`` is called
        exactly once, from any thread, when the job is over (see :data:`ExitCallback`)."""
        raise NotImplementedError

    def adopt(self, identifier: str, taskdir: Path, job_id: str, on_exit: ExitCallback) -> None:
        """Follow a job that another scheduler launched with a launcher of this kind
        (``job_id`` is that launcher's own id of it) like a job of this one: ``on_exit`` is
        called when it is over.  Launchers whose jobs outlive their scheduler
        (:attr:`keeps_running`) implement it."""
        raise NotImplementedError

    def kill(self, identifier: str, force: bool = False) -> None:
        """Send SIGTERM (SIGKILL with ``force``) to the process group of the job
        ``identifier``."""
        raise NotImplementedError

    def exit_reason(self, identifier: str) -> str | None:
        """Why the job ``identifier`` ended, in the launcher's words (``TIMEOUT (Slurm job
        12…)``), once, after ``on_exit``; None when the exit code says it all."""
        return None

    def job_reference(self, identifier: str) -> str | None:
        """The launcher's own id of a job not ended yet, for chaining (``chains``)."""
        return None

    def warm(self) -> None:
        """Get ready to launch (start helpers): called once, as soon as the scheduler knows a
        job of this launcher must launch (never when every job is done), while the rest of the
        experiment's tasks are submitted.  Safe to call from any thread."""

    def close(self) -> None:
        """Release the launcher's helpers (running jobs are left to finish)."""

    def describe(self) -> str:
        """One line for logs and the launch record."""
        return self.name
