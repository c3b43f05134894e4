"""The scheduler's step rules: a pure function of the jobs' states, the launchers' capacities and
the dependencies (docs/scheduler.md, "Inside a run").

After every event (a job's end, a batch planned) the engine (:mod:`xpmstore.scheduler.engine`)
asks :func:`next_step` what to do and carries the decisions out, in their order.  Nothing here
touches a process or the disk, so every rule is tested without them (tests/unit/test_steps.py).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["AHEAD", "FINAL", "Action", "Decision", "JobState", "JobStatus", "next_step"]

AHEAD = 2
"""Jobs claimed ahead of a free worker, so that a worker's next job starts at once."""


class JobStatus(enum.StrEnum):
    """Where a job of the run stands (the last three are final)."""

    PENDING = "pending"  # waits for its dependencies, or for a free worker
    RUNNING = "running"  # launched (or being pulled, or another scheduler's job followed)
    WAITING = "waiting"  # another process holds it: asked again now and then
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"  # a dependency failed


FINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.BLOCKED})
"""The statuses of a job whose outcome is decided."""
_PENDING, _RUNNING, _WAITING = JobStatus.PENDING, JobStatus.RUNNING, JobStatus.WAITING
_DONE, _FAILED_OR_BLOCKED = JobStatus.DONE, frozenset({JobStatus.FAILED, JobStatus.BLOCKED})


@dataclass(eq=False)
class JobState:
    """What the rules know of one job; the engine's jobs extend it."""

    identifier: str
    dependencies: Sequence[str]
    launcher: Hashable  # the key of :func:`next_step`'s ``capacity``
    chains: bool = False  # its launcher can submit it before its dependencies end (Slurm)
    status: JobStatus = JobStatus.PENDING
    ahead: bool = False  # claimed ahead of a free worker: starts without claiming again
    pull: bool = False  # planned to be pulled from the remote
    pulling: bool = False  # a pull is in progress (its status is RUNNING)
    chain: bool = True  # may be chained (False once its launcher refused the chain)
    poll_at: float = 0.0  # WAITING: when to ask again who holds it


class Action(enum.Enum):
    """What the engine does with a job."""

    PULL = "pull"  # start pulling it from the remote
    BLOCK = "block"  # it is blocked: ``Decision.cause`` failed
    START = "start"  # claim it (unless claimed ahead) and launch it, after ``Decision.after``
    CLAIM_AHEAD = "claim-ahead"  # claim it now; it starts when a worker frees
    POLL = "poll"  # ask whether its holder is still running it


J = TypeVar("J", bound=JobState)


@dataclass(frozen=True, slots=True)
class Decision(Generic[J]):
    """One decision of a step."""

    action: Action
    job: J
    after: tuple[str, ...] = ()
    """START, CLAIM_AHEAD: the dependencies not done yet, which it is chained after (Slurm's
    afterok)."""
    cause: str = ""
    """BLOCK: the identifier of the dependency that failed (or was blocked)."""


def next_step(live: Sequence[J], jobs: Mapping[str, JobState],
              capacity: Mapping[Hashable, int | None], now: float) -> list[Decision[J]]:
    """The decisions for the jobs of ``live`` (the run's jobs not final, in submission order),
    in that order.

    ``jobs``: every job of the run by identifier (for the dependencies' states); ``capacity``:
    how many more jobs each launcher can start now (None: no bound); ``now``: the time of the
    WAITING jobs' ``poll_at``.  The rules, job by job:

    - a PENDING job planned for a pull is pulled, whatever its dependencies;
    - a PENDING job with a FAILED or BLOCKED dependency is blocked (a job blocked earlier in the
      step counts);
    - a PENDING job whose dependencies are DONE (or, on a chaining launcher, each done or
      RUNNING on a chaining launcher, or started earlier in this step there) starts while its
      launcher has capacity; when it has none, it is claimed ahead, up to :data:`AHEAD` jobs
      claimed ahead in all;
    - a WAITING job is polled once ``now`` reaches its ``poll_at``.

    Once a launcher is full and no more jobs may be claimed ahead, its PENDING jobs are passed
    over without a look at their dependencies (a cold run of n jobs would otherwise cost n²
    checks): one whose dependency failed is blocked a step later, when a worker frees.
    """
    decisions: list[Decision[J]] = []
    room = dict(capacity)
    ahead = sum(1 for job in live if job.ahead)
    blocked: set[str] = set()  # blocked in this step
    started: set[str] = set()  # started in this step on a chaining launcher
    for job in live:
        status = job.status
        if status is _PENDING:
            free = room.get(job.launcher)
            full = free is not None and free <= 0
            if full and (job.ahead or ahead >= AHEAD) and not job.pull:
                continue
            if job.pull:
                decisions.append(Decision(Action.PULL, job))
                continue
            cause = _failed_dependency(job, jobs, blocked)
            if cause is not None:
                blocked.add(job.identifier)
                decisions.append(Decision(Action.BLOCK, job, cause=cause))
                continue
            after = _startable_after(job, jobs, started)
            if after is None:
                continue
            if not full:
                decisions.append(Decision(Action.START, job, after=after))
                ahead -= job.ahead
                if free is not None:
                    room[job.launcher] = free - 1
                if job.chains:
                    started.add(job.identifier)
            elif not job.ahead and ahead < AHEAD:
                decisions.append(Decision(Action.CLAIM_AHEAD, job, after=after))
                ahead += 1
        elif status is _WAITING and now >= job.poll_at:
            decisions.append(Decision(Action.POLL, job))
    return decisions


def _failed_dependency(job: JobState, jobs: Mapping[str, JobState],
                       blocked: set[str]) -> str | None:
    """The first dependency of ``job`` that failed or is blocked, if any."""
    for identifier in job.dependencies:
        dependency = jobs.get(identifier)
        if dependency is not None and (dependency.status in _FAILED_OR_BLOCKED
                                       or identifier in blocked):
            return identifier
    return None


def _startable_after(job: JobState, jobs: Mapping[str, JobState],
                     started: set[str]) -> tuple[str, ...] | None:
    """The dependencies ``job`` starts after: none when all are done; on a chaining launcher,
    those not done when each runs (or starts in this step) on a chaining launcher too.  None
    when it cannot start yet."""
    waiting = tuple(d for d in job.dependencies if d in jobs and jobs[d].status is not _DONE)
    if not waiting:
        return ()
    if not (job.chain and job.chains):
        return None
    for identifier in waiting:
        dependency = jobs[identifier]
        if identifier in started:
            continue
        if dependency.status is not _RUNNING or dependency.pulling or not dependency.chains:
            return None
    return waiting
