"""SubmitHooks (xpmstore.scheduler.hooks): gathered from a task's config tree without crossing into
other tasks, deduplicated by (type, spec()), applied once per job in the scheduler's process, their
environment visible in the job; a hook that raises fails its job only."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xpmstore import Config, ConfigTypeError, ExperimentFailed, Param, SubmitHook, Task, experiment
from xpmstore.core.config import class_spec
from xpmstore.launchers import LocalLauncher
from xpmstore.scheduler.hooks import Job, gather_hooks
from xpmstore.scheduler.progress import Progress
from xpmstore.scheduler.runlog import read_run
from xpmstore.store import taskdirs
from xpmstore.store.taskstate import read_state
from xpmstore.store.workspace import Workspace

from ..schedtasks import (
    APPLIED,
    After,
    Counted,
    DecoratedJavaTask,
    IndexCollection,
    IndexTask,
    OldJavaTask,
    UsesOldJava,
    needs_java,
    set_env,
)
from ..storehelpers import count_of, isolate
from .test_experiment import hang_guard


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    isolate(monkeypatch, tmp_path)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    APPLIED.clear()
    with hang_guard():
        yield


def xp(ws: Workspace, name: str = "hooks") -> experiment:
    return experiment(ws, name, launcher=LocalLauncher(workers=2),
                      progress=Progress(name, stream=io.StringIO()))


def taskdir(ws: Workspace, task: Task) -> Path:
    return ws.task_dir(class_spec(type(task)).identity_name, task.__identifier__)


def java_home(ws: Workspace, task: Task) -> str:
    return (taskdir(ws, task) / "java_home.txt").read_text()


# --- gathering (pure) ------------------------------------------------------------------------


class tagged(SubmitHook):
    """A hook of the tests below, with a spec given at construction."""

    def __init__(self, spec: Any):
        self.value = spec

    def spec(self) -> Any:
        return self.value


@tagged("base")
class HookedBase(Task):
    __xpmid__ = "tests.hooks.HookedBase"
    x: Param[int] = 0


@tagged("child")
class HookedChild(HookedBase):
    __xpmid__ = "tests.hooks.HookedChild"


@tagged("inner")
class HookedInner(Config):
    __xpmid__ = "tests.hooks.HookedInner"
    y: Param[int] = 0


@needs_java(11)
class HookedTask(Task):
    __xpmid__ = "tests.hooks.HookedTask"
    inner: Param[HookedInner]
    other: Param[OldJavaTask]
    again: Param[IndexCollection]  # also needs_java(11): applied once


def specs(hooks: list[SubmitHook]) -> list[tuple[str, Any]]:
    return [(type(h).__name__, h.spec()) for h in hooks]


def test_class_hooks_follow_inheritance_and_stay_on_their_class() -> None:
    assert specs(gather_hooks(HookedChild(x=1))) == [("tagged", "base"), ("tagged", "child")]
    assert specs(gather_hooks(HookedBase(x=1))) == [("tagged", "base")]


def test_gather_walks_sub_configs_but_not_other_tasks() -> None:
    task = HookedTask(inner=HookedInner(y=1), other=OldJavaTask(n=1),
                      again=IndexCollection(name="c"))
    found = specs(gather_hooks(task, [needs_java(11), needs_java(17), tagged("inner")]))
    # needs_java(8) of the referenced OldJavaTask is not gathered; duplicates apply once.
    assert found == [("needs_java", 11), ("tagged", "inner"), ("needs_java", 17)]


def test_job_carries_what_hooks_may_change(tmp_path: Path) -> None:
    job = Job(config=OldJavaTask(n=2), taskdir=tmp_path)
    assert job.environ == {} and job.launcher_options == {}
    needs_java(8).process(job, None)
    assert job.environ == {"JAVA_HOME": "/opt/java-8"}


def test_the_seeds_import_line_and_submit_hook_decorator() -> None:
    namespace: dict[str, Any] = {}
    exec("from xpmstore import SubmitHook, Job, Launcher, submit_hook_decorator", namespace)
    from xpmstore.launchers import LocalLauncher as Local

    assert issubclass(Local, namespace["Launcher"])
    assert namespace["Job"] is Job and namespace["SubmitHook"] is SubmitHook
    decorate = namespace["submit_hook_decorator"]

    @decorate(tagged("decorated"))
    class Decorated(Config):
        __xpmid__ = "tests.hooks.Decorated"

    @tagged("plain")
    class Plain(Decorated):
        __xpmid__ = "tests.hooks.Plain"

    assert [h.spec() for h in Plain.__xpm_hooks__] == ["plain"]  # type: ignore[attr-defined]
    assert [h.spec() for h in Decorated.__xpm_hooks__] == [  # type: ignore[attr-defined]
        "decorated"]
    for wrong, words in ((tagged, "instantiate it (tagged(...))"), (3, "got int")):
        with pytest.raises(ConfigTypeError) as info:
            decorate(wrong)
        assert words in str(info.value)
    with pytest.raises(ConfigTypeError) as info:
        decorate(tagged("x"))(int)
    assert "decorates a Config or Task class, not the class int" in str(info.value)


# --- applied by the scheduler ----------------------------------------------------------------


def test_a_hook_attached_with_submit_hook_decorator_reaches_its_job(ws: Workspace) -> None:
    task = DecoratedJavaTask(n=1)
    with xp(ws):
        task.submit()
    assert list(APPLIED) == [("needs_java", 17, task.__identifier__)]
    assert java_home(ws, task) == "/opt/java-17"


def test_needs_java_is_applied_once_per_job_and_does_not_leak(ws: Workspace) -> None:
    index = IndexTask(collection=IndexCollection(name="robust04"))
    old = OldJavaTask(n=1)
    uses = UsesOldJava(previous=old)
    with xp(ws):
        index.submit(hooks=[needs_java(11)])  # the same spec as the class hooks: once
        uses.submit()  # submits OldJavaTask too, with its own hook
    assert sorted(APPLIED) == sorted([
        ("needs_java", 11, index.__identifier__),
        ("needs_java", 8, old.__identifier__),
    ])
    assert java_home(ws, index) == "/opt/java-11"
    assert java_home(ws, old) == "/opt/java-8"
    assert java_home(ws, uses) == "<unset>"  # OldJavaTask's hook stays with its job


def test_hooks_are_not_applied_to_reused_jobs(ws: Workspace) -> None:
    with xp(ws):
        IndexTask(collection=IndexCollection(name="a")).submit()
    assert len(APPLIED) == 1
    with xp(ws):
        IndexTask(collection=IndexCollection(name="a")).submit()
    assert len(APPLIED) == 1


def test_per_submission_hooks_reach_only_that_job(ws: Workspace, counters: str) -> None:
    first = Counted(n=1, counters=counters)
    second = After(previous=first, counters=counters)
    with xp(ws):
        second.submit(hooks=[set_env("XPMTEST_ONLY", "second")])
    applied = list(APPLIED)
    assert applied == [("set_env", ("XPMTEST_ONLY", "second"), second.__identifier__)]


class Broken(SubmitHook):
    """A hook whose process() raises (a user's bug)."""

    def process(self, job: Job, launcher: Any) -> None:
        raise RuntimeError("the hook is broken")


def test_a_hook_that_raises_fails_its_job_and_the_rest_go_on(ws: Workspace,
                                                            counters: str) -> None:
    broken = Counted(n=1, counters=counters)
    blocked = After(previous=broken, label="b", counters=counters)
    independent = Counted(n=2, counters=counters)
    with pytest.raises(ExperimentFailed) as info, xp(ws):
        broken.submit(hooks=[Broken()])
        blocked.submit()
        independent.submit()
    assert [f[0] for f in info.value.failed] == [broken.__identifier__]
    assert "RuntimeError: the hook is broken" in str(info.value)
    assert count_of(counters, "counted-1") == 0
    assert count_of(counters, "after-b") == 0
    assert count_of(counters, "counted-2") == 1
    directory = taskdir(ws, broken)
    state = read_state(directory)
    assert state["state"] == "failed" and "the hook is broken" in state["reason"]
    # The launch record that named the scheduler is gone: nobody waits for a launch that
    # never happened.
    assert not (directory / ".xpm" / "launch.json").exists()
    [run] = sorted((ws.experiments / "hooks").glob("*.jsonl"))
    end = read_run(run)[-1]
    assert (end["outcome"], end["failed"], end["blocked"], end["done"]) == ("failed", 1, 1, 1)

    with xp(ws):  # without the broken hook it runs, as a retry
        Counted(n=1, counters=counters).submit()
    assert count_of(counters, "counted-1") == 1
    assert taskdirs.is_done(directory)
    runs = sorted((ws.experiments / "hooks").glob("*.jsonl"))
    jobs = [x for x in read_run(runs[-1]) if x["type"] in ("job", "reason")]
    assert jobs[-1]["reason"] == "ran:failed-before"
    assert json.loads((directory / ".xpm" / "launch.json").read_text())["launcher"] == \
        "local(workers=2)"
