"""Experiments: submit tasks, run only what is absent, exactly once (docs/scheduler.md).

```python
with experiment("WORKSPACE", "my-experiment", launcher=LocalLauncher(workers=4)) as xp:
    out = learn.submit()                    # what task_outputs(dep) returns
    Evaluate(learned=out).submit()
# leaving the block waits for every job and raises ExperimentFailed naming the failed ones
```

``submit()`` gathers the task and every task it references (submitted with the same launcher),
asks the pure planner (:mod:`xpmstore.scheduler.plan`) what to do given what is done, held or
failed, and records each job with its reason in the run record, under the shared gc lock.  A
scheduler thread then claims and launches jobs whose dependencies are done
(:mod:`xpmstore.scheduler.claim`), waits on jobs another process holds, and blocks the dependents of
a failed job while the rest go on.

Interrupts: an exception in the block (Ctrl-C included) stops new launches, sends SIGTERM to the
process groups of this experiment's running jobs (SIGKILL after 10 s, or at once on a second
Ctrl-C), marks them failed ``interrupted`` and re-raises.  After ``kill -9`` of the scheduler, its
jobs finish in their own sessions and the next scheduler waits for them.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from ..core.active import activate, active
from ..core.config import Config, Task, class_spec, dependencies, iter_configs, tags_of
from ..errors import (
    ArgumentTypeError,
    ConfigTypeError,
    ExperimentFailed,
    ExperimentInJobError,
    XpmstoreError,
)
from ..remote.sync import RemoteSync
from ..store import taskdirs
from ..store.index import Index
from ..store.taskstate import (
    ask_slurm_at_once,
    inside_job,
    launch_is_live,
    read_launch,
    read_state,
    remove_own_launch,
    remove_state,
    write_state,
)
from ..store.workspace import Workspace, set_active_workspace
from ..system.locks import gc_lock
from . import runner
from .claim import claim, holder_state
from .hooks import Job, SubmitHook, gather_hooks
from .launchers.base import Launcher
from .launchers.local import LocalLauncher
from .launchers.named import named_launcher
from .launchers.slurm import ChainRefused
from .livedisplay import display_for
from .plan import Job as PlanJob
from .plan import make_plan
from .progress import Progress, describe_error
from .progress import say as _say
from .runlog import RunLine, RunRecord
from .runs import check_experiment_name

__all__ = ["active_experiment", "experiment"]

_INTERRUPT_GRACE = 10.0
_BATCH_SIZE = 512  # submits are planned and recorded in batches of at most this many jobs...
_BATCH_DELAY = 0.01  # ...or of what was submitted within this many seconds
_AHEAD = 2  # jobs claimed ahead of a free worker, so that a worker's next job starts at once
_INDEX_PERIOD = 0.25  # finished jobs are recorded in the index at most this often (and at the end)
_TERMINAL = ("done", "failed", "blocked")


def active_experiment() -> experiment | None:
    """The experiment whose ``with`` block is running in this process, if any."""
    current = active()
    return current if isinstance(current, experiment) else None


class _Job:
    """The scheduler's view of one job."""

    def __init__(self, task: Task, workspace: Workspace, launcher: Launcher,
                 hooks: list[SubmitHook], tags: dict[str, Any]):
        self.task = task
        self.identifier = task.__identifier__
        self.name = class_spec(type(task)).identity_name
        self.taskdir = workspace.task_dir(self.name, self.identifier)
        self.dependencies = sorted({d.__identifier__ for d in dependencies(task)})
        self.ahead = False  # claimed ahead of a free worker: launch without claiming again
        self.launcher = launcher
        self.hooks = hooks
        self.tags = tags
        self.status = "pending"  # pending, running, waiting, done, failed, blocked
        self.outcome = ""  # once done: "done" (ran here), "reused" or "waited" (ran elsewhere)
        self.reason = ""
        self.pid = 0
        self.exit_code: int | None = None
        self.detail = ""
        self.poll_at = 0.0
        self.poll_every = 0.02
        self.fresh = bool(getattr(type(task), "fresh_process", False))
        self.pull = False  # planned to be pulled from the remote
        self.pulling = False  # a pull is in progress; its outcome comes as an exit event
        self.chain = True  # may be submitted before its dependencies end (Slurm's afterok)
        self.interrupted = False  # killed by the interrupt of the run


def _modules_and_scripts(task: Task) -> tuple[list[str], list[str]]:
    modules: set[str] = set()
    scripts: set[str] = set()
    stack: list[Config] = [task]
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
        self.jobs: dict[str, _Job] = {}
        self.order: list[_Job] = []
        self.record: RunRecord | None = None
        self._lock = threading.RLock()  # guards the jobs' states
        self._cond = threading.Condition(self._lock)  # notified after every scheduler step
        self._events: queue.SimpleQueue[tuple[str, int] | None] = queue.SimpleQueue()
        self._stop = False
        self._no_launch = False
        self._thread: threading.Thread | None = None
        self._launchers: set[Launcher] = set()
        self._to_index: list[_Job] = []
        self._to_tag: list[_Job] = []  # reused jobs whose tags join the index's
        self._previous_workspace: Workspace | None = None
        self._warned_defaults: set[str] = set()
        self._seen: set[str] = set()  # identifiers of every job submitted (batched or planned)
        self._live: list[_Job] = []  # planned jobs not yet done, failed or blocked
        self._batch: list[_Job] = []  # submitted jobs not yet planned
        self._batch_since = 0.0
        self._batch_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one batch planned at a time, in submission order
        self._indexed_at = 0.0
        self._index_warned = False
        self._record_warned = False
        self._roots: set[str] = set()
        self._remote: RemoteSync | None = RemoteSync.for_workspace(self.workspace)

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
            try:
                self.workspace.ensure()
                self.record = RunRecord(self.workspace.experiments, self.name)
            except OSError as exc:  # a full disk, a read-only workspace: nothing ran
                raise ExperimentFailed(f"experiment {self.name!r} cannot start: its run record"
                                       f" in {self.workspace.experiments} cannot be written"
                                       f" ({describe_error(exc)})") from exc
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name=f"xpmstore-{self.name}")
            self._thread.start()
            self.launcher.warm()
        self._previous_workspace = set_active_workspace(self.workspace)
        activate(self)
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> Literal[False]:
        try:
            if self.dry_run:
                return False
            if kind is not None:
                self._interrupt()
                self._close("interrupted")
                return False
            try:
                self._wait_all()
            except KeyboardInterrupt:
                self._interrupt()
                self._close("interrupted")
                raise
            failed = [j for j in self.order if j.status == "failed"]
            self._close("failed" if failed else "ok")
            if failed:
                self._raise_failed(failed)
            return False
        finally:
            activate(None)
            set_active_workspace(self._previous_workspace)

    def _raise_failed(self, failed: list[_Job]) -> None:
        refused = next((j for j in failed if j.exit_code == runner.EXIT_REFUSED), None)
        if refused is not None:  # an unguarded script: its error, once, is the whole story
            raise ExperimentFailed(
                f"experiment {self.name!r}:"
                f" {refused.detail.removeprefix(ExperimentInJobError.__name__ + ': ')}"
                f" ({len(failed)} job(s) failed;"
                f" {refused.name} {refused.identifier[:12]}, log {refused.taskdir / 'stderr'})",
                failed=[(j.identifier, j.name, str(j.taskdir / "stderr")) for j in failed],
            )
        shown = "; ".join(f"{j.name} {j.identifier[:12]} ({j.detail or 'failed'}, log"
                          f" {j.taskdir / 'stderr'})" for j in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise ExperimentFailed(
            f"experiment {self.name!r}: {len(failed)} job(s) failed: {shown}{more}",
            failed=[(j.identifier, j.name, str(j.taskdir / "stderr")) for j in failed],
        )

    # --- submit ---------------------------------------------------------------------------------

    def submit(self, task: Task, launcher: Launcher | str | None = None,
               hooks: Iterable[SubmitHook] = ()) -> Any:
        """Submit ``task`` (and the tasks it references); returns ``task_outputs(dep)``.
        ``launcher`` is a Launcher or the name of one in the settings (``[launchers.NAME]``)."""
        if not isinstance(task, Task):
            raise ConfigTypeError(f"submit() takes a Task, got {type(task).__qualname__}")
        chosen = self._launcher(launcher) if launcher is not None else self.launcher
        new: list[_Job] = []
        self._collect(task, chosen, list(hooks), new, set())
        if new and self.dry_run:
            self._plan_and_record(new)
        elif new:
            with self._batch_lock:
                first = not self._batch
                if first:
                    self._batch_since = time.monotonic()
                self._batch.extend(new)
                full = len(self._batch) >= _BATCH_SIZE
            if full:
                self._flush_batch()
            elif first:
                self._events.put(None)  # the scheduler thread plans it within _BATCH_DELAY
        taskdirs.bind(task, self.workspace)
        outputs = task.__xpm_outputs__()
        if outputs is not task and isinstance(outputs, Config):
            taskdirs.bind(outputs, self.workspace)
        return outputs

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

    def _flush_batch(self) -> None:
        """Plan and record the submitted jobs not planned yet (one batch, one gc lock).  Never
        raises: when the batch cannot be planned or recorded (a full disk, a file system
        without locks), its jobs fail with that reason and the run goes on to its end."""
        with self._flush_lock:
            with self._batch_lock:
                batch, self._batch = self._batch, []
            if not batch:
                return
            try:
                self._plan_and_record(batch)
            except Exception as exc:
                self._not_planned(batch, exc)

    def _not_planned(self, batch: list[_Job], exc: Exception) -> None:
        """Fail the jobs of a batch that could not be planned (nothing of them was claimed)."""
        detail = f"not planned: {describe_error(exc)}"
        with self._cond:
            for job in batch:
                if job.identifier in self.jobs:
                    continue  # registered before the error
                self.jobs[job.identifier] = job
                self.order.append(job)
                self._launchers.add(job.launcher)
                job.status, job.detail = "failed", detail[:500]
                self.progress.finished_job(job.identifier, job.name, "failed", job.detail)
            self._cond.notify_all()

    def _batch_due(self) -> bool:
        with self._batch_lock:
            return bool(self._batch) and (
                time.monotonic() - self._batch_since >= _BATCH_DELAY)

    def _collect(self, task: Task, launcher: Launcher, hooks: list[SubmitHook],
                 new: list[_Job], visiting: set[str]) -> None:
        identifier = task.__identifier__
        if identifier in self._seen or identifier in visiting:
            return
        visiting.add(identifier)
        for dependency in dependencies(task):
            self._collect(dependency, launcher, [], new, visiting)
        new.append(_Job(task, self.workspace, launcher, gather_hooks(task, hooks),
                        tags_of(task)))
        self._seen.add(identifier)

    def _plan_and_record(self, new: list[_Job]) -> None:
        done, held, failed_before = set(), {}, set()
        graph = {j.identifier: PlanJob(j.identifier, j.name, tuple(j.dependencies)) for j in new}
        context = gc_lock(self.workspace.gc_lock_path, exclusive=False) if not self.dry_run \
            else _nothing()
        with context:
            launches = {}
            for job in new:
                if taskdirs.is_done(job.taskdir):
                    done.add(job.identifier)
                else:
                    launches[job.identifier] = read_launch(job.taskdir)
            ask_slurm_at_once(launches.values())
            for job in new:
                if job.identifier not in launches:
                    continue
                launch = launches[job.identifier]
                if launch is not None and launch_is_live(job.taskdir, launch):
                    held[job.identifier] = str(launch.get("host", "?"))
                elif read_state(job.taskdir).get("state") in ("failed", "running"):
                    failed_before.add(job.identifier)
            remote = self._remote.present(i for i in graph if i not in done and i not in held) \
                if self._remote is not None else set()
            decisions = {d.identifier: d for d in make_plan(graph, done, remote=remote, held=held,
                                                            failed_before=failed_before)}
            if self.dry_run:
                for job in new:
                    decision = decisions[job.identifier]
                    print(f"[dry run] {decision.action:<6} {job.name} {job.identifier[:12]}"
                          f" ({decision.reason})", file=self.progress.stream)
                    self.jobs[job.identifier] = job
                return
            assert self.record is not None
            self.record.append_many([
                {"type": "job", "id": j.identifier, "name": j.name,
                 "reason": decisions[j.identifier].reason, "tags": j.tags,
                 "dependencies": j.dependencies} for j in new
            ])
        with self._cond:
            for job in new:
                decision = decisions[job.identifier]
                job.reason = decision.reason
                self.jobs[job.identifier] = job
                self.order.append(job)
                self._launchers.add(job.launcher)
                if decision.action == "reuse":
                    self._to_tag.append(job)
                    self._done(job, "reused")
                else:
                    job.pull = decision.action == "pull"
                    self._live.append(job)
        self._events.put(None)
        for job in new:
            if job.status == "done":
                self._warn_changed_defaults(job)

    def _warn_changed_defaults(self, job: _Job) -> None:
        if job.name in self._warned_defaults:
            return
        self._warned_defaults.add(job.name)
        for message in _changed_defaults(job.task, job.taskdir):
            _say(f"xpmstore: warning: {message}")

    # --- the scheduler thread -------------------------------------------------------------------

    def _loop(self) -> None:
        """The scheduler thread.  Nothing ends it before the run ends: an error about one job
        (its state file on a full disk, a launcher that failed) fails that job, and anything
        else fails every job left (:meth:`_abandon`), so that the main thread never waits for a
        thread that is gone."""
        try:
            self._serve()
        except BaseException as exc:
            self._abandon(exc)

    def _serve(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=self._next_wakeup())
            except queue.Empty:
                event = None
            if self._batch_due() and not self._stop:
                self._flush_batch()  # outside the condition: submit() may be flushing too
            with self._cond:
                while True:
                    if event is not None:
                        self._handle_event(*event)
                    try:
                        event = self._events.get_nowait()
                    except queue.Empty:
                        break
                if self._stop:
                    self._cond.notify_all()
                    return
                if not self._no_launch:
                    self._step()
                if time.monotonic() - self._indexed_at >= _INDEX_PERIOD:
                    self._flush_index()
                self._cond.notify_all()

    def _abandon(self, exc: BaseException) -> None:
        """The scheduler thread met an error it cannot pin on one job: every job not finished
        fails with it (running jobs go on in their own sessions, like after ``kill -9`` of the
        scheduler: the next run waits for them), and the run ends."""
        detail = f"scheduler error: {describe_error(exc)}"[:500]
        _say(f"xpmstore: {detail}")
        with self._cond:
            for job in self._live:
                if job.status in _TERMINAL:
                    continue
                if job.ahead and job.status == "pending":
                    self._unclaim(job)
                job.status, job.detail, job.ahead = "failed", detail, False
                self.progress.finished_job(job.identifier, job.name, "failed", detail)
            self._live = []
            self._stop = True
            self._cond.notify_all()

    def _next_wakeup(self) -> float:
        now = time.time()
        with self._lock:
            waits = [j.poll_at - now for j in self._live if j.status == "waiting"]
            if self._to_index:
                waits.append(self._indexed_at + _INDEX_PERIOD - time.monotonic())
        with self._batch_lock:
            if self._batch:
                waits.append(self._batch_since + _BATCH_DELAY - time.monotonic())
        return max(0.001, min(waits, default=1.0))

    def _step(self) -> None:
        try:
            self._step_jobs()
        finally:
            self._live = [j for j in self._live if j.status not in _TERMINAL]

    def _step_jobs(self) -> None:
        ahead = sum(1 for j in self._live if j.ahead)
        full: set[int] = set()  # launchers found without a free worker in this step
        for job in self._live:
            if job.status == "pending" and id(job.launcher) in full and (
                    job.ahead or ahead >= _AHEAD) and not job.pull:
                continue  # nothing to do for it until a worker frees (a step per job event:
                # without this skip, a cold run of n jobs costs n² dependency checks; a job
                # whose dependency failed is marked blocked a few steps later instead)
            try:
                ahead = self._step_job(job, ahead, full)
            except Exception as exc:  # about this job only (a full disk, a lock): it fails
                ahead -= job.ahead
                pending = job.status == "pending"  # else another process holds it, or a pull
                self._fail(job, describe_error(exc), record=pending, unclaim=pending)

    def _step_job(self, job: _Job, ahead: int, full: set[int]) -> int:
        """One step of one job; returns the number of jobs claimed ahead after it."""
        if job.status == "pending" and job.pull and self._remote is not None:
            job.pull, job.pulling, job.status = False, True, "running"
            self.progress.started_job(job.identifier, job.name)
            self._remote.start_pull(job.identifier, self._on_pulled)
        elif job.status == "pending":
            states = [self.jobs[d].status for d in job.dependencies if d in self.jobs]
            bad = next((d for d in job.dependencies
                        if d in self.jobs and self.jobs[d].status in ("failed", "blocked")),
                       None)
            if bad is not None:
                job.status = "blocked"
                job.detail = f"dependency {self.jobs[bad].name} {bad[:12]} failed"
                self.progress.finished_job(job.identifier, job.name, "blocked", job.detail)
            elif (chain := [] if all(s == "done" for s in states)
                  else self._chained(job)) is not None:
                try:
                    if job.launcher.capacity(job.identifier):
                        ahead -= job.ahead
                        self._start(job, chain)
                    else:
                        full.add(id(job.launcher))
                        if not job.ahead and ahead < _AHEAD and self._claim(job):
                            job.ahead = True  # prepared and claimed while workers are busy
                            ahead += 1
                            self.progress.queued_job(job.identifier, job.name)
                except Exception as exc:
                    job.ahead = False
                    self._launch_failed(job, exc)
        elif job.status == "waiting" and time.time() >= job.poll_at:
            self._check_holder(job)
        return ahead

    def _chained(self, job: _Job) -> list[tuple[str, Path]] | None:
        """When ``job``'s launcher chains jobs (Slurm) and every dependency not done yet is a
        job of such a launcher still pending or running: their (reference, task directory)
        pairs, so the job is submitted now with ``afterok``; else None (wait for them)."""
        if not job.chain or not job.launcher.chains:
            return None
        chain = []
        for identifier in job.dependencies:
            dependency = self.jobs.get(identifier)
            if dependency is None or dependency.status == "done":
                continue
            if dependency.status != "running" or dependency.pulling:
                return None
            reference = dependency.launcher.job_reference(identifier)
            if reference is None:
                return None
            chain.append((reference, dependency.taskdir))
        return chain

    def _launch_failed(self, job: _Job, exc: Exception) -> None:
        """A job could not be launched (a SubmitHook raised, the launcher or the disk failed):
        it fails with that error, its dependents are blocked, and the other jobs go on."""
        self._fail(job, f"not launched: {describe_error(exc)}", unclaim=True)

    def _fail(self, job: _Job, detail: str, record: bool = True, unclaim: bool = False) -> None:
        """``job`` fails with ``detail``; with ``record``, its state file says so (when the
        disk lets it); with ``unclaim`` (a job claimed, never launched), a launch record naming
        this scheduler is removed.  ``record=False`` for a job another process holds: its
        files are that process's."""
        job.status, job.detail, job.ahead = "failed", detail[:500], False
        self.progress.finished_job(job.identifier, job.name, "failed", job.detail)
        if record:
            try:
                if unclaim:
                    remove_own_launch(job.taskdir)  # when it names this scheduler
                write_state(job.taskdir, "failed", ended=time.time(), reason=job.detail)
            except OSError:
                pass  # the task directory itself may be what failed (a full disk)
        self._cancel_chained(job)

    def _done(self, job: _Job, outcome: str) -> None:
        """``job`` is done: ``outcome`` is "done" (it ran here), "reused" (it was done) or
        "waited" (another process ran it while this run waited)."""
        job.status, job.outcome = "done", outcome
        self.progress.finished_job(job.identifier, job.name, outcome)

    def _claim(self, job: _Job) -> bool:
        """Prepare the job's directory and claim it; True when this scheduler must launch it
        (else it is done or another process holds it, and the job's status says so)."""
        taskdirs.prepare_task_dir(self.workspace, job.task)
        assert self.record is not None
        outcome = claim(self.workspace, job.identifier, job.taskdir, values=job.task,
                        launcher=job.launcher.describe(), tags=job.tags,
                        experiment=self.name, run=self.record.run)
        if outcome.outcome == "done":
            self._to_tag.append(job)
            if job.reason.startswith("waited:"):  # planned as waited: it still was
                self._done(job, "waited")
            else:
                self._set_reason(job, "reused:local")
                self._done(job, "reused")
            return False
        if outcome.outcome == "held":
            if not self._reattach(job, outcome.holder):
                self._wait_for(job, outcome.holder)
            return False
        self._set_reason(job, "ran:failed-before" if outcome.failed_before else "ran:new")
        return True

    def _release_claims(self) -> None:
        """Give up the claims of jobs claimed ahead but never launched (the run is ending):
        their launch records name this live process, which would make others wait for it."""
        for job in self._live:
            if job.ahead and job.status == "pending":
                job.ahead = False
                self._unclaim(job)

    @staticmethod
    def _unclaim(job: _Job) -> None:
        """Remove the claim of a job this process claimed but did not launch."""
        for remove in (remove_own_launch, remove_state):
            try:
                remove(job.taskdir)
            except OSError:
                pass

    def _start(self, job: _Job, chain: list[tuple[str, Path]]) -> None:
        if not job.ahead and not self._claim(job):
            return
        job.ahead = False
        hook_job = Job(config=job.task, taskdir=job.taskdir)
        for hook in job.hooks:
            hook.process(hook_job, job.launcher)
        if self._remote is not None and self._remote.down:  # jobs don't pay its timeout again
            hook_job.environ["XPMSTORE_REMOTE_DOWN"] = "1"
        modules, scripts = _modules_and_scripts(job.task)
        job.status = "running"
        self.progress.started_job(job.identifier, job.name)
        extra: dict[str, Any] = {}
        if job.launcher.chains:  # Slurm: afterok and per-job options
            extra = {"after": [r for r, _ in chain], "after_dirs": [d for _, d in chain],
                     "options": hook_job.launcher_options}
        try:
            job.pid = job.launcher.launch(job.identifier, job.taskdir, hook_job.environ,
                                          job.tags, modules, scripts, job.fresh, self._on_exit,
                                          **extra)
        except ChainRefused:  # submit it without afterok once its dependencies are done
            self._unclaim(job)
            job.status, job.chain = "pending", False

    def _reattach(self, job: _Job, holder: str) -> bool:
        """When the holder of ``job`` is a Slurm job and the job's launcher can follow one:
        follow it like a job of ours (its end comes as an exit event).  Else False."""
        record = read_launch(job.taskdir) or {}
        slurm_job_id = record.get("slurm_job_id")
        adopt = getattr(job.launcher, "adopt", None)
        if not slurm_job_id or adopt is None:
            return False
        self._set_reason(job, f"waited:{holder}")
        job.status = "running"
        self.progress.started_job(job.identifier, job.name)
        adopt(job.identifier, job.taskdir, str(slurm_job_id), self._on_exit)
        return True

    def _set_reason(self, job: _Job, reason: str) -> None:
        """Record a reason decided at launch time (it replaces the planned one)."""
        if reason != job.reason:
            job.reason = reason
            self._append({"type": "reason", "id": job.identifier, "reason": reason})

    def _append(self, line: RunLine) -> None:
        """Append ``line`` to the run record; when the disk refuses (full), one warning for
        the run, and the run goes on (the job's own files still tell its state)."""
        if self.record is None:
            return
        try:
            self.record.append(line)
        except OSError as exc:
            if not self._record_warned:
                self._record_warned = True
                _say(f"xpmstore: warning: the run record {self.record.path} could not be"
                     f" written ({describe_error(exc)}); lines are missing from it")

    def _wait_for(self, job: _Job, holder: str) -> None:
        job.status = "waiting"
        self._set_reason(job, f"waited:{holder}")
        job.poll_every = 0.02
        job.poll_at = time.time() + job.poll_every

    def _check_holder(self, job: _Job) -> None:
        holder = holder_state(self.workspace, job.identifier, job.taskdir)
        if holder == "done":
            self._to_index.append(job)
            self._done(job, "waited")
            return
        if holder == "running":
            job.poll_every = min(job.poll_every * 1.5, 0.5)
            job.poll_at = time.time() + job.poll_every
            return
        state = read_state(job.taskdir)
        if state.get("state") == "failed":
            self._fail(job, f"failed in {job.reason.removeprefix('waited:')}: "
                            f"{state.get('reason', 'exit code ' + str(state.get('exit_code')))}",
                       record=False)
        else:
            job.status = "pending"  # its holder died without an outcome: claim it again

    def _on_exit(self, identifier: str, code: int) -> None:
        """Called from a launcher's thread: hand the event to the scheduler thread."""
        self._events.put((identifier, code))

    def _on_pulled(self, identifier: str, ok: bool) -> None:
        """Called from a pull thread: hand the outcome to the scheduler thread."""
        self._events.put((identifier, 0 if ok else 1))

    def _handle_event(self, identifier: str, code: int) -> None:
        """:meth:`_handle_exit`, which never raises: a job whose end cannot be recorded (its
        state file on a full disk) fails with that reason."""
        job = self.jobs.get(identifier)
        if job is None:
            return
        try:
            self._handle_exit(job, code)
        except Exception as exc:
            if job.status in _TERMINAL:  # its outcome stands; what followed it failed
                _say(f"xpmstore: warning: {job.name} {identifier[:12]}: {describe_error(exc)}")
            else:
                job.pulling = False
                self._fail(job, describe_error(exc))

    def _handle_exit(self, job: _Job, code: int) -> None:
        identifier = job.identifier
        if job.status in _TERMINAL:
            return  # already decided (a chained job cancelled because its dependency failed)
        if job.pulling:
            job.pulling = False
            if code == 0 and taskdirs.is_done(job.taskdir):
                self._to_tag.append(job)
                self._done(job, "reused")  # the pull indexed it
            else:
                job.status = "pending"  # rejected or failed: run it here
                self._set_reason(job, "ran:new")
            return
        job.exit_code = code
        if code == runner.EXIT_WAITED:
            self._wait_for(job, "another process")
        elif code == 0 and taskdirs.is_done(job.taskdir):
            self._to_index.append(job)
            # A job reattached (Slurm) or that yielded to another process ran elsewhere.
            self._done(job, "waited" if job.reason.startswith("waited:") else "done")
            if self._remote is not None:
                self._remote.push_later(job.taskdir)  # push = "auto": in the background
        else:
            state = read_state(job.taskdir)
            told = job.launcher.exit_reason(identifier)  # the launcher's account (TIMEOUT…)
            reason = str(state.get("reason") or _describe_exit(code))
            if told or state.get("state") != "failed":
                reason = told or ("interrupted" if job.interrupted else _describe_exit(code))
                try:
                    write_state(job.taskdir, "failed", exit_code=code,
                                started=state.get("started"), ended=time.time(), reason=reason)
                except OSError as exc:  # a full disk: the reason still reaches the user
                    reason = f"{reason}; {describe_error(exc)}"
            self._fail(job, reason, record=False)

    def _cancel_chained(self, failed: _Job) -> None:
        """Cancel the jobs submitted with ``afterok`` on ``failed`` (and theirs, in turn):
        each fails with the reason ``dependency <name> <id>``."""
        for job in self._live:
            if job.status != "running" or failed.identifier not in job.dependencies \
                    or not job.launcher.chains:
                continue
            try:
                job.launcher.kill(job.identifier)
            except Exception as exc:  # a failed scancel: warn; the job fails all the same
                _say(f"xpmstore: warning: {exc}")
            self._fail(job, f"dependency {failed.name} {failed.identifier[:12]} failed")

    def _flush_index(self) -> None:
        """Record the jobs finished since the last flush in the index.  Never raises: the index
        is an accelerator, refilled from the workspace (``ls``, ``gc``, ``fsck`` reconcile it),
        so a failure (a full disk, a damaged index) costs one warning, never the run."""
        self._indexed_at = time.monotonic()
        tagged, self._to_tag = [j for j in self._to_tag if j.tags], []
        jobs, self._to_index = self._to_index, []
        try:
            if tagged:  # reused jobs: their tags join the index's
                from ..store.lookup import add_tags

                add_tags(self.workspace, [(j.identifier, j.taskdir, j.tags) for j in tagged])
            if jobs:
                self._index_jobs(jobs)
        except Exception as exc:
            if not self._index_warned:
                self._index_warned = True
                _say(f"xpmstore: warning: the index cannot record finished jobs"
                     f" ({describe_error(exc)}); they are done all the same, and the index"
                     " refills from the workspace")

    def _index_jobs(self, jobs: list[_Job]) -> None:
        records = []
        for job in jobs:
            manifest = taskdirs.read_manifest(job.taskdir)
            if manifest is None:
                continue
            from ..core.params import params_of

            identity = params_of(job.task)["identity"]  # what params.json holds, not re-read
            record = taskdirs.index_record(self.workspace, job.taskdir, manifest, identity)
            record["tags"] = {**job.tags, **record["tags"]}  # waited for: both submissions'
            records.append((job.identifier, record))
        if records:
            Index.for_workspace(self.workspace).put_many(records, keep_tags=True)

    # --- the end --------------------------------------------------------------------------------

    def _wait_all(self) -> None:
        self._flush_batch()
        with self._cond:
            while self._live:
                if self._thread is None or not self._thread.is_alive():  # never happens:
                    self._abandon(RuntimeError("the scheduler thread ended"))  # never hang
                    break
                self._cond.wait(0.5)

    def _interrupt(self) -> None:
        with self._cond:
            self._no_launch = True
            running = [j for j in self.order if j.status == "running" and not j.pulling
                       and not j.launcher.keeps_running]
            for job in running:
                job.interrupted = True  # its exit, as it comes, says "interrupted"
                job.launcher.kill(job.identifier)
        deadline = time.time() + _INTERRUPT_GRACE
        try:
            with self._cond:
                while any(j.status == "running" for j in running) and time.time() < deadline:
                    self._cond.wait(0.05)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: no more grace
        with self._cond:
            for job in running:
                if job.status == "running":
                    job.launcher.kill(job.identifier, force=True)
        end = time.time() + 5
        while any(j.status == "running" for j in running) and time.time() < end:
            with self._cond:
                self._cond.wait(0.05)
        with self._cond:
            for job in running:
                job.status = "failed"
                job.detail = "interrupted"
                try:
                    write_state(job.taskdir, "failed", exit_code=job.exit_code,
                                ended=time.time(), reason="interrupted")
                except OSError:
                    pass  # a full disk: the interrupt goes on

    def _close(self, outcome: str) -> None:
        with self._cond:
            self._stop = True
            self._release_claims()
        self._events.put(None)
        if self._thread is not None:
            self._thread.join()
        self._flush_index()
        for launcher in self._launchers | {self.launcher}:
            _quietly(launcher.close, f"closing the {launcher.describe()} launcher")
        if self._remote is not None:
            _quietly(self._remote.close, "the remote")  # waits for the pending pushes
        counts = {s: sum(1 for j in self.order if j.status == s) for s in _TERMINAL}
        for kind in ("reused", "waited"):
            counts[kind] = sum(1 for j in self.order if j.outcome == kind)
        counts["done"] -= counts["reused"] + counts["waited"]
        if self.record is not None:
            record = self.record
            _quietly(lambda: record.end(outcome, **counts),
                     f"the end line of the run record {record.path}")
        self.progress.close()

    def note_root(self, identifier: str) -> None:
        """Record that this run uses ``identifier`` (a Store lookup): a gc root while live."""
        if self.record is not None and identifier not in self._roots:
            self._roots.add(identifier)
            self._append({"type": "root", "id": identifier})


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: Any) -> None:
        return None


def _quietly(call: Any, what: str) -> None:
    """Call ``call()``; an error becomes one warning line (the end of a run goes on)."""
    try:
        call()
    except Exception as exc:
        _say(f"xpmstore: warning: {what}: {describe_error(exc)}")


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _changed_defaults(task: Task, taskdir: Path) -> list[str]:
    """One line per default that changed since the reused result was made."""
    from ..core.params import _Writer, read_params

    try:
        document = read_params(taskdir)
        root = document["values"]["objects"][document["values"]["root"]]
    except (XpmstoreError, KeyError, OSError):
        return []
    spec = class_spec(type(task))
    lines = []
    for name, recorded in root.get("defaults", {}).items():
        field_spec = spec.fields.get(name)
        if field_spec is None or not field_spec.has_default:
            continue
        current = _Writer().value(field_spec.make_default())
        if current != recorded:
            lines.append(
                f"{type(task).__qualname__}.{name}: reused a result made when its default was"
                f" {recorded!r}; it is now {current!r} (bump a Constant to invalidate)"
            )
    return lines
