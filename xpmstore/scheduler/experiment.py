"""Experiments: submit tasks, run only what is absent, exactly once (docs/scheduler.md).

```python
with experiment("WORKSPACE", "my-experiment", launcher=LocalLauncher(workers=4)) as xp:
    out = learn.submit()                    # what task_outputs(dep) returns
    Evaluate(learned=out).submit()
# leaving the block waits for every job and raises ExperimentFailed naming the failed ones
```

``submit()`` gathers the task and every task it references (submitted with the same launcher,
:mod:`xpmstore.scheduler.submission`) and hands them to the run's engine
(:class:`xpmstore.scheduler.engine.Scheduler`), which plans them, records each job with its
reason in the run record, claims and launches jobs whose dependencies are done, waits on jobs
another process holds, and blocks the dependents of a failed job while the rest go on.  A dry
run plans and prints, and starts no engine.

Interrupts: an exception in the block (Ctrl-C included) stops new launches, sends SIGTERM to the
process groups of this experiment's running jobs (SIGKILL after 10 s, or at once on a second
Ctrl-C), marks them failed ``interrupted`` and re-raises.  Left uncaught, that Ctrl-C and an
ExperimentFailed end a script with one line, not a traceback (:mod:`.exithook`).  After
``kill -9`` of the scheduler, its jobs finish in their own sessions and the next scheduler waits
for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ..core.active import activate, active
from ..core.config import Config, Task
from ..errors import (
    ArgumentTypeError,
    ConfigTypeError,
    ExperimentFailed,
    ExperimentInJobError,
    XpmstoreError,
)
from ..remote.sync import RemoteSync
from ..store import taskdirs
from ..store.taskstate import inside_job
from ..store.workspace import Workspace, set_active_workspace
from . import exithook, runner
from .engine import Scheduler
from .hooks import SubmitHook
from .launchers.base import Launcher
from .launchers.local import LocalLauncher
from .launchers.named import named_launcher
from .livedisplay import display_for
from .progress import Progress, describe_error
from .runlog import RunRecord
from .runs import check_experiment_name
from .submission import ScheduledJob, gather_jobs, plan_batch

__all__ = ["active_experiment", "experiment"]


def active_experiment() -> experiment | None:
    """The experiment whose ``with`` block is running in this process, if any."""
    current = active()
    return current if isinstance(current, experiment) else None


class experiment:
    """A run of an experiment in ``workspace`` (see the module doc).

    ``launcher`` defaults to ``LocalLauncher()``.  ``dry_run=True`` prints what would run, with
    reasons, and writes nothing.  Raises ExperimentFailed at the end of the block when jobs
    failed (a job that could not even be launched, say because a SubmitHook raised, fails too);
    ExperimentInJobError (an XpmstoreError) when entered inside a job's process, XpmstoreError
    inside another experiment; ExperimentFailed when its run record cannot be written (a full
    disk);
    TextValueError (a ValueError) for a name that is empty, holds '/' or starts with '.'.
    """

    def __init__(self, workspace: str | os.PathLike[str] | Workspace | None, name: str,
                 launcher: Launcher | str | None = None, dry_run: bool = False,
                 progress: Progress | None = None):
        check_experiment_name(name)
        self.workspace = Workspace.at(workspace)
        self.name = name
        self._named: dict[str, Launcher] = {}
        self.launcher = self._launcher(launcher) if launcher is not None else LocalLauncher()
        self.dry_run = dry_run
        self.progress = progress or display_for(  # a live block on a terminal, else lines
            name, jobs=lambda identifier: self.jobs.get(identifier), total=lambda: len(self.jobs))
        self.record: RunRecord | None = None
        self._scheduler: Scheduler | None = None  # the engine of a real run, once entered
        self._previous_workspace: Workspace | None = None
        self._seen: set[str] = set()  # identifiers of every job submitted
        self._roots: set[str] = set()
        self._remote: RemoteSync | None = RemoteSync.for_workspace(self.workspace)

    @property
    def jobs(self) -> Mapping[str, ScheduledJob]:
        """The run's planned jobs by identifier (none in a dry run)."""
        return self._scheduler.jobs if self._scheduler is not None else {}

    @property
    def order(self) -> Sequence[ScheduledJob]:
        """The run's planned jobs in submission order (their ``reason`` says why each ran or
        not; none in a dry run)."""
        return self._scheduler.order if self._scheduler is not None else []

    # --- the with block -------------------------------------------------------------------------

    def __enter__(self) -> experiment:
        if inside_job():
            raise ExperimentInJobError(
                "experiment() was entered inside a job's process: the script that defines your"
                ' tasks is imported by jobs; guard the experiment with `if __name__ == "__main__":`'
            )
        current = active()
        if current is not None:
            raise XpmstoreError(f"experiment {self.name!r}: experiment {current.name!r} is"
                                " already active in this process; experiments do not nest")
        if not self.dry_run:
            exithook.install()  # a failed or interrupted run ends the script with one line
            try:
                self.workspace.ensure()
                self.record = RunRecord(self.workspace.experiments, self.name,
                                        environments=self.workspace.environments,
                                        gitstates=self.workspace.gitstate)
            except OSError as exc:  # a full disk, a read-only workspace: nothing ran
                failed = ExperimentFailed(f"experiment {self.name!r} cannot start: its run"
                                          f" record in {self.workspace.experiments} cannot be"
                                          f" written ({describe_error(exc)})")
                exithook.mark(failed, str(failed))
                raise failed from exc
            self._scheduler = Scheduler(self.workspace, self.name, self.record, self._remote,
                                        self.progress, self.launcher)
            self._scheduler.start()  # it warms a launcher (the zygote) once a job must run
        self._previous_workspace = set_active_workspace(self.workspace)
        activate(self)
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> Literal[False]:
        try:
            scheduler = self._scheduler
            if scheduler is None:  # a dry run
                return False
            if kind is not None:
                self._interrupt(scheduler, error)
                return False
            try:
                scheduler.wait()
            except KeyboardInterrupt as interrupt:
                self._interrupt(scheduler, interrupt)
                raise
            failed = scheduler.failed()
            scheduler.close("failed" if failed else "ok")
            if failed:
                self._raise_failed(failed)
            return False
        finally:
            activate(None)
            set_active_workspace(self._previous_workspace)

    def _interrupt(self, scheduler: Scheduler, error: BaseException | None) -> None:
        """Stop the run's jobs and end its record, after ``error`` in the block or in the
        wait; a Ctrl-C (KeyboardInterrupt) then ends the script with one line."""
        stopped, kept = scheduler.interrupt()
        scheduler.close("interrupted")
        if not isinstance(error, KeyboardInterrupt):  # the user's error: its traceback shows
            return
        line = f"experiment {self.name!r} interrupted: {len(stopped)} job(s) stopped"
        if stopped:
            line += f": {_listed(stopped)}"
        if kept:
            launchers = ", ".join(sorted({job.launcher.name for job in kept}))
            line += f"; {len(kept)} job(s) left running ({launchers}): the next run follows them"
        exithook.mark(error, line)

    def _raise_failed(self, failed: list[ScheduledJob]) -> None:
        refused = next((j for j in failed if j.exit_code == runner.EXIT_REFUSED), None)
        if refused is not None:  # an unguarded script: its error, once, is the whole story
            message = (
                f"experiment {self.name!r}:"
                f" {refused.detail.removeprefix(ExperimentInJobError.__name__ + ': ')}"
                f" ({len(failed)} job(s) failed;"
                f" {refused.name} {refused.identifier[:12]}, log {refused.taskdir / 'stderr'})")
        else:
            message = (f"experiment {self.name!r}: {len(failed)} job(s) failed:"
                       f" {_listed(failed, with_detail=True)}")
        error = ExperimentFailed(
            message, failed=[(j.identifier, j.name, str(j.taskdir / "stderr")) for j in failed])
        exithook.mark(error, message)
        raise error

    # --- submit ---------------------------------------------------------------------------------

    def submit(self, task: Task, launcher: Launcher | str | None = None,
               hooks: Iterable[SubmitHook] = ()) -> Any:
        """Submit ``task`` (and the tasks it references); returns ``task_outputs(dep)``.
        ``launcher`` is a Launcher or the name of one in the settings (``[launchers.NAME]``)."""
        if not isinstance(task, Task):
            raise ConfigTypeError(f"submit() takes a Task, got {type(task).__qualname__}")
        chosen = self._launcher(launcher) if launcher is not None else self.launcher
        new = gather_jobs(task, chosen, list(hooks), self.workspace, self._seen)
        if new and self.dry_run:
            self._print_plan(new)
        elif new and self._scheduler is not None:
            self._scheduler.add(new)
        taskdirs.bind(task, self.workspace)
        outputs = task.__xpm_outputs__()
        if outputs is not task and isinstance(outputs, Config):
            taskdirs.bind(outputs, self.workspace)
        return outputs

    def _print_plan(self, new: list[ScheduledJob]) -> None:
        """A dry run's submit: plan ``new`` (writing nothing) and print each decision."""
        decisions = plan_batch(self.workspace, new, self._remote, record=None)
        for job in new:
            decision = decisions[job.identifier]
            print(f"[dry run] {decision.action:<6} {job.name} {job.identifier[:12]}"
                  f" ({decision.reason})", file=self.progress.stream)

    def _launcher(self, launcher: Launcher | str) -> Launcher:
        """``launcher`` itself, or the launcher named so in the settings (one per name)."""
        if isinstance(launcher, Launcher):
            return launcher
        if not isinstance(launcher, str):
            raise ArgumentTypeError(f"launcher: a Launcher or a name from the settings, got"
                                    f" {type(launcher).__qualname__}")
        if launcher not in self._named:
            self._named[launcher] = named_launcher(self.workspace, launcher)
        return self._named[launcher]

    def note_root(self, identifier: str) -> None:
        """Record that this run uses ``identifier`` (a Store lookup): a gc root while live."""
        if self._scheduler is not None and identifier not in self._roots:
            self._roots.add(identifier)
            self._scheduler.append({"type": "root", "id": identifier})


def _listed(jobs: Sequence[ScheduledJob], with_detail: bool = False) -> str:
    """The first five of ``jobs``, each with its log (and why it failed, ``with_detail``), and
    how many more: part of one line."""

    def one(job: ScheduledJob) -> str:
        why = f"{job.detail or 'failed'}, " if with_detail else ""
        return f"{job.name} {job.identifier[:12]} ({why}log {job.taskdir / 'stderr'})"

    more = f" and {len(jobs) - 5} more" if len(jobs) > 5 else ""
    return "; ".join(one(job) for job in jobs[:5]) + more
