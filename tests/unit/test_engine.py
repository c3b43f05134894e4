"""The engine (xpmstore.scheduler.engine) driven through an experiment by an in-process fake
launcher (tests/fakelauncher.py): no job process runs; the test ends each job by hand.

Claims, launch records, state files, run records and the index are real (a workspace under
``tmp_path``); only the launcher is a stand-in, so each test sees exactly what the engine asks of
a launcher, in which order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xpmstore import ExperimentFailed, experiment
from xpmstore.core.config import Task, class_spec
from xpmstore.scheduler import engine, exithook
from xpmstore.scheduler.claim import read_state
from xpmstore.scheduler.experiment import active_experiment
from xpmstore.scheduler.hooks import Job, SubmitHook
from xpmstore.scheduler.progress import Progress
from xpmstore.scheduler.runlog import read_run
from xpmstore.store import taskdirs
from xpmstore.store.lookup import Store
from xpmstore.store.workspace import Workspace
from xpmstore.system.locks import held_or_refused

from ..fakelauncher import FakeLauncher
from ..schedtasks import Counted, Node, set_env
from ..storehelpers import isolate, wait_for
from .test_experiment import hang_guard


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    isolate(monkeypatch, tmp_path)
    with hang_guard():
        yield
    assert active_experiment() is None, "an experiment was left active"


def run(ws: Workspace, launcher: FakeLauncher) -> experiment:
    return experiment(ws, "exp", launcher=launcher, progress=Progress("exp", stream=io.StringIO()))


def output_of(xp: experiment) -> str:
    stream = xp.progress.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


def end_line(ws: Workspace) -> dict[str, Any]:
    [path] = (ws.experiments / "exp").glob("*.jsonl")
    last = read_run(path)[-1]
    assert last["type"] == "end"
    return last


def taskdir(ws: Workspace, task: Task) -> Path:
    return ws.task_dir(class_spec(type(task)).identity_name, task.__identifier__)


def ids(*tasks: Task) -> list[str]:
    return [t.__identifier__ for t in tasks]


def test_jobs_start_in_dependency_order_and_within_the_workers(ws: Workspace) -> None:
    # a <- b, a <- c, (b, c) <- d; e and f independent.
    a = Node(i=1)
    b, c = Node(i=2, parents=[a]), Node(i=3, parents=[a])
    d = Node(i=4, parents=[b, c])
    e, f = Node(i=5), Node(i=6)
    launcher = FakeLauncher(workers=2)
    with run(ws, launcher) as xp:
        for task in (d, e, f):
            task.submit()
        assert launcher.wait_running(2) == ids(a, e)
        launcher.complete(a.__identifier__)
        assert launcher.wait_running(2) == ids(e, b)
        launcher.complete(b.__identifier__)
        assert launcher.wait_running(2) == ids(e, c)  # d waits for c, f is claimed ahead
        launcher.complete(c.__identifier__)
        assert launcher.wait_running(2) == ids(e, d)
        for task in (e, d):
            launcher.complete(task.__identifier__)
        assert launcher.wait_running(1) == ids(f)
        launcher.complete(f.__identifier__)
    assert launcher.launched == ids(a, e, b, c, d, f)
    assert launcher.most_running == 2
    assert launcher.closed
    assert all(taskdirs.is_done(taskdir(ws, t)) for t in (a, b, c, d, e, f))
    assert [j.reason for j in xp.order] == ["ran:new"] * 6
    assert end_line(ws)["done"] == 6
    assert Store(ws).get(d.__identifier__).dependencies == ids(b, c)  # indexed


def test_the_launch_request_says_what_the_job_needs(ws: Workspace) -> None:
    class with_options(SubmitHook):
        def process(self, job: Job, launcher: Any) -> None:
            job.launcher_options["partition"] = "gpu"

    task = Counted(n=1).tag("seed", 3)
    launcher = FakeLauncher()
    with run(ws, launcher):
        task.submit(hooks=[set_env("XPMTEST_ENGINE", "on"), with_options()])
        launcher.wait_running(1)
        launcher.complete(task.__identifier__)
    request = launcher.requests[task.__identifier__]
    assert (request.identifier, request.taskdir) == (task.__identifier__, taskdir(ws, task))
    assert request.environ == {"XPMTEST_ENGINE": "on"}
    assert request.options == {"partition": "gpu"}
    assert request.tags == {"seed": 3}
    assert request.modules == ["tests.schedtasks"] and request.scripts == []
    assert request.fresh_process is False
    assert (request.after, request.after_dirs) == ((), ())
    launch = json.loads((taskdir(ws, task) / ".xpm" / "launch.json").read_text())
    assert launch["launcher"] == "fake"


def test_jobs_are_claimed_ahead_of_a_free_worker_two_at_most(ws: Workspace) -> None:
    tasks = [Counted(n=n) for n in range(5)]
    launcher = FakeLauncher(workers=1)
    with run(ws, launcher) as xp:
        for task in tasks:
            task.submit()
        launcher.wait_running(1)
        wait_for(lambda: "queued" in output_of(xp) and output_of(xp).count("queued") == 2,
                 "two jobs claimed ahead")
        claimed = [(taskdir(ws, t) / ".xpm" / "launch.json").exists() for t in tasks]
        assert claimed == [True, True, True, False, False]
        assert [Store(ws).status(t) for t in tasks[1:3]] == ["queued", "queued"]
        for task in tasks:
            assert launcher.wait_running(1) == [task.__identifier__]
            launcher.complete(task.__identifier__)
    assert launcher.launched == ids(*tasks)
    assert launcher.most_running == 1


def test_a_failure_blocks_its_dependents_and_the_rest_goes_on(ws: Workspace) -> None:
    a = Node(i=1)
    b = Node(i=2, parents=[a])
    c = Node(i=3, parents=[b])
    e = Node(i=4)
    launcher = FakeLauncher(workers=2)
    with pytest.raises(ExperimentFailed) as info, run(ws, launcher) as xp:
        c.submit()
        e.submit()
        launcher.wait_running(2)
        launcher.complete(a.__identifier__, code=1)
        launcher.complete(e.__identifier__)
    assert [f[0] for f in info.value.failed] == ids(a)
    assert launcher.launched == ids(a, e)
    statuses = {j.identifier: (j.status, j.detail) for j in xp.order}
    assert statuses[b.__identifier__] == ("blocked",
                                          f"dependency tests.sched.Node {a.__identifier__[:12]}"
                                          " failed")
    assert statuses[c.__identifier__] == ("blocked",
                                          f"dependency tests.sched.Node {b.__identifier__[:12]}"
                                          " failed")
    assert statuses[a.__identifier__] == ("failed", "exit code 1")
    assert read_state(taskdir(ws, a))["reason"] == "exit code 1"
    end = end_line(ws)
    assert (end["outcome"], end["done"], end["failed"], end["blocked"]) == ("failed", 1, 1, 2)
    assert f"blocked  tests.sched.Node {c.__identifier__[:12]}" in output_of(xp)


def test_a_claim_that_finds_its_job_held_gives_the_worker_to_the_next_job_at_once(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    # The step rules give the only worker to `held`, whose claim finds another process running
    # it: the engine steps again at once, and `free` starts in that same step, not at the next
    # event or wake-up (the first poll of `held`).
    held, free = Counted(n=1), Counted(n=2)
    log: list[str] = []
    real_step, real_claim = engine.Scheduler._step, engine.claim

    def step(self: engine.Scheduler) -> None:
        log.append("step")
        real_step(self)

    def claim(*args: Any, **kwargs: Any) -> Any:
        outcome = real_claim(*args, **kwargs)
        log.append(f"claim {args[1]} {outcome.outcome}")
        return outcome

    monkeypatch.setattr(engine.Scheduler, "_step", step)
    monkeypatch.setattr(engine, "claim", claim)
    launcher = FakeLauncher(workers=1, log=log)
    with held_or_refused(ws.run_lock_path(held.__identifier__)), run(ws, launcher) as xp:
        held.submit()
        free.submit()
        launcher.wait_running(1)
        launcher.complete(free.__identifier__)
        wait_for(lambda: xp.jobs[held.__identifier__].status == "waiting", "held to wait")
        taskdirs.finish(taskdir(ws, held), held.__identifier__, "task", "tests.sched.Counted")
    refused = log.index(f"claim {held.__identifier__} held")
    launched = log.index(f"launch {free.__identifier__}")
    assert log[refused + 1] == f"claim {free.__identifier__} launch"  # claimed ahead...
    assert "step" not in log[refused:launched]  # ...and launched in the same step
    assert launcher.launched == ids(free)
    assert [j.outcome for j in xp.order] == ["waited", "done"]
    assert [j.reason for j in xp.order] == ["waited:?", "ran:new"]


def test_a_chaining_launcher_submits_dependents_after_their_dependencies(
        ws: Workspace) -> None:
    a = Node(i=1)
    b = Node(i=2, parents=[a])
    c = Node(i=3, parents=[b])
    launcher = FakeLauncher(workers=None, chains=True)
    with run(ws, launcher):
        c.submit()
        assert launcher.wait_running(3) == ids(a, b, c)  # all at once, in one step
        for task in (a, b, c):
            launcher.complete(task.__identifier__)
    requests = launcher.requests
    assert requests[a.__identifier__].after == ()
    assert requests[b.__identifier__].after == (f"fake-{a.__identifier__}",)
    assert requests[b.__identifier__].after_dirs == (taskdir(ws, a),)
    assert requests[c.__identifier__].after == (f"fake-{b.__identifier__}",)
    assert end_line(ws)["done"] == 3


def test_a_failure_cancels_the_jobs_chained_after_it(ws: Workspace) -> None:
    a = Node(i=1)
    b = Node(i=2, parents=[a])
    c = Node(i=3, parents=[b])
    launcher = FakeLauncher(workers=None, chains=True)
    with pytest.raises(ExperimentFailed) as info, run(ws, launcher):
        c.submit()
        launcher.wait_running(3)
        launcher.complete(a.__identifier__, code=1)
    assert [f[0] for f in info.value.failed] == ids(a, b, c)
    assert launcher.killed == [(b.__identifier__, False), (c.__identifier__, False)]
    assert read_state(taskdir(ws, c))["reason"] == \
        f"dependency tests.sched.Node {b.__identifier__[:12]} failed"


def test_an_exception_in_the_block_kills_the_running_jobs(ws: Workspace) -> None:
    tasks = [Counted(n=n) for n in range(3)]
    launcher = FakeLauncher(workers=2)
    with pytest.raises(KeyError), run(ws, launcher) as xp:
        for task in tasks:
            task.submit()
        launcher.wait_running(2)
        wait_for(lambda: (taskdir(ws, tasks[2]) / ".xpm" / "launch.json").exists(),
                 "the third job claimed ahead")
        raise KeyError("in the block")
    assert launcher.killed == [(tasks[0].__identifier__, False),
                               (tasks[1].__identifier__, False)]
    for task in tasks[:2]:
        assert read_state(taskdir(ws, task))["reason"] == "interrupted"
        assert f"failed   tests.sched.Counted {task.__identifier__[:12]} interrupted" \
            in output_of(xp)
    assert not (taskdir(ws, tasks[2]) / ".xpm" / "launch.json").exists()  # claim given up
    assert end_line(ws)["outcome"] == "interrupted"


class KeptLauncher(FakeLauncher):
    """A fake launcher whose jobs outlive an interrupt, as Slurm's do."""

    name = "kept"
    keeps_running = True


def test_ctrl_c_names_the_jobs_it_stopped_and_those_left_running(ws: Workspace) -> None:
    stopped, kept = Counted(n=1), Counted(n=2)
    local, slurm_like = FakeLauncher(workers=1), KeptLauncher(workers=1)
    with pytest.raises(KeyboardInterrupt) as info, run(ws, local):
        stopped.submit()
        kept.submit(launcher=slurm_like)
        local.wait_running(1)
        slurm_like.wait_running(1)
        raise KeyboardInterrupt
    assert local.killed == [(stopped.__identifier__, False)] and slurm_like.killed == []
    assert exithook.line_of(info.value) == (
        f"experiment 'exp' interrupted: 1 job(s) stopped: tests.sched.Counted"
        f" {stopped.__identifier__[:12]} (log {taskdir(ws, stopped) / 'stderr'}); 1 job(s) left"
        f" running (kept): the next run follows them")


def test_the_experiment_marks_its_failure_and_a_ctrl_c_never_the_user_s_errors(
        ws: Workspace) -> None:
    launcher = FakeLauncher(workers=1)
    with pytest.raises(KeyError) as mine, run(ws, launcher):
        Counted(n=1).submit()
        launcher.wait_running(1)
        raise KeyError("in the block")
    assert exithook.line_of(mine.value) is None  # the user's error: its traceback shows
    with pytest.raises(ExperimentFailed) as failed, run(ws, launcher):
        Counted(n=2).submit()
        launcher.complete(launcher.wait_running(1)[0], code=1)
    assert exithook.line_of(failed.value) == str(failed.value)
    with pytest.raises(KeyboardInterrupt) as interrupt, run(ws, launcher):
        raise KeyboardInterrupt
    assert exithook.line_of(interrupt.value) == "experiment 'exp' interrupted: 0 job(s) stopped"


def test_a_job_found_done_by_its_claim_is_reused_not_launched(ws: Workspace) -> None:
    tasks = [Counted(n=n) for n in range(4)]
    last = tasks[-1]
    launcher = FakeLauncher(workers=1)
    with run(ws, launcher) as xp:
        for task in tasks:
            task.submit()
        launcher.wait_running(1)
        # Done by another process after the plan: the claim, when it comes, sees it.
        directory = taskdirs.prepare_task_dir(ws, last)
        taskdirs.finish(directory, last.__identifier__, "task", "tests.sched.Counted")
        for task in tasks[:3]:
            assert launcher.wait_running(1) == [task.__identifier__]
            launcher.complete(task.__identifier__)
    assert launcher.launched == ids(*tasks[:3])
    assert [j.outcome for j in xp.order] == ["done", "done", "done", "reused"]
    [path] = (ws.experiments / "exp").glob("*.jsonl")
    assert {"type": "reason", "id": last.__identifier__, "reason": "reused:local"} \
        in read_run(path)
    assert end_line(ws)["reused"] == 1
