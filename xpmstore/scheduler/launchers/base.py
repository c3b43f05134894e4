"""The interface between the scheduler and a launcher."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ExitCallback", "Launcher"]

ExitCallback = Callable[[str, int], None]
"""``on_exit(identifier, exit_code)``, called from a launcher thread when a job is over: it
reported its own end (done, or waited), or its process ended."""


class Launcher:
    """Starts job processes.  Subclasses implement :meth:`capacity`, :meth:`launch`,
    :meth:`kill` and :meth:`close`; the scheduler calls them from its own thread."""

    name = "launcher"
    chains = False
    """Whether :meth:`launch` takes ``after``, ``after_dirs`` and ``options`` keywords: jobs
    submitted before their dependencies end (Slurm's ``afterok``) and per-job options."""
    keeps_running = False
    """Whether jobs outlive the scheduler's interrupt (Slurm jobs: the next submit reattaches
    them) instead of being stopped on Ctrl-C."""

    def capacity(self, identifier: str) -> bool:
        """Whether one more job can start now."""
        raise NotImplementedError

    def launch(self, identifier: str, taskdir: Path, environ: dict[str, str],
               tags: dict[str, Any], modules: list[str], scripts: list[str],
               fresh_process: bool, on_exit: ExitCallback) -> int:
        """Start the job's process; returns its pid when known at once, else 0 (the launcher
        keeps it: :meth:`kill` takes the job's identifier).  ``on_exit`` is called exactly once,
        from any thread, when the job is over (see :data:`ExitCallback`)."""
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
        """Get ready to launch (start helpers) while the experiment's tasks are submitted."""

    def close(self) -> None:
        """Release the launcher's helpers (running jobs are left to finish)."""

    def describe(self) -> str:
        """One line for logs and the launch record."""
        return self.name
