"""``SlurmLauncher``: jobs as Slurm batch jobs on a cluster sharing the workspace's file system.

```python
gpu = SlurmLauncher(partition="gpu", time="4:00:00", gpus=1, max_retries=2)
with experiment("WORKSPACE", "exp", launcher=gpu):
    Learn(...).submit()
```

Per job it writes ``.xpm/slurm.sh`` (the job's environment from its SubmitHooks exported, then
``python -m xpmstore.scheduler.runner TASKDIR``; Slurm's own output to ``.xpm/slurm-%j.out``),
submits it with ``sbatch --parsable`` and records the Slurm job id in the launch record, where
liveness and the next scheduler find it (a scheduler started while the job is pending or running
*reattaches*: it waits for that job instead of submitting another).  One thread polls the states of
all its jobs with one ``squeue`` per poll, every 0.25 s after a change, backing off to 5 s.
At most ``max_queued`` (default 1,000) of its jobs are pending or running in Slurm at once: the
scheduler submits the others as those end (Slurm's ``MaxJobCount``, 10,000 by default, is for
the whole cluster, finished jobs included for ``MinJobAge``).

Ends: ``COMPLETED`` is done once its done manifest is seen; any other end fails the job with the
Slurm state as its reason (``TIMEOUT``, ``OUT_OF_MEMORY``, ``CANCELLED``…), unless the task's
own failure was recorded by the runner; ``TIMEOUT``, ``PREEMPTED`` and ``NODE_FAIL`` are
resubmitted in the same directory up to ``max_retries`` times.  A job Slurm no longer knows
that wrote no done manifest is failed after the task directory has been re-listed for 30 s (a
network file system can hide a fresh file that long).

Jobs whose dependencies are Slurm jobs still pending or running are submitted at once with
``--dependency=afterok:…``; if sbatch rejects that (a dependency already purged), the
dependencies' manifests are checked and the job is submitted without it.  On Ctrl-C, Slurm jobs
keep running; the next submit reattaches them.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ChainRefused, XpmstoreError
from ...store.taskdirs import is_done, is_done_listed
from ...store.taskstate import (
    SLURM_SCRIPT,
    STATE,
    SlurmRecord,
    read_launch,
    read_slurm_record,
    read_state,
    slurm_output_path,
    write_launch,
    write_slurm_record,
)
from ...system import slurmctl
from ...system.atomic import write_atomic
from ..progress import describe_error, say
from ..runner import EXIT_FAILED, EXIT_WAITED
from .base import ExitCallback, Launcher, LaunchRequest
from .local import _python_path

__all__ = ["MAX_QUEUED", "ChainRefused", "SlurmLauncher"]


_POLL_MIN = 0.25
_POLL_MAX = 5.0
_VANISH_GRACE = 30.0
MAX_QUEUED = 1000
"""Default of ``SlurmLauncher(max_queued=...)``: a tenth of Slurm's default ``MaxJobCount``."""


@dataclass
class _Tracked:
    identifier: str
    taskdir: Path
    job_id: str
    on_exit: ExitCallback
    script: Path | None = None  # None for a reattached job (not resubmitted by us)
    retries: int = 0
    state: str = "PENDING"
    gone_since: float | None = None  # when the job was first seen ended or missing
    last: slurmctl.SlurmStatus | None = None
    history: list[str] = field(default_factory=list)


class SlurmLauncher(Launcher):
    """Submit jobs to Slurm (see the module doc).  ``time`` as Slurm takes it (``"1:00:00"``),
    ``mem`` likewise (``"4G"``); ``extra`` are more sbatch arguments (``"--constraint=a100"``);
    a SubmitHook's ``job.launcher_options`` override these per job."""

    name = "slurm"
    chains = True  # takes `after`: dependencies submitted with afterok
    keeps_running = True  # jobs survive the scheduler (not killed on Ctrl-C; reattached)

    def __init__(self, partition: str | None = None, time: str | None = None,
                 cpus: int | None = None, mem: str | None = None, gpus: int | str | None = None,
                 qos: str | None = None, account: str | None = None,
                 extra: Sequence[str] = (), max_retries: int = 0,
                 poll_min: float = _POLL_MIN, poll_max: float = _POLL_MAX,
                 max_queued: int = MAX_QUEUED):
        if isinstance(extra, str):
            raise XpmstoreError("SlurmLauncher(extra=...): a list of sbatch arguments, not a"
                                f" string ({extra!r} → [{extra!r}])")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise XpmstoreError(f"SlurmLauncher(max_retries={max_retries!r}): a count >= 0")
        if isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 1:
            raise XpmstoreError(f"SlurmLauncher(max_queued={max_queued!r}): a count >= 1 (the"
                                " launcher's jobs pending or running in Slurm at once)")
        self.max_queued = max_queued
        self.options = slurmctl.SlurmOptions(partition, time, cpus, mem, gpus, qos, account,
                                             tuple(extra))
        self.max_retries = max_retries
        self.poll_min = poll_min
        self.poll_max = poll_max
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._jobs: dict[str, _Tracked] = {}
        self._reasons: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.polls = 0  # squeue calls made (for benchmarks and tests)

    def describe(self) -> str:
        """``slurm`` and the options that are set."""
        return " ".join(["slurm", *self.options.directives()])

    def capacity(self) -> int:
        """How many more jobs may be submitted: ``max_queued`` less this launcher's jobs
        pending or running in Slurm (jobs it submitted or reattached, until Slurm ends them).
        Slurm queues what it cannot start yet, up to its ``MaxJobCount`` for the whole cluster;
        the scheduler submits the rest as jobs end."""
        with self._lock:
            queued = sum(1 for t in self._jobs.values() if t.gone_since is None)
        return max(0, self.max_queued - queued)

    # --- submitting -----------------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> int:
        """Write the job's sbatch script and submit it (``request.after``: Slurm ids of
        dependencies still pending or running, ``request.after_dirs`` their task
        directories); returns 0."""
        taskdir = request.taskdir
        script = taskdir / SLURM_SCRIPT
        env = dict(request.environ)
        env.setdefault("PYTHONPATH", _job_python_path())
        chosen = self.options.merged(request.options)
        name = f"xpm-{request.identifier[:12]}"
        command = [sys.executable, "-m", "xpmstore.scheduler.runner", str(taskdir)]
        write_atomic(script, slurmctl.render_script(str(taskdir), command, chosen, env,
                                                    name).encode(), durable=False)
        job_id = self._sbatch(script, list(request.after), list(request.after_dirs))
        tracked = _Tracked(request.identifier, taskdir, job_id, request.on_exit, script)
        self._record(tracked, after=list(request.after))
        self._track(tracked)
        return 0

    def _sbatch(self, script: Path, after: list[str], after_dirs: list[Path]) -> str:
        try:
            return slurmctl.submit(str(script), after)
        except slurmctl.SlurmError as exc:
            if not after or "ependency" not in str(exc):
                raise
        # A dependency Slurm refuses (already purged): go on when every one is done, else let
        # the scheduler wait for them and submit without afterok.
        if any(not is_done(d) for d in after_dirs):
            raise ChainRefused(f"sbatch refused the dependencies {after}")
        return slurmctl.submit(str(script))

    def _record(self, tracked: _Tracked, after: list[str] | None = None,
                retried: bool = False) -> None:
        """Record the Slurm job: ``.xpm/slurm.json`` (id, afterok ids, attempt; the launcher's
        own file), and its id in the launch record while the runner has not rewritten it (the
        runner puts the id there itself, from ``XPMSTORE_SLURM_JOB_ID``)."""
        previous = read_slurm_record(tracked.taskdir)
        document: SlurmRecord = {
            "job_id": tracked.job_id, "attempt": tracked.retries,
            "after": previous.get("after", []) if after is None else after,
            "history": tracked.history, "launcher": self.describe()}
        write_slurm_record(tracked.taskdir, document)
        if retried or not (tracked.taskdir / STATE).exists():  # no runner now: ours to write
            record = read_launch(tracked.taskdir) or {}
            record.update({"slurm_job_id": tracked.job_id, "launcher": self.describe()})
            write_launch(tracked.taskdir, record)

    def adopt(self, identifier: str, taskdir: Path, job_id: str, on_exit: ExitCallback) -> None:
        """Wait for a Slurm job another scheduler submitted (reattach): report its end to
        ``on_exit`` like a job of this launcher (retried with its script on disk)."""
        script = taskdir / SLURM_SCRIPT
        attempt = read_slurm_record(taskdir).get("attempt", 0)
        self._track(_Tracked(identifier, taskdir, str(job_id), on_exit,
                             script if script.exists() else None,
                             retries=attempt if isinstance(attempt, int) else 0))

    def _track(self, tracked: _Tracked) -> None:
        with self._lock:
            self._jobs[tracked.identifier] = tracked
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll_loop, daemon=True,
                                                name="xpmstore-slurm")
                self._thread.start()
        self._wake.set()

    def job_reference(self, identifier: str) -> str | None:
        """The Slurm id of job ``identifier`` while it is pending or running (for afterok),
        unless it may still be retried: a retry is a new Slurm job, which an afterok on the
        old one would never see succeed."""
        with self._lock:
            tracked = self._jobs.get(identifier)
            if tracked is not None and tracked.script is not None \
                    and tracked.retries < self.max_retries:
                return None
            if tracked is None or tracked.state not in ("PENDING", "RUNNING", "CONFIGURING"):
                return None
            return tracked.job_id

    def kill(self, identifier: str, force: bool = False) -> None:
        """``scancel`` the Slurm job of ``identifier`` and stop following it: the caller
        records its outcome (``on_exit`` is not called for it)."""
        with self._lock:
            tracked = self._jobs.pop(identifier, None)
        if tracked is not None:
            slurmctl.cancel([tracked.job_id], force=force)

    def exit_reason(self, identifier: str) -> str | None:
        """The Slurm account of a job that failed outside its task (TIMEOUT, CANCELLED…)."""
        with self._lock:
            return self._reasons.pop(identifier, None)

    def close(self) -> None:
        """Stop polling and forget the jobs (they go on in Slurm; a later submit reattaches
        them)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._jobs.clear()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_POLL_MAX + slurmctl.COMMAND_TIMEOUT)
        with self._lock:
            self._closed = False

    # --- polling --------------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        interval = self.poll_min
        last = 0.0
        while True:
            woken = self._wake.wait(interval)
            self._wake.clear()
            if woken:  # a burst of submissions makes one poll, not one each
                self._wake.wait(max(0.0, last + self.poll_min - time.monotonic()))
                self._wake.clear()
            with self._lock:
                if self._closed or not self._jobs:
                    self._thread = None
                    return
                jobs = list(self._jobs.values())
            last = time.monotonic()
            try:
                changed = self._poll(jobs)
            except Exception as exc:  # a failed poll (Slurm or the disk): warn, poll again
                say(f"xpmstore: warning: Slurm poll failed: {describe_error(exc)}")
                changed = False
            interval = self.poll_min if (changed or woken) else min(interval * 1.5,
                                                                    self.poll_max)

    def _poll(self, jobs: list[_Tracked]) -> bool:
        """One squeue for every job; returns whether anything changed."""
        found = slurmctl.query(t.job_id for t in jobs)
        self.polls += 1
        changed = False
        now = time.monotonic()
        for tracked in jobs:
            status = found.get(tracked.job_id)
            if status is None and tracked.gone_since is None:
                status = slurmctl.accounted(tracked.job_id)  # purged from squeue: ask sacct once
            if status is not None and status.state == "PENDING" \
                    and status.reason == "DependencyNeverSatisfied":
                # afterok on a job that failed (or was retried, or rerun under a new id by a
                # later scheduler): it would wait forever.  Cancel it; the scheduler then
                # finds the job free and submits it again once its dependencies are done.
                slurmctl.cancel([tracked.job_id])
                self._finish(tracked, EXIT_WAITED)
                changed = True
                continue
            if status is not None and status.active:
                changed |= status.state != tracked.state
                tracked.state, tracked.last, tracked.gone_since = status.state, status, None
                continue
            changed = True
            if tracked.gone_since is None:
                tracked.gone_since = now
            if status is not None:
                tracked.state, tracked.last = status.state, status
            self._ended(tracked, status, now)
        return changed

    def _ended(self, tracked: _Tracked, status: slurmctl.SlurmStatus | None, now: float) -> None:
        done = is_done_listed(tracked.taskdir)
        if done:
            return self._finish(tracked, 0)
        if (
            status is not None
            and status.state in slurmctl.RETRYABLE
            and tracked.script is not None
            and tracked.retries < self.max_retries
        ):
            tracked.retries += 1
            tracked.history.append(slurmctl.describe_state(status))
            try:
                tracked.job_id = slurmctl.submit(str(tracked.script))
            except slurmctl.SlurmError as exc:
                return self._fail(tracked, f"{slurmctl.describe_state(status)}; resubmit failed:"
                                           f" {exc}", EXIT_FAILED)
            tracked.state, tracked.gone_since = "PENDING", None
            self._record(tracked, retried=True)
            return None
        if status is not None and status.state == "FAILED":
            code = slurmctl.exit_code(tracked.job_id)
            state = read_state(tracked.taskdir)
            if state.get("state") == "failed" or code == EXIT_WAITED:  # the runner's outcome
                return self._finish(tracked, code if code else EXIT_FAILED)
            log = slurm_output_path(tracked.taskdir, tracked.job_id)
            return self._fail(tracked, f"{slurmctl.describe_state(status)}, before the task ran;"
                                       f" see {log}", code or EXIT_FAILED)
        if status is not None and status.state != "COMPLETED":
            return self._fail(tracked, slurmctl.describe_state(status), EXIT_FAILED)
        # COMPLETED without a visible manifest, or vanished from Slurm: wait for the file
        # system to show it, up to the grace.
        assert tracked.gone_since is not None
        if now - tracked.gone_since < _VANISH_GRACE:
            return None
        what = "COMPLETED" if status is not None else "vanished from Slurm"
        return self._fail(tracked, f"{what} (Slurm job {tracked.job_id}) without writing its"
                                   " done manifest", EXIT_FAILED)

    def _fail(self, tracked: _Tracked, reason: str, code: int) -> None:
        """End a job with ``reason`` (the scheduler records it through :meth:`exit_reason`)."""
        if tracked.history:
            reason = f"{reason} (after {len(tracked.history)} retries: "  \
                     f"{'; '.join(tracked.history)})"
        self._finish(tracked, code if code else EXIT_FAILED, reason)

    def _finish(self, tracked: _Tracked, code: int, reason: str | None = None) -> None:
        with self._lock:
            if self._jobs.get(tracked.identifier) is not tracked:
                return  # killed meanwhile: its caller records the outcome
            del self._jobs[tracked.identifier]
            if reason:
                self._reasons[tracked.identifier] = reason
        tracked.on_exit(tracked.identifier, code)


def _job_python_path() -> str:
    """PYTHONPATH for the job: what the local launcher gives its jobs, plus this process's
    working directory when it is on ``sys.path`` as ``''`` (``python -c``, the REPL): the job
    starts in its task directory, where ``''`` would mean something else."""
    path = _python_path(os.environ.get("PYTHONPATH", ""))
    if "" in sys.path:
        path = os.pathsep.join(p for p in (os.getcwd(), path) if p)
    return path
