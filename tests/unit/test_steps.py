"""The step rules are a pure function of the jobs' states, the launchers' capacities and the
dependencies (xpmstore.scheduler.steps): no process, no disk."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from hypothesis import given
from hypothesis import strategies as st

from xpmstore.scheduler.steps import (
    AHEAD,
    FINAL,
    Action,
    Decision,
    JobState,
    JobStatus,
    next_step,
)

PENDING, RUNNING, WAITING = JobStatus.PENDING, JobStatus.RUNNING, JobStatus.WAITING
DONE, FAILED, BLOCKED = JobStatus.DONE, JobStatus.FAILED, JobStatus.BLOCKED


def job(identifier: str, *dependencies: str, launcher: Hashable = "local",
        status: JobStatus = PENDING, **fields: object) -> JobState:
    chains = launcher == "slurm"
    return JobState(identifier, dependencies, launcher, chains=chains, status=status,
                    **fields)  # type: ignore[arg-type]


def step(jobs: Iterable[JobState], capacity: dict[Hashable, int | None] | None = None,
         now: float = 0.0) -> list[tuple[Action, str]]:
    listed = list(jobs)
    decisions = next_step([j for j in listed if j.status not in FINAL],
                          {j.identifier: j for j in listed},
                          {"local": 1} if capacity is None else capacity, now)
    return [(d.action, d.job.identifier) for d in decisions]


def decisions_of(jobs: list[JobState], capacity: dict[Hashable, int | None],
                 now: float = 0.0) -> list[Decision[JobState]]:
    return next_step([j for j in jobs if j.status not in FINAL], {j.identifier: j for j in jobs},
                     capacity, now)


def test_jobs_start_while_their_launcher_has_capacity_then_are_claimed_ahead() -> None:
    jobs = [job(f"j{i}") for i in range(6)]
    assert step(jobs, {"local": 2}) == [
        (Action.START, "j0"), (Action.START, "j1"),
        (Action.CLAIM_AHEAD, "j2"), (Action.CLAIM_AHEAD, "j3"),
    ]
    assert AHEAD == 2


def test_a_launcher_without_bound_starts_every_ready_job() -> None:
    jobs = [job(f"j{i}", launcher="slurm") for i in range(5)]
    assert step(jobs, {"slurm": None}) == [(Action.START, f"j{i}") for i in range(5)]


def test_a_job_claimed_ahead_starts_first_and_frees_its_place_ahead() -> None:
    jobs = [job("j0"), job("j1", ahead=True), job("j2", ahead=True), job("j3")]
    # No capacity: the two claimed ahead wait, nothing more is claimed.
    assert step(jobs, {"local": 0}) == []
    # One worker frees: j0 (first in order, not claimed) starts; j3 is not claimed ahead
    # (two are already).
    assert step(jobs, {"local": 1}) == [(Action.START, "j0")]
    # j1 started meanwhile: its place ahead goes to the next job.
    jobs[0].status, jobs[1].status, jobs[1].ahead = RUNNING, RUNNING, False
    assert step(jobs, {"local": 0}) == [(Action.CLAIM_AHEAD, "j3")]


def test_a_job_starts_once_its_dependencies_are_done() -> None:
    a, b = job("a", status=RUNNING), job("b", "a")
    assert step([a, b], {"local": 4}) == []
    a.status = DONE
    assert step([a, b], {"local": 4}) == [(Action.START, "b")]
    # A dependency this run does not know of (done before it) does not hold a job back.
    assert step([job("c", "elsewhere")], {"local": 4}) == [(Action.START, "c")]


def test_a_failure_blocks_its_dependents_within_one_step_and_nothing_else() -> None:
    # a <- b <- c, d independent; a failed.
    jobs = [job("a", status=FAILED), job("b", "a"), job("c", "b"), job("d")]
    decisions = decisions_of(jobs, {"local": 4})
    assert [(d.action, d.job.identifier, d.cause) for d in decisions] == [
        (Action.BLOCK, "b", "a"), (Action.BLOCK, "c", "b"), (Action.START, "d", ""),
    ]


def test_a_blocked_dependency_blocks_too() -> None:
    assert step([job("a", status=BLOCKED), job("b", "a")], {"local": 1}) == [
        (Action.BLOCK, "b")]


def test_a_pull_goes_first_whatever_its_dependencies_and_its_launcher() -> None:
    jobs = [job("a", status=RUNNING), job("j1", ahead=True), job("j2", ahead=True),
            job("b", "a", pull=True), job("c", "failed", pull=True), job("failed", status=FAILED)]
    assert step(jobs, {"local": 0}) == [(Action.PULL, "b"), (Action.PULL, "c")]


def test_a_full_launcher_passes_over_its_jobs_once_nothing_more_may_be_claimed() -> None:
    jobs = [job("a", status=FAILED), job("j1", ahead=True), job("j2", ahead=True),
            job("b", "a")]
    # Full and two claimed ahead: b is not even looked at (n² checks in a cold run)...
    assert step(jobs, {"local": 0}) == []
    # ...until a worker frees.
    assert step(jobs, {"local": 1}) == [(Action.START, "j1"), (Action.BLOCK, "b")]


def test_each_launcher_has_its_own_capacity() -> None:
    jobs = [job("l1"), job("l2"), job("g1", launcher="gpu"), job("g2", launcher="gpu")]
    assert step(jobs, {"local": 0, "gpu": 1}) == [
        (Action.CLAIM_AHEAD, "l1"), (Action.CLAIM_AHEAD, "l2"), (Action.START, "g1"),
    ]


def test_a_waiting_job_is_polled_when_due() -> None:
    waiting = job("w", status=WAITING, poll_at=10.0)
    assert step([waiting], now=9.9) == []
    assert step([waiting], now=10.0) == [(Action.POLL, "w")]


def test_a_chaining_launcher_starts_a_job_after_its_running_dependencies() -> None:
    a = job("a", launcher="slurm", status=RUNNING)
    b = job("b", "a", "done", launcher="slurm")
    done = job("done", launcher="slurm", status=DONE)
    [decision] = decisions_of([a, b, done], {"slurm": None})
    assert (decision.action, decision.job.identifier, decision.after) == (Action.START, "b",
                                                                           ("a",))
    # Started in the same step: chained on it too (its reference comes with its launch).
    fresh = [job("x", launcher="slurm"), job("y", "x", launcher="slurm")]
    assert [(d.job.identifier, d.after) for d in decisions_of(fresh, {"slurm": None})] == [
        ("x", ()), ("y", ("x",))]


def test_no_chain_on_a_pull_a_local_job_or_after_a_refusal() -> None:
    pulling = [job("a", launcher="slurm", status=RUNNING, pulling=True),
               job("b", "a", launcher="slurm")]
    assert step(pulling, {"slurm": None}) == []
    local = [job("a", status=RUNNING), job("b", "a", launcher="slurm")]
    assert step(local, {"slurm": None, "local": 1}) == []
    refused = [job("a", launcher="slurm", status=RUNNING),
               job("b", "a", launcher="slurm", chain=False)]
    assert step(refused, {"slurm": None}) == []
    # A job of a launcher that does not chain waits for its dependencies to be done.
    on_local = [job("a", launcher="slurm", status=RUNNING), job("b", "a")]
    assert step(on_local, {"slurm": None, "local": 1}) == []


def test_the_rules_read_and_change_nothing() -> None:
    jobs = [job("a", status=FAILED), job("b", "a"), job("c"), job("d"), job("e"),
            job("w", status=WAITING, poll_at=1.0)]
    before = [vars(j).copy() for j in jobs]
    step(jobs, {"local": 1}, now=2.0)
    assert [vars(j) for j in jobs] == before


@st.composite
def _runs(draw: st.DrawFn) -> tuple[list[JobState], dict[Hashable, int | None]]:
    size = draw(st.integers(1, 14))
    jobs = []
    for index in range(size):
        deps = draw(st.sets(st.integers(0, index - 1), max_size=3)) if index else set()
        launcher = draw(st.sampled_from(["local", "gpu", "slurm"]))
        status = draw(st.sampled_from(list(JobStatus)))
        jobs.append(JobState(
            f"{index:02x}", tuple(f"{d:02x}" for d in sorted(deps)), launcher,
            chains=launcher == "slurm", status=status,
            ahead=status is PENDING and draw(st.booleans()),
            pull=status is PENDING and draw(st.booleans()),
            pulling=status is RUNNING and draw(st.booleans()),
            chain=draw(st.booleans()), poll_at=draw(st.floats(0, 2))))
    capacity: dict[Hashable, int | None] = {"local": draw(st.integers(0, 3)),
                                            "gpu": draw(st.integers(0, 2)), "slurm": None}
    return jobs, capacity


@given(_runs())
def test_decisions_keep_capacity_order_and_dependencies(
        run: tuple[list[JobState], dict[Hashable, int | None]]) -> None:
    jobs, capacity = run
    by_id = {j.identifier: j for j in jobs}
    decisions = decisions_of(jobs, capacity, now=1.0)
    position = {j.identifier: i for i, j in enumerate(jobs)}
    order = [position[d.job.identifier] for d in decisions]
    assert order == sorted(set(order))  # in the jobs' order, one decision a job at most
    for launcher, free in capacity.items():
        if free is not None:
            started = [d for d in decisions if d.action is Action.START
                       and d.job.launcher == launcher]
            assert len(started) <= free
    ahead = sum(j.ahead for j in jobs) - sum(d.job.ahead for d in decisions
                                             if d.action is Action.START)
    claimed = sum(d.action is Action.CLAIM_AHEAD for d in decisions)
    assert claimed == 0 or ahead + claimed <= AHEAD
    blocked: set[str] = set()
    for decision in decisions:
        current = decision.job
        if decision.action is Action.POLL:
            assert current.status is WAITING and current.poll_at <= 1.0
            continue
        assert current.status is PENDING
        if decision.action is Action.PULL:
            assert current.pull
            continue
        assert not current.pull
        failed = [d for d in current.dependencies
                  if by_id[d].status in (FAILED, BLOCKED) or d in blocked]
        if decision.action is Action.BLOCK:
            blocked.add(current.identifier)
            assert failed and decision.cause == failed[0]
            continue
        assert not failed
        undone = [d for d in current.dependencies if by_id[d].status is not DONE]
        assert decision.after == tuple(undone)
        assert not undone or (current.chains and current.chain)
        assert decision.action is Action.START or not current.ahead
