"""The scheduler (xpmstore.experiment): the seed's examples, reuse, failures, dry runs, errors,
interrupts, run records and what the store knows afterwards.

Every test runs real job processes (forked from the zygote, or ``python -m
xpmstore.scheduler.runner``) in a workspace under ``tmp_path``, with the tasks of
``tests/schedtasks.py``.  Tasks report what happened to them in counter files (``counters/<key>``,
one line per execution), so a count shows how many times a task really ran.  Nothing waits on a
clock: tests wait for files or conditions.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xpmstore import ExperimentFailed, Param, Task, XpmstoreError, experiment
from xpmstore.launchers import LocalLauncher
from xpmstore.scheduler.experiment import active_experiment
from xpmstore.scheduler.progress import Progress
from xpmstore.scheduler.runlog import read_run
from xpmstore.store import taskdirs
from xpmstore.store.index import Index
from xpmstore.store.lookup import Store
from xpmstore.store.taskstate import read_state
from xpmstore.store.workspace import Workspace

from ..helpers import run_python
from ..schedtasks import (
    After,
    Batched,
    Blocker,
    Counted,
    Dataset,
    Documents,
    EntersExperiment,
    Evaluate,
    Flaky,
    Model,
    ModelLearn,
    RandomFold,
    Topics,
    UseDocuments,
    UseTopics,
    lines,
)
from ..storehelpers import (
    check_done_objects,
    count_of,
    isolate,
    tree,
    wait_for,
)

# --- fixtures and helpers --------------------------------------------------------------------

HANG_DEADLINE = 120
"""Seconds after which a test that hangs fails (never an expected duration)."""


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_DEADLINE) -> Iterator[None]:
    """Fail the test (AssertionError in the main thread) instead of hanging forever when a
    scheduler never ends; harmless otherwise."""

    def expired(signum: int, frame: Any) -> None:
        raise AssertionError(f"the test hung for {seconds} s (a scheduler never ended?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    isolate(monkeypatch, tmp_path)
    with hang_guard():
        yield
    assert active_experiment() is None, "an experiment was left active"


def xp(ws: Workspace, name: str = "exp", workers: int = 2, **kwargs: Any) -> experiment:
    """An experiment that reports its progress to a string (``xp.progress.stream``)."""
    kwargs.setdefault("launcher", LocalLauncher(workers=workers))
    return experiment(ws, name, progress=Progress(name, stream=io.StringIO()), **kwargs)


def output_of(run: experiment) -> str:
    stream = run.progress.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


def runs(ws: Workspace, name: str = "exp") -> list[list[dict[str, Any]]]:
    """The run records of experiment ``name``, oldest first."""
    return [read_run(p) for p in sorted((ws.experiments / name).glob("*.jsonl"))]


def reasons(record: list[dict[str, Any]]) -> dict[str, str]:
    """identifier → the last reason a run record gives for it."""
    found: dict[str, str] = {}
    for line in record:
        if line["type"] in ("job", "reason"):
            found[line["id"]] = line["reason"]
    return found


def end_of(record: list[dict[str, Any]]) -> dict[str, Any]:
    assert record[-1]["type"] == "end", record[-1]
    return record[-1]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime (a write changes one or the other)."""
    found = {}
    for path in tree(root):
        st = os.lstat(root / path)
        found[path] = (st.st_size, st.st_mtime_ns)
    return found


def taskdir(ws: Workspace, task: Task) -> Path:
    from xpmstore.core.config import class_spec

    return ws.task_dir(class_spec(type(task)).identity_name, task.__identifier__)


# --- the seed's examples ---------------------------------------------------------------------


@pytest.mark.parametrize("fresh", [False, True], ids=["zygote", "fresh"])
def test_model_learn_sees_its_directory_tags_and_generated_path(ws: Workspace, counters: str,
                                                                fresh: bool) -> None:
    model = Model(hidden=4).tag("lr", 0.1)
    learn = ModelLearn(epochs=3, model=model, counters=counters)
    assert learn.tag("size", "small") is learn
    with xp(ws, launcher=LocalLauncher(workers=2, fresh_process=fresh)):
        out = learn.submit()
        evaluate = Evaluate(learned=out, counters=counters)
        evaluate.submit()

    directory = taskdir(ws, learn)
    assert learn.__taskdir__ == directory
    assert (directory / "params.json").is_file()
    assert (directory / "parameters.pth").read_text() == "4 3\n"
    seen = json.loads((directory / "seen.json").read_text())  # written relative to the cwd
    assert seen["cwd"] == str(directory)
    assert seen["taskdir"] == str(directory)
    assert seen["maintaskdir"] == str(directory)  # the sub-config's main task
    assert seen["parameters"] == str(directory / "parameters.pth")
    assert seen["tags"] == {"lr": 0.1, "size": "small"}
    # Evaluate read ModelLearn's output: it ran after it, in its own directory.
    assert (taskdir(ws, evaluate) / "score.txt").read_text() == "4 3\n"
    assert count_of(counters, "learn-3") == 1
    assert count_of(counters, "evaluate") == 1
    learned = read_state(directory)
    evaluated = read_state(taskdir(ws, evaluate))
    assert learned["state"] == evaluated["state"] == "done"
    assert evaluated["started"] >= learned["ended"]
    # Tags propagate through task references; Evaluate depends on ModelLearn.
    record = runs(ws)[0]
    jobs = {line["id"]: line for line in record if line["type"] == "job"}
    assert jobs[evaluate.__identifier__]["tags"] == {"lr": 0.1, "size": "small"}
    assert jobs[evaluate.__identifier__]["dependencies"] == [learn.__identifier__]
    assert jobs[learn.__identifier__]["dependencies"] == []
    check_done_objects(ws)


def test_random_fold_outputs_mark_topics_not_documents(ws: Workspace, counters: str,
                                                       tmp_path: Path) -> None:
    source = tmp_path / "topics.tsv"
    source.write_text("q1\nq2\nq3\nq4\n")
    documents = Documents(name="collection")
    dataset = Dataset(topics=Topics(path=source), documents=documents)
    release = tmp_path / "release"
    fold = RandomFold(dataset=dataset, counters=counters, release=str(release))
    with xp(ws, workers=2):
        out = fold.submit()
        assert isinstance(out, Dataset)
        use_topics = UseTopics(topics=out.topics, counters=counters)
        use_documents = UseDocuments(documents=out.documents, counters=counters)
        use_topics.submit()
        use_documents.submit()
        # UseDocuments does not depend on RandomFold: it completes while the fold waits for
        # its release file...
        wait_for(lambda: taskdirs.is_done(taskdir(ws, use_documents)), "UseDocuments done")
        wait_for(lambda: count_of(counters, "fold") == 1, "RandomFold to start")
        assert not taskdirs.is_done(taskdir(ws, fold))
        assert count_of(counters, "use-topics") == 0  # ...and UseTopics waits for the fold
        release.write_text("go")

    assert os.fspath(out.topics.path) == str(taskdir(ws, fold) / "topics.tsv")
    assert (taskdir(ws, fold) / "topics.tsv").read_text() == "q1\nq2\n"
    assert (taskdir(ws, use_topics) / "copy.tsv").read_text() == "q1\nq2\n"
    assert (taskdir(ws, use_documents) / "name.txt").read_text() == "collection"
    fold_state = read_state(taskdir(ws, fold))
    assert read_state(taskdir(ws, use_topics))["started"] >= fold_state["ended"]
    assert read_state(taskdir(ws, use_documents))["ended"] <= fold_state["ended"]
    # The unmarked documents are the dataset's own: same identity as without the fold.
    assert use_documents.__identifier__ == UseDocuments(documents=documents).__identifier__
    jobs = {line["id"]: line for line in runs(ws)[0] if line["type"] == "job"}
    assert jobs[use_topics.__identifier__]["dependencies"] == [fold.__identifier__]
    assert jobs[use_documents.__identifier__]["dependencies"] == []


# --- reuse and what submit returns -----------------------------------------------------------


def _learn_and_evaluate(counters: str) -> tuple[ModelLearn, Evaluate]:
    learn = ModelLearn(epochs=5, model=Model(hidden=8), counters=counters)
    return learn, Evaluate(learned=learn, counters=counters)


def test_second_experiment_reuses_everything(ws: Workspace, counters: str) -> None:
    with xp(ws):
        for task in _learn_and_evaluate(counters):
            task.submit()
    before = {key: count_of(counters, key) for key in ("learn-5", "evaluate")}
    assert before == {"learn-5": 1, "evaluate": 1}

    with xp(ws) as second:
        learn, evaluate = _learn_and_evaluate(counters)  # new, equal instances
        out = evaluate.submit()
        assert out is evaluate
        learn.submit()
    assert {key: count_of(counters, key) for key in before} == before
    last = runs(ws)[-1]
    assert reasons(last) == {learn.__identifier__: "reused:local",
                             evaluate.__identifier__: "reused:local"}
    assert end_of(last)["outcome"] == "ok"
    assert second.progress.counts["reused"] == 2
    assert "0 done, 2 reused, 0 failed" in output_of(second)
    # Reused outputs are bound to the workspace.
    assert Path(learn.parameters).read_text() == "8 5\n"


def test_no_zygote_is_started_when_every_task_is_done(ws: Workspace, counters: str) -> None:
    with xp(ws):
        for task in _learn_and_evaluate(counters):
            task.submit()
    empty = LocalLauncher(workers=2)
    with xp(ws, launcher=empty):
        pass
    done = LocalLauncher(workers=2)
    with xp(ws, launcher=done) as again:
        for task in _learn_and_evaluate(counters):
            task.submit()
    assert again.progress.counts["reused"] == 2
    assert empty._zygotes == [] and done._zygotes == []  # every zygote the launcher started

    later = LocalLauncher(workers=2)  # done tasks first, one to run in a later batch
    with xp(ws, launcher=later) as third:
        for task in _learn_and_evaluate(counters):
            task.submit()
        wait_for(lambda: third.progress.counts["reused"] == 2, "the first batch planned")
        assert later._zygotes == []
        ModelLearn(epochs=6, model=Model(hidden=8), counters=counters).submit()
    assert third.progress.counts["done"] == 1
    assert count_of(counters, "learn-6") == 1
    assert len(later._zygotes) == 1


def test_submit_returns_task_outputs_and_submits_references(ws: Workspace,
                                                            counters: str) -> None:
    learn, evaluate = _learn_and_evaluate(counters)
    own = LocalLauncher(workers=1)
    with xp(ws, workers=2):
        returned = evaluate.submit(launcher=own)  # learn was never submitted
    assert returned is evaluate  # the default task_outputs is dep(self)
    assert count_of(counters, "learn-5") == 1
    assert count_of(counters, "evaluate") == 1
    record = runs(ws)[0]
    assert reasons(record) == {learn.__identifier__: "ran:new",
                               evaluate.__identifier__: "ran:new"}
    # The referenced task went to the same launcher as the task that references it.
    for task in (learn, evaluate):
        launch = json.loads((taskdir(ws, task) / ".xpm" / "launch.json").read_text())
        assert launch["launcher"] == own.describe() == "local(workers=1)"


class Sized(Task):
    """Run in this process by ``objects.run_here`` (never by a job): its size default is 1."""

    __xpmid__ = "tests.experiment.Sized"
    size: Param[int] = 1

    def execute(self) -> None:
        (self.__taskdir__ / "size.txt").write_text(str(self.size))


class SizedNow(Task):
    """The same task after its default changed to 2 (same identity name)."""

    __xpmid__ = "tests.experiment.Sized"
    size: Param[int] = 2

    def execute(self) -> None:  # pragma: no cover - reused, never run
        raise AssertionError("a reused task ran")


def test_reuse_after_a_default_changed_warns(ws: Workspace,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    taskdirs.run_here(ws, Sized())
    assert SizedNow().__identifier__ == Sized().__identifier__  # defaults are left out
    with xp(ws):
        SizedNow().submit()
    warnings = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert warnings == ["xpmstore: warning: SizedNow.size: reused a result made when its default"
                        " was 1; it is now 2 (bump a Constant to invalidate)"]
    assert reasons(runs(ws)[0]) == {Sized().__identifier__: "reused:local"}


def test_submitting_twice_makes_one_job(ws: Workspace, counters: str) -> None:
    with xp(ws):
        first = Counted(n=4, counters=counters).submit()
        second = Counted(n=4, counters=counters).submit()
        assert first.__identifier__ == second.__identifier__
    assert count_of(counters, "counted-4") == 1
    assert len([x for x in runs(ws)[0] if x["type"] == "job"]) == 1


def test_the_default_workspace_comes_from_the_environment(
        tmp_path: Path, counters: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPMSTORE_WORKSPACE", str(tmp_path / "from-env"))
    task = Counted(n=6, counters=counters)
    with experiment(None, "env", launcher=LocalLauncher(workers=1),
                    progress=Progress("env", stream=io.StringIO())):
        task.submit()
    assert task.__taskdir__.parent.parent.parent == tmp_path / "from-env"
    assert taskdirs.is_done(task.__taskdir__)
    assert len(list((tmp_path / "from-env" / "experiments" / "env").glob("*.jsonl"))) == 1


def test_store_lookups_inside_an_experiment_are_roots_of_the_run(ws: Workspace,
                                                                 counters: str) -> None:
    with xp(ws, "make"):
        Counted(n=7, counters=counters).submit()
    with xp(ws, "use"):
        Store(ws).outputs(Counted(n=7))
    roots = [x["id"] for x in runs(ws, "use")[0] if x["type"] == "root"]
    assert roots == [Counted(n=7).__identifier__]


def test_submit_refuses_what_is_not_a_task(ws: Workspace) -> None:
    with xp(ws) as run, pytest.raises(TypeError, match="Model"):
        run.submit(Model(hidden=1))  # type: ignore[arg-type]


# --- failures --------------------------------------------------------------------------------


def test_failure_blocks_dependents_then_runs_again(ws: Workspace, counters: str,
                                                   tmp_path: Path) -> None:
    flag = tmp_path / "flag"

    def tasks() -> tuple[Flaky, After, Counted]:
        flaky = Flaky(n=1, counters=counters, flag=str(flag))
        return flaky, After(previous=flaky, label="x", counters=counters), Counted(
            n=1, counters=counters)

    flaky, after, independent = tasks()
    with pytest.raises(ExperimentFailed) as info, xp(ws) as first:
        for task in (flaky, after, independent):
            task.submit()
    directory = taskdir(ws, flaky)
    stderr = directory / "stderr"
    assert info.value.failed == [(flaky.__identifier__, "tests.sched.Flaky", str(stderr))]
    message = str(info.value)
    assert "\n" not in message
    assert "tests.sched.Flaky" in message and str(stderr) in message
    assert "1 job(s) failed" in message
    log = stderr.read_text()
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: flaky task 1: no flag file yet" in log
    assert (directory / "stdout").read_text() == "flaky attempt 1\n"
    assert count_of(counters, "flaky-1") == 1
    assert count_of(counters, "after-x") == 0  # blocked by the failure
    assert count_of(counters, "counted-1") == 1  # the independent task went on
    assert not taskdirs.is_done(directory)
    assert read_state(directory)["state"] == "failed"
    end = end_of(runs(ws)[0])
    assert (end["outcome"], end["done"], end["failed"], end["blocked"]) == ("failed", 1, 1, 1)
    shown = output_of(first)
    assert f"blocked  tests.sched.After {after.__identifier__[:12]}" in shown
    assert "1 done, 0 reused, 1 failed, 1 blocked" in shown
    store = Store(ws)
    assert store.status(flaky) == "failed"
    assert store.status(after) == "absent"

    flag.write_text("")
    flaky, after, independent = tasks()
    with xp(ws):
        for task in (flaky, after, independent):
            task.submit()
    assert count_of(counters, "flaky-1") == 2
    assert count_of(counters, "after-x") == 1
    assert count_of(counters, "counted-1") == 1
    assert taskdirs.is_done(directory)
    # The failed attempt's logs moved aside; the new ones start afresh.
    attempt = directory / ".xpm" / "attempts" / "1"
    assert (attempt / "stdout").read_text() == "flaky attempt 1\n"
    assert "no flag file yet" in (attempt / "stderr").read_text()
    assert json.loads((attempt / "state.json").read_text())["state"] == "failed"
    assert (directory / "stdout").read_text() == "flaky attempt 2\n"
    assert "Traceback" not in (directory / "stderr").read_text()
    assert reasons(runs(ws)[-1]) == {flaky.__identifier__: "ran:failed-before",
                                     after.__identifier__: "ran:new",
                                     independent.__identifier__: "reused:local"}
    check_done_objects(ws)


@pytest.mark.parametrize("fresh", [False, True], ids=["zygote", "fresh"])
def test_a_rerun_sees_todays_meta_values(ws: Workspace, counters: str, fresh: bool) -> None:
    from xpmstore import load

    def run() -> experiment:
        return xp(ws, launcher=LocalLauncher(workers=1, fresh_process=fresh))

    with pytest.raises(ExperimentFailed), run():
        Batched(batch=64, counters=counters).submit()
    directory = taskdir(ws, Batched(batch=64))
    assert "batch 64 does not fit" in read_state(directory)["reason"]
    with run():
        Batched(batch=16, counters=counters).submit()  # same identifier, another Meta value
    assert lines(counters, "batched-0") == ["64", "16"]
    assert (directory / "batch.txt").read_text() == "16"
    loaded = load(directory)
    assert isinstance(loaded, Batched) and loaded.batch == 16
    # The failed attempt keeps the values it ran with; show tells them apart from today's.
    from xpmstore.admin.show import describe

    details = describe(ws, directory.name)
    assert details.values is not None and details.values["batch"] == 16
    assert [(a["attempt"], a["state"], (a["values"] or {}).get("batch"))
            for a in details.attempts] == [(1, "failed", 64)]
    before = (directory / "params.json").read_bytes()
    with run() as third:  # reused: the done task keeps the values it was made with
        Batched(batch=8, counters=counters).submit()
    assert "1 reused" in output_of(third)
    assert lines(counters, "batched-0") == ["64", "16"]
    assert (directory / "params.json").read_bytes() == before
    check_done_objects(ws)


def test_a_reused_task_adds_its_tags_to_the_index(ws: Workspace, counters: str) -> None:
    def counted() -> Counted:
        return Counted(n=3, counters=counters)

    with xp(ws):
        counted().tag("seed", 1).submit()
    identifier = counted().__identifier__
    with xp(ws) as second:  # reused (planned so): its tags join the index's
        counted().tag("model", "small").submit()
    assert "1 reused" in output_of(second)
    store = Store(ws)
    assert store.get(identifier).tags == {"seed": 1, "model": "small"}
    assert Index.for_workspace(ws).by_tag("model", "small") == [identifier]
    assert [r.identifier for r in store.find(Counted, tags={"model": "small"})] == [identifier]
    with xp(ws):  # a name keeps the value the index knew first
        counted().tag("seed", 2).tag("lr", 0.5).submit()
    assert store.get(identifier).tags == {"seed": 1, "model": "small", "lr": 0.5}
    assert Index.for_workspace(ws).by_tag("seed", 2) == []
    assert count_of(counters, "counted-3") == 1
    store.rebuild()  # the disk keeps the tags it was made with; the union is the index's
    assert store.get(identifier).tags == {"seed": 1}


def test_a_task_waited_for_keeps_the_tags_of_both_submissions(ws: Workspace, counters: str,
                                                             tmp_path: Path) -> None:
    release = tmp_path / "release"
    blocker = Blocker(key="w", counters=counters, release=str(release))
    script = f"""
import io, sys
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from xpmstore import experiment
from xpmstore.scheduler.progress import Progress
from tests.schedtasks import Blocker
with experiment({str(ws.root)!r}, "other", progress=Progress("other", stream=io.StringIO())):
    Blocker(key="w", counters={counters!r}, release={str(release)!r}).tag("by", "other").submit()
"""
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_for(lambda: count_of(counters, "started-w") == 1, "the other run's job to start")
        with xp(ws):
            blocker.tag("by", "me").tag("mine", True).submit()
            wait_for(lambda: bool(runs(ws, "exp")) and "waited:" in json.dumps(
                runs(ws, "exp")[-1]), "this run to wait for the other's job")
            release.write_text("")
        assert "waited:" in reasons(runs(ws, "exp")[-1])[blocker.__identifier__]
    finally:
        assert other.wait(timeout=120) == 0
    assert count_of(counters, "ended-w") == 1
    assert Store(ws).get(blocker.__identifier__).tags == {"by": "other", "mine": True}


def test_an_exception_in_the_block_interrupts_running_jobs(ws: Workspace, counters: str,
                                                           tmp_path: Path) -> None:
    blocker = Blocker(key="k", counters=counters, release=str(tmp_path / "never"))
    with pytest.raises(KeyError, match="in the block"), xp(ws):
        blocker.submit()
        wait_for(lambda: count_of(counters, "started-k") == 1, "the blocker to start")
        raise KeyError("in the block")
    directory = taskdir(ws, blocker)
    state = read_state(directory)
    assert (state["state"], state["reason"]) == ("failed", "interrupted")
    assert count_of(counters, "ended-k") == 0
    assert not taskdirs.is_done(directory)
    assert end_of(runs(ws)[0])["outcome"] == "interrupted"
    assert Store(ws).status(blocker) == "failed"


def test_ctrl_c_while_the_block_waits_interrupts_running_jobs(ws: Workspace, counters: str,
                                                              tmp_path: Path) -> None:
    blocker = Blocker(key="c", counters=counters, release=str(tmp_path / "never"))

    def press_ctrl_c() -> None:
        wait_for(lambda: count_of(counters, "started-c") == 1, "the blocker to start")
        os.kill(os.getpid(), signal.SIGINT)

    # Ctrl-C raises KeyboardInterrupt even when the suite runs in a background job (whose shell
    # made it ignore SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt), xp(ws) as run:
            blocker.submit()  # then the end of the block waits for it
    finally:
        presser.join()
        signal.signal(signal.SIGINT, previous)
    state = read_state(taskdir(ws, blocker))
    assert (state["state"], state["reason"]) == ("failed", "interrupted")
    # The progress says so too (not "killed by signal 15", the exit the interrupt caused).
    assert f"failed   tests.sched.Blocker {blocker.__identifier__[:12]} interrupted" \
        in output_of(run)
    assert count_of(counters, "ended-c") == 0
    assert end_of(runs(ws)[0])["outcome"] == "interrupted"


def test_an_index_that_cannot_be_written_never_stops_the_scheduler(
        tmp_path: Path, counters: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The index's place is taken by a file: its files cannot be made (FileExistsError).  That
    # error, raised by a flush of finished jobs, once killed the scheduler thread, and the block
    # waited for ever; the index is only an accelerator: it goes on in memory (issue 16 item
    # 5b), the jobs are done, with one warning.
    root = tmp_path / "blocked-index"
    root.mkdir()
    (root / "not-a-folder").write_text("")
    (root / "xpmstore.toml").write_text('index_path = "not-a-folder"\n')
    ws = Workspace.at(root)
    first, second = Counted(n=1, counters=counters), Counted(n=2, counters=counters)
    with xp(ws) as run:
        first.submit()
        wait_for(lambda: count_of(counters, "counted-1") == 1, "the first job")
        second.submit()
    assert count_of(counters, "counted-1") == count_of(counters, "counted-2") == 1
    assert taskdirs.is_done(taskdir(ws, first)) and taskdirs.is_done(taskdir(ws, second))
    assert end_of(runs(ws)[0])["outcome"] == "ok"
    assert "2 done, 0 reused, 0 failed" in output_of(run)
    [warning] = [line for line in capsys.readouterr().err.splitlines() if "index" in line]
    assert warning.startswith("xpmstore: cannot use the index at") and "in memory" in warning
    assert "File exists" in warning


def test_a_job_claimed_ahead_of_a_free_worker_is_queued_not_running(
        ws: Workspace, counters: str, tmp_path: Path) -> None:
    from ..clihelpers import invoke

    release = tmp_path / "release"
    first = Blocker(key="q1", counters=counters, release=str(release))
    second = Blocker(key="q2", counters=counters, release=str(release))
    with xp(ws, workers=1) as run:
        first.submit()
        second.submit()
        wait_for(lambda: count_of(counters, "started-q1") == 1, "the first job to start")
        wait_for(lambda: (taskdir(ws, second) / ".xpm" / "launch.json").exists(),
                 "the second job to be claimed ahead")
        statuses = {j["identifier"]: j["status"]
                    for j in json.loads(invoke(ws, "jobs", "--json").stdout)}
        assert statuses == {first.__identifier__: "running", second.__identifier__: "queued"}
        assert Store(ws).status(second) == "queued"
        shown = json.loads(invoke(ws, "show", second.__identifier__, "--json").stdout)
        assert shown["status"] == "queued"
        second_line = f"tests.sched.Blocker {second.__identifier__[:12]}"
        assert f"queued   {second_line}" in output_of(run)
        assert f"running  {second_line}" not in output_of(run)
        release.write_text("")
    assert f"running  {second_line}" in output_of(run)  # once a worker freed
    assert count_of(counters, "ended-q1") == count_of(counters, "ended-q2") == 1


# --- dry runs --------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_writes_nothing(ws: Workspace, counters: str) -> None:
    with xp(ws):
        Counted(n=1, counters=counters).submit()
    before = snapshot(ws.root)

    learn, evaluate = _learn_and_evaluate(counters)
    counted = Counted(n=1, counters=counters)
    with xp(ws, dry_run=True) as run:
        evaluate.submit()
        out = counted.submit()
        assert out is counted
    assert snapshot(ws.root) == before
    assert count_of(counters, "counted-1") == 1
    assert count_of(counters, "learn-5") == count_of(counters, "evaluate") == 0
    lines = output_of(run).splitlines()
    assert len(lines) == 3
    expected = {
        learn.__identifier__: ("run", "ran:new"),
        evaluate.__identifier__: ("run", "ran:new"),
        counted.__identifier__: ("reuse", "reused:local"),
    }
    for identifier, (action, reason) in expected.items():
        line = next(x for x in lines if identifier[:12] in x)
        assert line.startswith("[dry run]")
        assert action in line.split() and f"({reason})" in line
    assert len(runs(ws)) == 1


def test_dry_run_on_a_missing_workspace_creates_nothing(tmp_path: Path, counters: str) -> None:
    root = tmp_path / "nowhere"
    with experiment(root, "exp", dry_run=True, progress=Progress("exp", stream=io.StringIO())):
        Counted(n=2, counters=counters).submit()
    assert not root.exists()


# --- errors ----------------------------------------------------------------------------------


def test_submit_outside_an_experiment_is_a_one_line_error(counters: str) -> None:
    with pytest.raises(XpmstoreError) as info:
        Counted(n=1, counters=counters).submit()
    message = str(info.value)
    assert "\n" not in message
    assert "Counted.submit()" in message and "no active experiment" in message


@pytest.mark.parametrize("fresh", [False, True], ids=["zygote", "fresh"])
def test_an_experiment_inside_a_job_is_refused(ws: Workspace, fresh: bool) -> None:
    task = EntersExperiment(n=1)
    launcher = LocalLauncher(workers=1, fresh_process=fresh)
    with pytest.raises(ExperimentFailed) as info, xp(ws, launcher=launcher):
        task.submit()
    [(identifier, _, log)] = info.value.failed
    assert identifier == task.__identifier__
    text = Path(log).read_text()
    assert "experiment() was entered inside a job's process" in text
    assert 'if __name__ == "__main__":' in text
    assert not (taskdir(ws, task) / "nested").exists()


SCRIPT = """
import sys
from pathlib import Path
from xpmstore import Param, Task, experiment
from xpmstore.launchers import LocalLauncher

class Hello(Task):
    __xpmid__ = "script.Hello"
    n: Param[int] = 0

    def execute(self):
        Path("hello.txt").write_text(f"hello {self.n}")

GUARD
    launcher = LocalLauncher(workers=1, fresh_process=sys.argv[2] == "fresh")
    with experiment(sys.argv[1], "script", launcher=launcher):
        task = Hello(n=1)
        task.submit()
    print((task.__taskdir__ / "hello.txt").read_text())
"""


@pytest.mark.parametrize("fresh", ["zygote", "fresh"])
def test_tasks_defined_in_a_script_run(tmp_path: Path, fresh: str) -> None:
    script = tmp_path / "guarded.py"
    script.write_text(SCRIPT.replace("GUARD", 'if __name__ == "__main__":'))
    done = run_python([str(script), str(tmp_path / "ws"), fresh], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello 1"


def test_an_unguarded_script_is_told_to_guard_its_experiment(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT.replace("GUARD", "if True:"))
    # A fresh runner imports the script by path: its experiment() is refused, not started
    # again in the task directory (which would recurse, job after job).
    failed = run_python([str(script), str(tmp_path / "ws"), "fresh"], cwd=tmp_path)
    assert failed.returncode == 1
    assert "experiment() was entered inside a job's process" in failed.stderr
    [log] = (tmp_path / "ws" / "jobs").glob("script.Hello/*/stderr")
    assert 'guard the experiment with `if __name__ == "__main__":`' in log.read_text()
    assert not (log.parent / "jobs").exists()


def test_experiments_do_not_nest(ws: Workspace, counters: str) -> None:
    with xp(ws, "outer"):
        with pytest.raises(XpmstoreError, match="'outer' is already active"), xp(ws, "inner"):
            pass  # pragma: no cover - never entered
        Counted(n=3, counters=counters).submit()  # the outer experiment still works
    assert count_of(counters, "counted-3") == 1
    assert not (ws.experiments / "inner").exists()
    with pytest.raises(XpmstoreError, match="no active experiment"):
        Counted(n=3, counters=counters).submit()


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "..", "nul\0byte"])
def test_bad_experiment_names_are_refused(ws: Workspace, name: str) -> None:
    with pytest.raises(XpmstoreError) as info:
        experiment(ws, name)
    assert isinstance(info.value, ValueError)
    assert repr(name) in str(info.value)
    assert "\n" not in str(info.value)


# --- the store after an experiment -----------------------------------------------------------


def test_the_store_knows_what_the_experiment_made(ws: Workspace, counters: str) -> None:
    learn, evaluate = _learn_and_evaluate(counters)
    learn.tag("run", "a")
    with xp(ws):
        evaluate.submit()
    # The scheduler filled the index itself (no lookup has reconciled it from the disk yet).
    index = Index.for_workspace(ws)
    entry = index.get(evaluate.__identifier__)
    assert entry is not None
    assert entry["dependencies"] == [learn.__identifier__]
    assert entry["tags"] == {"run": "a"}
    assert index.get(learn.__identifier__) is not None

    store = Store(ws)
    assert store.status(learn) == store.status(evaluate) == "done"
    record = store.get(evaluate.__identifier__)
    assert record.status == "done" and record.kind == "task"
    assert record.name == "tests.sched.Evaluate"
    assert record.path == taskdir(ws, evaluate)
    assert record.dependencies == [learn.__identifier__]
    assert store.get(learn.__identifier__[:10]).identifier == learn.__identifier__
    outputs = store.outputs(ModelLearn(epochs=5, model=Model(hidden=8)))
    assert Path(outputs.parameters).read_text() == "8 5\n"
