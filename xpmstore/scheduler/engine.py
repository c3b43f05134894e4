"""The engine of a run: the scheduler thread that plans, claims, launches and follows jobs
(docs/scheduler.md).

A :class:`Scheduler` takes the jobs an experiment submits (:meth:`Scheduler.add`), plans them in
batches (:func:`xpmstore.scheduler.submission.plan_batch`) and, after every event (a job's end,
a pull's, a batch planned), carries out what the step rules decide
(:func:`xpmstore.scheduler.steps.next_step`): it claims jobs (:mod:`xpmstore.scheduler.claim`),
launches them, waits on jobs another process holds, and blocks the dependents of a failed job
while the rest go on.  The launchers call back from their own threads; every job state changes
on the scheduler thread, or under the scheduler's lock.  The scheduler thread also appends the
run record's ``git`` line as soon as ``git`` has answered.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from ..remote.sync import RemoteSync
from ..store import taskdirs
from ..store.taskstate import (
    read_launch,
    read_state,
    remove_own_launch,
    remove_state,
    write_state,
)
from ..store.workspace import Workspace
from . import runner
from .claim import claim, holder_state
from .hooks import Job
from .indexqueue import IndexQueue
from .launchers.base import Launcher, LaunchRequest
from .launchers.slurm import ChainRefused
from .progress import Progress, describe_error
from .progress import say as _say
from .runlog import RunLine, RunRecord
from .steps import FINAL, Action, Decision, JobStatus, next_step
from .submission import Batches, ScheduledJob, plan_batch, warn_changed_defaults

__all__ = ["Scheduler"]

_INTERRUPT_GRACE = 10.0
_PENDING, _RUNNING, _WAITING = JobStatus.PENDING, JobStatus.RUNNING, JobStatus.WAITING
_DONE, _FAILED, _BLOCKED = JobStatus.DONE, JobStatus.FAILED, JobStatus.BLOCKED


class Scheduler:
    """The scheduler of one run of experiment ``name`` (see the module doc), recording into
    ``record``.  :meth:`start` starts its thread; :meth:`wait`, :meth:`interrupt` and
    :meth:`close` end the run.  ``jobs`` and ``order`` hold the run's planned jobs."""

    def __init__(self, workspace: Workspace, name: str, record: RunRecord,
                 remote: RemoteSync | None, progress: Progress, launcher: Launcher):
        self.workspace = workspace
        self.name = name
        self.record = record
        self.progress = progress
        self.jobs: dict[str, ScheduledJob] = {}
        self.order: list[ScheduledJob] = []
        self._remote = remote
        self._lock = threading.RLock()  # guards the jobs' states
        self._cond = threading.Condition(self._lock)  # notified after every scheduler step
        self._events: queue.SimpleQueue[tuple[str, int] | None] = queue.SimpleQueue()
        self._stop = False
        self._no_launch = False
        self._thread: threading.Thread | None = None
        self._launchers: set[Launcher] = {launcher}
        self._live: list[ScheduledJob] = []  # planned jobs not yet done, failed or blocked
        self._batches = Batches()
        self._flush_lock = threading.Lock()  # one batch planned at a time, in submission order
        self._finished = IndexQueue(workspace)
        self._record_warned = False
        self._warned_defaults: set[str] = set()
        self._warmed: set[Launcher] = set()  # launchers told a job of theirs must launch

    def start(self) -> None:
        """Start the scheduler thread."""
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"xpmstore-{self.name}")
        self._thread.start()

    # --- submitted jobs, planned in batches -----------------------------------------------------

    def add(self, jobs: list[ScheduledJob]) -> None:
        """Take submitted jobs: planned within a batch's delay, or at once when the batch is
        full (then in this thread)."""
        first, full = self._batches.add(jobs)
        if first and jobs and jobs[-1].launcher not in self._warmed \
                and not taskdirs.is_done(jobs[-1].taskdir):  # one stat a batch
            self._warm(jobs[-1].launcher)  # it will run: its helpers start while jobs come
        if full:
            self._flush_batch()
        elif first:
            self._events.put(None)  # the scheduler thread plans it when it is due

    def _flush_batch(self) -> None:
        """Plan and record the submitted jobs not planned yet (one batch, one gc lock).  Never
        raises: when the batch cannot be planned or recorded (a full disk, a file system
        without locks), its jobs fail with that reason and the run goes on to its end."""
        with self._flush_lock:
            batch = self._batches.take()
            if not batch:
                return
            try:
                decisions = plan_batch(self.workspace, batch, self._remote, self.record)
                with self._cond:
                    for job in batch:
                        decision = decisions[job.identifier]
                        job.reason = decision.reason
                        self._register(job)
                        if decision.action == "reuse":
                            self._finished.reused(job)
                            self._done(job, "reused")
                        else:
                            job.pull = decision.action == "pull"
                            self._live.append(job)
                            if decision.action == "run":
                                self._warm(job.launcher)
                self._events.put(None)
                warn_changed_defaults([j for j in batch if j.status is _DONE],
                                      self._warned_defaults)
            except Exception as exc:
                self._not_planned(batch, exc)

    def _warm(self, launcher: Launcher) -> None:
        """Tell ``launcher`` that a job of its must launch (:meth:`Launcher.warm`: the local
        launcher starts its zygote), once: never when every job is done.  Never raises: a
        helper that cannot start fails the jobs it launches, with that error."""
        if launcher in self._warmed:
            return
        self._warmed.add(launcher)
        try:
            launcher.warm()
        except Exception as exc:
            _say(f"xpmstore: warning: the {launcher.describe()} launcher: {describe_error(exc)}")

    def _register(self, job: ScheduledJob) -> None:
        self.jobs[job.identifier] = job
        self.order.append(job)
        self._launchers.add(job.launcher)

    def _not_planned(self, batch: list[ScheduledJob], exc: Exception) -> None:
        """Fail the jobs of a batch that could not be planned (nothing of them was claimed)."""
        detail = f"not planned: {describe_error(exc)}"
        with self._cond:
            for job in batch:
                if job.identifier in self.jobs:
                    continue  # registered before the error
                self._register(job)
                job.status, job.detail = _FAILED, detail[:500]
                self.progress.finished_job(job.identifier, job.name, "failed", job.detail)
            self._cond.notify_all()

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
            due = self._batches.due_in()
            if due is not None and due <= 0 and not self._stop:
                self._flush_batch()  # outside the condition: add() may be flushing too
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
                if self._finished.due():
                    self._finished.flush()
                self._cond.notify_all()
            if self.record.git_poll_in() is not None:
                self.record.record_git()  # its line as soon as git has answered

    def _abandon(self, exc: BaseException) -> None:
        """The scheduler thread met an error it cannot pin on one job: every job not finished
        fails with it (running jobs go on in their own sessions, like after ``kill -9`` of the
        scheduler: the next run waits for them), and the run ends."""
        detail = f"scheduler error: {describe_error(exc)}"[:500]
        _say(f"xpmstore: {detail}")
        with self._cond:
            for job in self._live:
                if job.status in FINAL:
                    continue
                if job.ahead and job.status is _PENDING:
                    self._unclaim(job)
                job.status, job.detail, job.ahead = _FAILED, detail, False
                self.progress.finished_job(job.identifier, job.name, "failed", detail)
            self._live = []
            self._stop = True
            self._cond.notify_all()

    def _next_wakeup(self) -> float:
        now = time.time()
        with self._lock:
            waits = [j.poll_at - now for j in self._live if j.status is _WAITING]
            flush = self._finished.due_in()
        batch = self._batches.due_in()
        waits += [due for due in (flush, batch, self.record.git_poll_in()) if due is not None]
        return max(0.001, min(waits, default=1.0))

    # --- a step ---------------------------------------------------------------------------------

    def _step(self) -> None:
        """Carry out the step rules' decisions; again while one of them turned out otherwise
        than decided (a claim found the job done or held, a launch failed): its worker is free,
        and its dependents may go on."""
        again = True
        while again:
            again = False
            capacity: dict[Hashable, int | None] = {
                launcher: launcher.capacity() for launcher in self._launchers}
            try:
                for decision in next_step(self._live, self.jobs, capacity, time.time()):
                    again |= self._carry_out(decision)
            finally:
                self._live = [j for j in self._live if j.status not in FINAL]

    def _carry_out(self, decision: Decision[ScheduledJob]) -> bool:
        """Carry ``decision`` out; returns whether it turned out otherwise than decided.  An
        error fails the job alone (a full disk, a lock, its launcher)."""
        job, action = decision.job, decision.action
        try:
            if action is Action.START or action is Action.CLAIM_AHEAD:
                chain = self._chain(decision.after)
                if chain is None:
                    return False  # a dependency cannot be chained yet: wait for it to end
                try:
                    if action is Action.START:
                        return self._start(job, chain)
                    return self._claim_ahead(job)
                except Exception as exc:
                    job.ahead = False
                    self._launch_failed(job, exc)
                    return True
            if action is Action.PULL:
                assert self._remote is not None  # a pull is planned only with a remote
                job.pull, job.pulling, job.status = False, True, _RUNNING
                self.progress.started_job(job.identifier, job.name, "pulling")
                self._remote.start_pull(job.identifier, self._on_pulled)
            elif action is Action.BLOCK:
                job.status = _BLOCKED
                job.detail = f"dependency {self.jobs[decision.cause].name}" \
                             f" {decision.cause[:12]} failed"
                self.progress.finished_job(job.identifier, job.name, "blocked", job.detail)
            elif action is Action.POLL:
                self._check_holder(job)
                return job.status is not _WAITING
            return False
        except Exception as exc:  # about this job only (a full disk, a lock): it fails
            pending = job.status is _PENDING  # else another process holds it, or a pull
            self._fail(job, describe_error(exc), record=pending, unclaim=pending)
            return True

    def _start(self, job: ScheduledJob, chain: list[tuple[str, Path]]) -> bool:
        """Claim ``job`` (unless claimed ahead) and launch it, chained after the jobs of
        ``chain`` (:meth:`_chain`); returns whether it turned out otherwise (done or held
        already, or its chain refused)."""
        if not job.ahead and not self._claim(job):
            return True
        job.ahead = False
        hook_job = Job(config=job.task, taskdir=job.taskdir)
        for hook in job.hooks:
            hook.process(hook_job, job.launcher)
        if self._remote is not None and self._remote.down:  # jobs don't pay its timeout again
            hook_job.environ["XPMSTORE_REMOTE_DOWN"] = "1"
        modules, scripts = job.modules_and_scripts()
        job.status = _RUNNING
        self.progress.started_job(job.identifier, job.name)
        request = LaunchRequest(
            job.identifier, job.taskdir, hook_job.environ, job.tags, modules, scripts,
            fresh_process=job.fresh, on_exit=self._on_exit, after=tuple(r for r, _ in chain),
            after_dirs=tuple(d for _, d in chain), options=hook_job.launcher_options)
        try:
            job.pid = job.launcher.launch(request)
        except ChainRefused:  # submit it without afterok once its dependencies are done
            self._unclaim(job)
            job.status, job.chain = _PENDING, False
            return True
        return False

    def _claim_ahead(self, job: ScheduledJob) -> bool:
        """Prepare and claim ``job`` while the workers are busy; returns whether it turned out
        otherwise (done or held already)."""
        if not self._claim(job):
            return True
        job.ahead = True
        self.progress.queued_job(job.identifier, job.name)
        return False

    def _chain(self, after: tuple[str, ...]) -> list[tuple[str, Path]] | None:
        """The (launcher's reference, task directory) of each job of ``after`` not done yet,
        which a chaining launcher (Slurm) submits a job after; None when one has no reference
        (it ended, or may be retried as a new Slurm job)."""
        chain = []
        for identifier in after:
            dependency = self.jobs[identifier]
            if dependency.status is _DONE:
                continue
            if dependency.status is not _RUNNING or dependency.pulling:
                return None
            reference = dependency.launcher.job_reference(identifier)
            if reference is None:
                return None
            chain.append((reference, dependency.taskdir))
        return chain

    def _launch_failed(self, job: ScheduledJob, exc: Exception) -> None:
        """A job could not be launched (a SubmitHook raised, the launcher or the disk failed):
        it fails with that error, its dependents are blocked, and the other jobs go on."""
        self._fail(job, f"not launched: {describe_error(exc)}", unclaim=True)

    def _fail(self, job: ScheduledJob, detail: str, record: bool = True,
              unclaim: bool = False) -> None:
        """``job`` fails with ``detail``; with ``record``, its state file says so (when the
        disk lets it); with ``unclaim`` (a job claimed, never launched), a launch record naming
        this scheduler is removed.  ``record=False`` for a job another process holds: its
        files are that process's."""
        job.status, job.detail, job.ahead = _FAILED, detail[:500], False
        self.progress.finished_job(job.identifier, job.name, "failed", job.detail)
        if record:
            try:
                if unclaim:
                    remove_own_launch(job.taskdir)  # when it names this scheduler
                write_state(job.taskdir, "failed", ended=time.time(), reason=job.detail)
            except OSError:
                pass  # the task directory itself may be what failed (a full disk)
        self._cancel_chained(job)

    def _done(self, job: ScheduledJob, outcome: str) -> None:
        """``job`` is done: ``outcome`` is "done" (it ran here), "reused" (it was done) or
        "waited" (another process ran it while this run waited)."""
        job.status, job.outcome = _DONE, outcome
        self.progress.finished_job(job.identifier, job.name, outcome)

    # --- claims ---------------------------------------------------------------------------------

    def _claim(self, job: ScheduledJob) -> bool:
        """Prepare the job's directory and claim it; True when this scheduler must launch it
        (else it is done or another process holds it, and the job's status says so)."""
        taskdirs.prepare_task_dir(self.workspace, job.task)
        outcome = claim(self.workspace, job.identifier, job.taskdir, values=job.task,
                        launcher=job.launcher.describe(), tags=job.tags,
                        experiment=self.name, run=self.record.run)
        if outcome.outcome == "done":
            self._finished.reused(job)
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
            if job.ahead and job.status is _PENDING:
                job.ahead = False
                self._unclaim(job)

    @staticmethod
    def _unclaim(job: ScheduledJob) -> None:
        """Remove the claim of a job this process claimed but did not launch."""
        for remove in (remove_own_launch, remove_state):
            try:
                remove(job.taskdir)
            except OSError:
                pass

    def _reattach(self, job: ScheduledJob, holder: str) -> bool:
        """When the holder of ``job`` is a Slurm job and the job's launcher follows such jobs
        (:meth:`Launcher.adopt`): follow it like a job of ours (its end comes as an exit
        event).  Else False."""
        slurm_job_id = (read_launch(job.taskdir) or {}).get("slurm_job_id")
        if not slurm_job_id or not job.launcher.keeps_running:
            return False
        self._set_reason(job, f"waited:{holder}")
        job.status = _RUNNING
        self.progress.started_job(job.identifier, job.name)
        job.launcher.adopt(job.identifier, job.taskdir, str(slurm_job_id), self._on_exit)
        return True

    def _set_reason(self, job: ScheduledJob, reason: str) -> None:
        """Record a reason decided at launch time (it replaces the planned one)."""
        if reason != job.reason:
            job.reason = reason
            self.append({"type": "reason", "id": job.identifier, "reason": reason})

    def append(self, line: RunLine) -> None:
        """Append ``line`` to the run record; when the disk refuses (full), one warning for
        the run, and the run goes on (the job's own files still tell its state)."""
        try:
            self.record.append(line)
        except OSError as exc:
            if not self._record_warned:
                self._record_warned = True
                _say(f"xpmstore: warning: the run record {self.record.path} could not be"
                     f" written ({describe_error(exc)}); lines are missing from it")

    # --- jobs held by another process, and ends -------------------------------------------------

    def _wait_for(self, job: ScheduledJob, holder: str) -> None:
        job.status = _WAITING
        self._set_reason(job, f"waited:{holder}")
        job.poll_every = 0.02
        job.poll_at = time.time() + job.poll_every

    def _check_holder(self, job: ScheduledJob) -> None:
        holder = holder_state(self.workspace, job.identifier, job.taskdir)
        if holder == "done":
            self._finished.ran(job)
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
            job.status = _PENDING  # its holder died without an outcome: claim it again

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
            if job.status in FINAL:  # its outcome stands; what followed it failed
                _say(f"xpmstore: warning: {job.name} {identifier[:12]}: {describe_error(exc)}")
            else:
                job.pulling = False
                self._fail(job, describe_error(exc))

    def _handle_exit(self, job: ScheduledJob, code: int) -> None:
        identifier = job.identifier
        if job.status in FINAL:
            return  # already decided (a chained job cancelled because its dependency failed)
        if job.pulling:
            job.pulling = False
            if code == 0 and taskdirs.is_done(job.taskdir):
                self._finished.reused(job)
                self._done(job, "reused")  # the pull indexed it
            else:
                job.status = _PENDING  # rejected or failed: run it here
                self._set_reason(job, "ran:new")
            return
        job.exit_code = code
        if code == runner.EXIT_WAITED:
            self._wait_for(job, "another process")
        elif code == 0 and taskdirs.is_done(job.taskdir):
            self._finished.ran(job)
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

    def _cancel_chained(self, failed: ScheduledJob) -> None:
        """Cancel the jobs submitted with ``afterok`` on ``failed`` (and theirs, in turn):
        each fails with the reason ``dependency <name> <id>``."""
        for job in self._live:
            if job.status is not _RUNNING or failed.identifier not in job.dependencies \
                    or not job.launcher.chains:
                continue
            try:
                job.launcher.kill(job.identifier)
            except Exception as exc:  # a failed scancel: warn; the job fails all the same
                _say(f"xpmstore: warning: {exc}")
            self._fail(job, f"dependency {failed.name} {failed.identifier[:12]} failed")

    # --- the end --------------------------------------------------------------------------------

    def wait(self) -> None:
        """Wait until every job submitted is done, failed or blocked."""
        self._flush_batch()
        with self._cond:
            while self._live:
                if self._thread is None or not self._thread.is_alive():  # never happens:
                    self._abandon(RuntimeError("the scheduler thread ended"))  # never hang
                    break
                self._cond.wait(0.5)

    def failed(self) -> list[ScheduledJob]:
        """The jobs that failed, in submission order."""
        return [j for j in self.order if j.status is _FAILED]

    def interrupt(self) -> tuple[list[ScheduledJob], list[ScheduledJob]]:
        """Stop launching; SIGTERM this run's running jobs (SIGKILL after a grace, or at once
        on a second Ctrl-C) and mark them failed ``interrupted``.  Returns the jobs stopped,
        and those left running because their launcher keeps them (Slurm's)."""
        with self._cond:
            self._no_launch = True
            live = [j for j in self.order if j.status is _RUNNING and not j.pulling]
            running = [j for j in live if not j.launcher.keeps_running]
            kept = [j for j in live if j.launcher.keeps_running]
            for job in running:
                job.interrupted = True  # its exit, as it comes, says "interrupted"
                job.launcher.kill(job.identifier)
        deadline = time.time() + _INTERRUPT_GRACE
        try:
            with self._cond:
                while any(j.status is _RUNNING for j in running) and time.time() < deadline:
                    self._cond.wait(0.05)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: no more grace
        with self._cond:
            for job in running:
                if job.status is _RUNNING:
                    job.launcher.kill(job.identifier, force=True)
        end = time.time() + 5
        while any(j.status is _RUNNING for j in running) and time.time() < end:
            with self._cond:
                self._cond.wait(0.05)
        with self._cond:
            for job in running:
                job.status = _FAILED
                job.detail = "interrupted"
                try:
                    write_state(job.taskdir, "failed", exit_code=job.exit_code,
                                ended=time.time(), reason="interrupted")
                except OSError:
                    pass  # a full disk: the interrupt goes on
        return running, kept

    def close(self, outcome: str) -> None:
        """End the run: stop the thread, release unlaunched claims, flush the index, close the
        launchers and the remote (waiting for its pushes), write the run record's end line
        with ``outcome`` and the counts, and close the progress.  Never raises."""
        with self._cond:
            self._stop = True
            self._release_claims()
        self._events.put(None)
        if self._thread is not None:
            self._thread.join()
        self._finished.flush()
        for launcher in self._launchers:
            _quietly(launcher.close, f"closing the {launcher.describe()} launcher")
        if self._remote is not None:
            remote = self._remote  # waits for the pending pushes (interrupted: stops them)
            _quietly(lambda: remote.close(interrupted=outcome == "interrupted"), "the remote")
        counts = {s.value: sum(1 for j in self.order if j.status is s)
                  for s in (_DONE, _FAILED, _BLOCKED)}
        for kind in ("reused", "waited"):
            counts[kind] = sum(1 for j in self.order if j.outcome == kind)
        counts["done"] -= counts["reused"] + counts["waited"]
        record = self.record
        _quietly(lambda: record.end(outcome, **counts),
                 f"the end line of the run record {record.path}")
        self.progress.close()


def _quietly(call: Callable[[], Any], what: str) -> None:
    """Call ``call()``; an error becomes one warning line (the end of a run goes on)."""
    try:
        call()
    except Exception as exc:
        _say(f"xpmstore: warning: {what}: {describe_error(exc)}")


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"
