"""The plan is a pure function of the graph and of what is there (docs/scheduler.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xpmstore.scheduler.plan import Job, make_plan, topological_order


def _chain() -> dict[str, Job]:
    # a <- b <- c, and d independent
    return {
        "a": Job("a", "A"),
        "b": Job("b", "B", ("a",)),
        "c": Job("c", "C", ("b",)),
        "d": Job("d", "D"),
    }


def test_dependencies_come_first() -> None:
    order = topological_order(_chain())
    assert order.index("a") < order.index("b") < order.index("c")
    assert sorted(order) == ["a", "b", "c", "d"]


def test_done_is_reused_and_the_rest_runs_with_its_reason() -> None:
    plan = {d.identifier: d for d in make_plan(_chain(), done={"a"}, failed_before={"c"})}
    assert (plan["a"].action, plan["a"].reason) == ("reuse", "reused:local")
    assert (plan["b"].action, plan["b"].reason) == ("run", "ran:new")
    assert (plan["c"].action, plan["c"].reason) == ("run", "ran:failed-before")


def test_held_is_waited_for_and_remote_is_pulled() -> None:
    plan = {d.identifier: d for d in make_plan(_chain(), done=(), remote={"a", "b"},
                                               held={"b": "node7"})}
    assert (plan["a"].action, plan["a"].reason) == ("pull", "reused:remote")
    assert (plan["b"].action, plan["b"].reason) == ("wait", "waited:node7")


def test_done_wins_over_everything() -> None:
    plan = make_plan({"a": Job("a", "A")}, done={"a"}, remote={"a"}, held={"a": "h"},
                     failed_before={"a"})
    assert plan[0].action == "reuse"


def test_a_cycle_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_order({"a": Job("a", "A", ("b",)), "b": Job("b", "B", ("a",))})


@st.composite
def _dags(draw: st.DrawFn) -> dict[str, Job]:
    size = draw(st.integers(1, 12))
    jobs = {}
    for index in range(size):
        deps = draw(st.sets(st.integers(0, index - 1), max_size=3)) if index else set()
        jobs[f"{index:02x}"] = Job(f"{index:02x}", "T", tuple(f"{d:02x}" for d in sorted(deps)))
    return jobs


@given(_dags(), st.data())
def test_plan_is_complete_ordered_and_never_runs_what_is_done(jobs: dict[str, Job],
                                                             data: st.DataObject) -> None:
    done = data.draw(st.sets(st.sampled_from(sorted(jobs))))
    plan = make_plan(jobs, done)
    position = {d.identifier: i for i, d in enumerate(plan)}
    assert sorted(position) == sorted(jobs)
    for job in jobs.values():
        assert all(position[dep] < position[job.identifier] for dep in job.dependencies)
    for decision in plan:
        assert (decision.action == "reuse") == (decision.identifier in done)


def _reference_order(jobs: dict[str, Job]) -> list[str]:
    """The documented order, computed the plain way: repeatedly the smallest identifier whose
    dependencies (those in the graph) are all placed."""
    placed: list[str] = []
    while len(placed) < len(jobs):
        ready = [i for i, job in jobs.items() if i not in placed
                 and all(d in placed or d not in jobs for d in job.dependencies)]
        placed.append(min(ready))
    return placed


@given(_dags())
def test_ties_are_broken_by_identifier(jobs: dict[str, Job]) -> None:
    """The order (a heap of the ready jobs) is the smallest ready identifier first, as
    documented: the same order as the plain computation."""
    shuffled = dict(sorted(jobs.items(), key=lambda item: item[0][::-1]))  # another dict order
    assert topological_order(shuffled) == _reference_order(jobs)
