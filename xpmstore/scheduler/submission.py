"""What a submit makes: the jobs of a task graph, and the plan of a batch of them
(docs/scheduler.md, "Submitting").

:func:`gather_jobs` turns a task and the tasks it references into :class:`ScheduledJob` s;
:func:`plan_batch` reads what the plan needs of the disk (done, held by a live process, failed
before, in the remote), asks the pure planner (:func:`xpmstore.scheduler.plan.make_plan`) and,
for a real run, records each job with its reason in the run record, all under the shared gc lock.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core.config import Config, Task, class_spec, dependencies, iter_configs, tags_of
from ..errors import XpmstoreError
from ..remote.sync import RemoteSync
from ..store import taskdirs
from ..store.taskstate import ask_slurm_at_once, launch_is_live, read_launch, read_state
from ..store.workspace import Workspace
from ..system.locks import gc_lock
from .hooks import SubmitHook, gather_hooks
from .launchers.base import Launcher
from .plan import Decision, make_plan
from .plan import Job as PlanJob
from .progress import say
from .runlog import RunRecord
from .steps import JobState

__all__ = ["BATCH_DELAY", "BATCH_SIZE", "Batches", "ScheduledJob", "gather_jobs", "plan_batch",
           "warn_changed_defaults"]

BATCH_SIZE = 512
"""Submitted jobs are planned and recorded in batches of at most this many jobs..."""
BATCH_DELAY = 0.01
"""...or of what was submitted within this many seconds."""


class ScheduledJob(JobState):
    """The scheduler's view of one job: its state for the step rules, and what the engine
    needs to claim, launch and report it."""

    launcher: Launcher

    def __init__(self, task: Task, workspace: Workspace, launcher: Launcher,
                 hooks: list[SubmitHook], tags: dict[str, Any],
                 depends_on: list[Task] | None = None):
        identifier = task.__identifier__
        if depends_on is None:
            depends_on = dependencies(task)
        super().__init__(identifier, sorted({d.__identifier__ for d in depends_on}) if depends_on
                         else [], launcher, chains=launcher.chains)
        self.task = task
        self.name = class_spec(type(task)).identity_name
        self.folder = workspace.object_path("task", self.name, identifier)  # the planning of
        # a done job needs no more than this str (``taskdir``, the Path, is made when asked)
        if "_xpm_taskdir" not in task.__dict__:  # bound now: submit's bind() finds it bound
            task._xpm_bind(self.folder)
        self.hooks = hooks
        self.tags = tags
        self.outcome = ""  # once done: "done" (ran here), "reused" or "waited" (ran elsewhere)
        self.reason = ""
        self.pid = 0
        self.exit_code: int | None = None
        self.detail = ""
        self.poll_every = 0.02
        self.fresh = bool(getattr(type(task), "fresh_process", False))
        self.interrupted = False  # killed by the interrupt of the run

    @functools.cached_property
    def taskdir(self) -> Path:
        """The task directory (made when first asked: a reused job seldom is)."""
        return Path(self.folder)

    def modules_and_scripts(self) -> tuple[list[str], list[str]]:
        """The modules that define the task's configs, and the scripts (``__main__``) that do:
        what the job's process imports to rebuild the task."""
        modules: set[str] = set()
        scripts: set[str] = set()
        stack: list[Config] = [self.task]
        seen: set[int] = set()
        while stack:
            config = stack.pop()
            if id(config) in seen:
                continue
            seen.add(id(config))
            module = type(config).__module__
            if module == "__main__" or module.startswith("__xpm_main__"):
                main = sys.modules.get(module)
                path = getattr(main, "__file__", None)
                if path:
                    scripts.add(os.path.abspath(path))
            else:
                modules.add(module)
            stack.extend(c for _, c in iter_configs(config))
        return sorted(modules), sorted(scripts)


def gather_jobs(task: Task, launcher: Launcher, hooks: list[SubmitHook], workspace: Workspace,
                seen: set[str]) -> list[ScheduledJob]:
    """The jobs of ``task`` and of the tasks it references, dependencies first, leaving out the
    identifiers in ``seen`` (to which the new ones are added).  Referenced tasks go to the same
    launcher, without ``hooks`` (their own class hooks apply)."""
    new: list[ScheduledJob] = []
    _gather(task, launcher, hooks, workspace, seen, new, set())
    return new


def _gather(task: Task, launcher: Launcher, hooks: list[SubmitHook], workspace: Workspace,
            seen: set[str], new: list[ScheduledJob], visiting: set[str]) -> None:
    identifier = task.__identifier__
    if identifier in seen or identifier in visiting:
        return
    visiting.add(identifier)
    depends_on = dependencies(task)
    for dependency in depends_on:
        _gather(dependency, launcher, [], workspace, seen, new, visiting)
    new.append(ScheduledJob(task, workspace, launcher, gather_hooks(task, hooks), tags_of(task),
                            depends_on))
    seen.add(identifier)


class Batches:
    """Submitted jobs not planned yet, taken in batches: at most :data:`BATCH_SIZE` jobs, or
    what was submitted within :data:`BATCH_DELAY` seconds.  Safe across threads."""

    def __init__(self) -> None:
        self._jobs: list[ScheduledJob] = []
        self._since = 0.0
        self._lock = threading.Lock()

    def add(self, jobs: list[ScheduledJob]) -> tuple[bool, bool]:
        """Add ``jobs``; returns (whether they start a batch, whether the batch is full)."""
        with self._lock:
            first = not self._jobs
            if first:
                self._since = time.monotonic()
            self._jobs.extend(jobs)
            return first, len(self._jobs) >= BATCH_SIZE

    def take(self) -> list[ScheduledJob]:
        """The jobs added and not taken yet (possibly none)."""
        with self._lock:
            jobs, self._jobs = self._jobs, []
            return jobs

    def due_in(self) -> float | None:
        """Seconds until the batch is due (0 or less: it is), None when there is none."""
        with self._lock:
            if not self._jobs:
                return None
            return self._since + BATCH_DELAY - time.monotonic()


def plan_batch(workspace: Workspace, batch: list[ScheduledJob], remote: RemoteSync | None,
               record: RunRecord | None) -> dict[str, Decision]:
    """The plan's decision for each job of ``batch``, by identifier.  With a run ``record``
    (None: a dry run, which writes nothing), under the workspace's shared gc lock, so that a
    concurrent gc never deletes what is being reused, and each job's line with its reason is
    appended to the record.  Raises OSError (a full disk, a file system without locks)."""
    done, held, failed_before = set(), {}, set()
    graph = {j.identifier: PlanJob(j.identifier, j.name, tuple(j.dependencies)) for j in batch}
    locked = gc_lock(workspace.gc_lock_path, exclusive=False) if record is not None \
        else contextlib.nullcontext()
    with locked:
        launches = {}
        for job in batch:
            if taskdirs.is_done(job.folder):
                done.add(job.identifier)
            else:
                launches[job.identifier] = read_launch(job.taskdir)
        ask_slurm_at_once(launches.values())
        for job in batch:
            if job.identifier not in launches:
                continue
            launch = launches[job.identifier]
            if launch is not None and launch_is_live(job.taskdir, launch):
                held[job.identifier] = str(launch.get("host", "?"))
            elif read_state(job.taskdir).get("state") in ("failed", "running"):
                failed_before.add(job.identifier)
        present = remote.present(i for i in graph if i not in done and i not in held) \
            if remote is not None else set()
        decisions = {d.identifier: d for d in make_plan(graph, done, remote=present, held=held,
                                                        failed_before=failed_before)}
        if record is not None:
            record.append_many([
                {"type": "job", "id": j.identifier, "name": j.name,
                 "reason": decisions[j.identifier].reason, "tags": j.tags,
                 "dependencies": list(j.dependencies)} for j in batch
            ])
    return decisions


def warn_changed_defaults(reused: Iterable[ScheduledJob], warned: set[str]) -> None:
    """Warn, once per task class (``warned`` holds the names warned of), of each default that
    changed since the results of ``reused`` were made."""
    for job in reused:
        if job.name not in warned:
            warned.add(job.name)
            for message in _changed_defaults(job.task, job.taskdir):
                say(f"xpmstore: warning: {message}")


def _changed_defaults(task: Task, taskdir: Path) -> list[str]:
    """One line per default of ``task`` that changed since its reused result was made."""
    from ..core.params import changed_defaults, read_params

    try:
        document = read_params(taskdir)
        root = document["values"]["objects"][document["values"]["root"]]
    except (XpmstoreError, KeyError, OSError):
        return []
    lines = []
    for name, recorded, current in changed_defaults(type(task), root.get("defaults", {})):
        lines.append(
            f"{type(task).__qualname__}.{name}: reused a result made when its default was"
            f" {recorded!r}; it is now {current!r} (bump a Constant to invalidate)"
        )
    return lines
