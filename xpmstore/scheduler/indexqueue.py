"""The jobs a run finished, on their way to the workspace's index (docs/scheduler.md, "Speed").

The index is an accelerator, refilled from the workspace (``ls``, ``gc``, ``fsck`` reconcile
it): the scheduler records finished jobs in it in bulk, at most every :data:`PERIOD` seconds and
at the end of the run, and a failure to do so costs one warning, never the run.
"""

from __future__ import annotations

import time

from ..store import taskdirs
from ..store.index import Index
from ..store.workspace import Workspace
from .progress import describe_error
from .progress import say as _say
from .submission import ScheduledJob

__all__ = ["PERIOD", "IndexQueue"]

PERIOD = 0.25
"""Finished jobs are recorded in the index at most this often (seconds), and at the end."""


class IndexQueue:
    """The finished jobs of a run not recorded in the index yet: jobs that ran (here or in
    another process: their records) and jobs reused (their tags join the index's).  Not safe
    across threads: the scheduler's lock guards it."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._ran: list[ScheduledJob] = []
        self._reused: list[ScheduledJob] = []
        self._flushed_at = 0.0
        self._warned = False

    def ran(self, job: ScheduledJob) -> None:
        """``job`` is done, made by this run or by a process it waited for."""
        self._ran.append(job)

    def reused(self, job: ScheduledJob) -> None:
        """``job`` was done before: its tags join the index's."""
        self._reused.append(job)

    def due(self) -> bool:
        """Whether a flush is due (one per :data:`PERIOD` at most)."""
        return time.monotonic() - self._flushed_at >= PERIOD

    def due_in(self) -> float | None:
        """Seconds until the jobs that ran are due to be flushed; None when there are none."""
        return self._flushed_at + PERIOD - time.monotonic() if self._ran else None

    def flush(self) -> None:
        """Record the jobs finished since the last flush in the index.  Never raises: a failure
        (a full disk, a damaged index) costs one warning for the run."""
        self._flushed_at = time.monotonic()
        tagged, self._reused = [j for j in self._reused if j.tags], []
        jobs, self._ran = self._ran, []
        try:
            if tagged:  # reused jobs: their tags join the index's
                from ..store.lookup import add_tags

                add_tags(self.workspace, [(j.identifier, j.taskdir, j.tags) for j in tagged])
            if jobs:
                self._index(jobs)
        except Exception as exc:
            if not self._warned:
                self._warned = True
                _say(f"xpmstore: warning: the index cannot record finished jobs"
                     f" ({describe_error(exc)}); they are done all the same, and the index"
                     " refills from the workspace")

    def _index(self, jobs: list[ScheduledJob]) -> None:
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
