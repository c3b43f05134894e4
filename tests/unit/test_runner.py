"""The job's process (xpmstore.scheduler.runner): it checks its dependencies' done manifests before
it runs, and publishes its launch record and running state as one document under both names.

Jobs run as ``python -m xpmstore.scheduler.runner TASKDIR`` (a real process, as the local launcher
starts fresh jobs), on a task directory prepared and claimed as the scheduler does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from xpmstore.core.config import Task, class_spec
from xpmstore.scheduler.claim import claim
from xpmstore.scheduler.runner import EXIT_FAILED, EXIT_OK
from xpmstore.store import taskdirs
from xpmstore.store.taskstate import read_launch, read_state
from xpmstore.store.workspace import Workspace

from ..helpers import REPO_ROOT, run_python
from ..schedtasks import Evaluate, Model, ModelLearn
from ..storehelpers import count_of, wait_for


def launch(ws: Workspace, task: Task) -> Path:
    """Prepare and claim ``task`` as a scheduler does; returns its directory."""
    directory = taskdirs.prepare_task_dir(ws, task)
    assert claim(ws, task.__identifier__, directory, launcher="test").outcome == "launch"
    return directory


def run(directory: Path) -> int:
    """Run the job of ``directory`` in a new process (no grace for a missing dependency);
    returns its exit code."""
    done = run_python(["-m", "xpmstore.scheduler.runner", str(directory)], cwd=REPO_ROOT,
                      env={"PYTHONPATH": str(REPO_ROOT), "XPMSTORE_DEPENDENCY_GRACE": "0"})
    return done.returncode


def test_a_dependency_manifest_seen_late_within_the_grace_is_enough(ws: Workspace,
                                                                    counters: str) -> None:
    """As on a network file system that shows a fresh file late: the job waits for it."""
    learn = ModelLearn(model=Model(hidden=7), epochs=2, counters=counters)
    assert run(launch(ws, learn)) == EXIT_OK
    done = taskdirs.prepare_task_dir(ws, learn) / ".xpm" / "done"
    hidden = done.with_name("done.hidden")
    done.rename(hidden)
    directory = launch(ws, Evaluate(learned=learn, counters=counters))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environ.update(PYTHONPATH=str(REPO_ROOT), XPMSTORE_DEPENDENCY_GRACE="60")
    job = subprocess.Popen([sys.executable, "-m", "xpmstore.scheduler.runner", str(directory)],
                           cwd=REPO_ROOT, env=environ)
    wait_for(lambda: read_state(directory).get("state") == "running", "the job to start")
    hidden.rename(done)  # the manifest shows up while the job waits for it
    assert job.wait(timeout=60) == EXIT_OK
    assert count_of(counters, "evaluate") == 1


def test_a_job_whose_dependency_is_not_done_fails_without_running(ws: Workspace,
                                                                  counters: str) -> None:
    learn = ModelLearn(model=Model(hidden=3), epochs=2, counters=counters)
    evaluate = Evaluate(learned=learn, counters=counters)
    taskdirs.prepare_task_dir(ws, learn)  # its directory exists, without a done manifest
    directory = launch(ws, evaluate)
    assert run(directory) == EXIT_FAILED
    name = class_spec(ModelLearn).identity_name
    state = read_state(directory)
    assert state["state"] == "failed" and state["exit_code"] == EXIT_FAILED
    assert state["reason"] == f"dependency {name} {learn.__identifier__[:12]} not done"
    assert count_of(counters, "evaluate") == 0  # execute() never ran
    assert not taskdirs.is_done(directory)
    assert f"dependency {name} {learn.__identifier__[:12]} not done" in (
        directory / "stderr").read_text()


def test_a_job_whose_dependency_directory_is_missing_fails_too(ws: Workspace,
                                                               counters: str) -> None:
    learn = ModelLearn(model=Model(hidden=4), epochs=2, counters=counters)
    directory = launch(ws, Evaluate(learned=learn, counters=counters))
    assert run(directory) == EXIT_FAILED
    assert read_state(directory)["reason"].endswith(f"{learn.__identifier__[:12]} not done")
    assert count_of(counters, "evaluate") == 0


def test_a_job_whose_dependencies_are_done_runs(ws: Workspace, counters: str) -> None:
    learn = ModelLearn(model=Model(hidden=5), epochs=2, counters=counters)
    assert run(launch(ws, learn)) == EXIT_OK  # in its own process (it writes to its cwd)
    evaluate = Evaluate(learned=learn, counters=counters)
    directory = launch(ws, evaluate)
    assert run(directory) == EXIT_OK
    assert taskdirs.is_done(directory)
    assert read_state(directory)["state"] == "done"
    assert count_of(counters, "evaluate") == 1
    assert (directory / "score.txt").read_text() == "5 2\n"


def test_the_launch_record_and_the_running_state_are_one_document(ws: Workspace,
                                                                  counters: str) -> None:
    """While it runs, the launch record names the job's process and the state says running;
    both were published at once (one inode), and the done state later replaces the state
    file alone."""
    learn = ModelLearn(model=Model(hidden=6), epochs=2, counters=counters)
    directory = launch(ws, learn)
    assert ws.run_lock_path(learn.__identifier__).exists()  # made by the claim
    scheduler = read_launch(directory)
    assert scheduler is not None and scheduler["pid"] == os.getpid()
    assert run(directory) == EXIT_OK
    record = read_launch(directory)
    assert record is not None
    assert record["pid"] != os.getpid() and record["launcher"] == "test"  # kept from the claim
    assert record["state"] == "running" and record["started"] <= record["time"] + 1
    done = read_state(directory)
    assert done["state"] == "done" and done["started"] == record["started"]
    launch_file, state_file = directory / ".xpm" / "launch.json", directory / ".xpm" / "state.json"
    assert launch_file.stat().st_ino != state_file.stat().st_ino  # "done" replaced it
    assert not [p for p in (directory / ".xpm").iterdir() if ".tmp-" in p.name]


def test_a_job_whose_launch_record_is_nested_too_deep_runs(ws: Workspace, counters: str) -> None:
    """A launch record the job cannot read is one it does not have: the job runs and writes
    its own (the job's process used to die with a RecursionError, writing no state)."""
    learn = ModelLearn(model=Model(hidden=8), epochs=2, counters=counters)
    directory = launch(ws, learn)
    (directory / ".xpm" / "launch.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    assert run(directory) == EXIT_OK
    record = read_launch(directory)
    assert record is not None and record["state"] == "running" and record["pid"] != os.getpid()
    assert read_state(directory)["state"] == "done"


def test_a_job_whose_launch_record_is_a_fifo_runs(ws: Workspace, counters: str) -> None:
    """Nobody writes to the fifo: the job must not wait for a writer (it used to hang)."""
    learn = ModelLearn(model=Model(hidden=9), epochs=2, counters=counters)
    directory = launch(ws, learn)
    (directory / ".xpm" / "launch.json").unlink()
    os.mkfifo(directory / ".xpm" / "launch.json")
    done = run_python(["-m", "xpmstore.scheduler.runner", str(directory)], cwd=REPO_ROOT,
                      env={"PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert done.returncode == EXIT_OK, done.stderr
    assert read_state(directory)["state"] == "done"
    record = read_launch(directory)
    assert record is not None and record["pid"] != os.getpid()  # a file again, the job's


def test_a_job_forked_from_the_zygote_imports_nothing_of_xpmstore(ws: Workspace,
                                                                  tmp_path: Path) -> None:
    # Every module a job imports after the fork is imported again by every job: the zygote's
    # preload must hold all of them (store.leases and store.taskprogress were missing).
    directory = launch(ws, ModelLearn(model=Model(hidden=3), epochs=1))
    report = tmp_path / "imported-after-the-fork.txt"
    code = (
        "import sys\n"
        "from xpmstore.scheduler import zygote\n"
        "zygote.preload()\n"
        "import tests.schedtasks\n"  # the task's module, as the zygote imports it
        "before = {m for m in sys.modules if m.startswith('xpmstore')}\n"
        "from xpmstore.scheduler import runner\n"
        f"code = runner.run_job({str(directory)!r}, heartbeat=False)\n"
        "after = {m for m in sys.modules if m.startswith('xpmstore')}\n"
        f"open({str(report)!r}, 'w').write(repr(sorted(after - before)))\n"
        "sys.exit(code)\n"
    )
    done = run_python(["-c", code], cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == EXIT_OK, done.stderr[-2000:]
    assert report.read_text() == "[]"
    assert read_state(directory)["state"] == "done"
