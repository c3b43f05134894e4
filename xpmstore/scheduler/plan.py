"""What must run: a pure function of the job graph and of what is already there (docs/scheduler.md).

The scheduler gathers the facts (which identifiers are done locally, present in the remote,
held by a live process, failed before: :func:`xpmstore.scheduler.submission.plan_batch`) and asks
:func:`make_plan` what to do with each job; what happens during the run (a failure blocks its
dependents) is the step rules' (:mod:`xpmstore.scheduler.steps`).  Nothing here touches the disk,
so every rule is tested without one.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Decision", "Job", "make_plan", "topological_order"]


@dataclass(frozen=True)
class Job:
    """A node of the graph: a task identifier, its identity name and its dependencies."""

    identifier: str
    name: str
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """What to do with one job, and why (the reason recorded in the run record)."""

    identifier: str
    action: str  # "reuse" | "pull" | "wait" | "run"
    reason: str  # "reused:local" | "reused:remote" | "waited:<host>" | "ran:new" | ...


def topological_order(jobs: Mapping[str, Job]) -> list[str]:
    """Identifiers ordered so that every job comes after its dependencies (ties by identifier).

    Dependencies that are not in ``jobs`` are ignored.  Raises ValueError on a cycle (which
    content identifiers make impossible unless the graph was built by hand).
    """
    remaining = {i: {d for d in job.dependencies if d in jobs} for i, job in jobs.items()}
    dependents: dict[str, list[str]] = {i: [] for i in jobs}
    for identifier, deps in remaining.items():
        for dependency in deps:
            dependents[dependency].append(identifier)
    ready = sorted(i for i, deps in remaining.items() if not deps)  # a sorted list is a heap
    order: list[str] = []
    while ready:
        current = heapq.heappop(ready)  # the smallest ready identifier: O(log n), not a sort
        order.append(current)
        for dependent in dependents[current]:
            remaining[dependent].discard(current)
            if not remaining[dependent]:
                heapq.heappush(ready, dependent)
    if len(order) != len(jobs):
        raise ValueError("the job graph has a cycle")
    return order


def make_plan(
    jobs: Mapping[str, Job],
    done: Iterable[str],
    *,
    remote: Iterable[str] = (),
    held: Mapping[str, str] | None = None,
    failed_before: Iterable[str] = (),
) -> list[Decision]:
    """The decision for every job, in dependency order.

    ``done``: identifiers whose done manifest exists locally; ``remote``: present in the remote;
    ``held``: identifier → host of a live holder of its launch record; ``failed_before``: a
    previous attempt failed.  A done job is reused, never run; a job held by a live process is
    waited for; a job in the remote is pulled; anything else runs.
    """
    done_set, remote_set, failed_set = set(done), set(remote), set(failed_before)
    held = held or {}
    decisions = []
    for identifier in topological_order(jobs):
        if identifier in done_set:
            decisions.append(Decision(identifier, "reuse", "reused:local"))
        elif identifier in held:
            decisions.append(Decision(identifier, "wait", f"waited:{held[identifier]}"))
        elif identifier in remote_set:
            decisions.append(Decision(identifier, "pull", "reused:remote"))
        elif identifier in failed_set:
            decisions.append(Decision(identifier, "run", "ran:failed-before"))
        else:
            decisions.append(Decision(identifier, "run", "ran:new"))
    return decisions

