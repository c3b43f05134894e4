"""``xpmstore jobs``, ``kill``, ``logs [-f]`` and ``experiments`` (xpmstore.admin.jobs,
xpmstore.scheduler.runs), with real experiment processes (tests/gctasks.py ``drive``) whose jobs
wait for release files: nothing waits on a clock, tests wait for files and conditions."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from xpmstore.store import taskdirs
from xpmstore.store.taskstate import read_state
from xpmstore.store.workspace import Workspace

from ..clihelpers import XPMSTORE, invoke, run_chain, task_dir
from ..gctasks import Talker, touch
from ..helpers import PYTHON, REPO_ROOT
from ..storehelpers import isolate, wait_for

DRIVER = "from tests.gctasks import drive; drive()"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def talker(ws: Workspace, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """An experiment process running a Talker that printed its first line and waits for its
    release file; yields (process, task directory, release file)."""
    release = tmp_path / "release"
    process = subprocess.Popen([PYTHON, "-c", DRIVER, "talker", str(ws.root), "hello",
                                str(release)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    directory = task_dir(ws, Talker(key="hello", release=str(release)))
    try:
        wait_for(lambda: read_state(directory).get("state") == "running"
                 and "line 0" in _text(directory / "stdout"), "the talker to start")
        yield process, directory, release
    finally:
        touch(release)
        if process.poll() is None:
            process.communicate(timeout=120)


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_experiments_and_jobs(ws: Workspace) -> None:
    first = run_chain(ws, "exp", 2, variant=1)
    second = run_chain(ws, "exp", 2, variant=2)
    runs = json.loads(invoke(ws, "experiments", "--json").stdout)
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert [{j["id"] for j in r["jobs"]} for r in runs] == [
        {s.__identifier__ for s in first}, {s.__identifier__ for s in second}]
    rows = [line.split("\t") for line in invoke(ws, "experiments").stdout.splitlines()]
    assert [(r[0], r[2], r[4]) for r in rows] == [("exp", "ok", "2"), ("exp", "ok", "2")]
    assert invoke(ws, "experiments", "exp").exit_code == 0
    assert invoke(ws, "experiments", "nope").exit_code == 1
    jobs = json.loads(invoke(ws, "jobs", "--json").stdout)
    assert {j["identifier"] for j in jobs} == {s.__identifier__ for s in second}
    assert {(j["status"], j["reason"]) for j in jobs} == {("done", "ran:new")}
    every = invoke(ws, "jobs", "--all").stdout.splitlines()
    assert len(every) == 4


def test_logs_of_a_finished_job(ws: Workspace) -> None:
    talker = Talker(key="done", lines=2)
    taskdirs.run_here(ws, talker)  # in this process: write its logs as the runner would
    directory = task_dir(ws, talker)
    (directory / "stdout").write_text("done line 0\ndone line 1\n")
    (directory / "stderr").write_text("done says goodbye\n")
    both = invoke(ws, "logs", talker.__identifier__[:10])
    assert both.exit_code == 0
    assert both.stdout == ("==> stdout <==\ndone line 0\ndone line 1\n"
                           "==> stderr <==\ndone says goodbye\n")
    assert invoke(ws, "logs", talker.__identifier__, "--stream", "stderr").stdout == \
        "done says goodbye\n"
    followed = invoke(ws, "logs", talker.__identifier__, "-f", "--stream", "stdout")
    assert followed.exit_code == 0 and followed.stdout == "done line 0\ndone line 1\n"
    silent = taskdirs.prepare_task_dir(ws, Talker(key="silent"))
    assert invoke(ws, "logs", silent.name).exit_code == 1


def test_jobs_shows_a_running_job_and_logs_follow_it(
        ws: Workspace, talker: tuple[subprocess.Popen[str], Path, Path]) -> None:
    process, directory, release = talker
    jobs = json.loads(invoke(ws, "jobs", "--json").stdout)
    assert [(j["identifier"], j["status"]) for j in jobs] == [(directory.name, "running")]
    runs = json.loads(invoke(ws, "experiments", "--json").stdout)
    assert [r["status"] for r in runs] == ["live"]
    follower = subprocess.Popen([XPMSTORE, "--workspace", str(ws.root), "logs", "-f",
                                 directory.name[:12]], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    assert follower.stdout is not None
    assert follower.stdout.readline() == "hello line 0\n"  # it follows the running job...
    touch(release)
    out, err = follower.communicate(timeout=120)  # ...and ends when the job ends
    assert follower.returncode == 0, err
    assert "hello line 1\nhello line 2\n" in out and "hello says goodbye\n" in out
    assert process.wait(timeout=120) == 0


def test_kill_a_running_job(ws: Workspace,
                            talker: tuple[subprocess.Popen[str], Path, Path]) -> None:
    process, directory, _ = talker
    result = invoke(ws, "kill", directory.name[:12])
    assert result.exit_code == 0, result.output
    assert "SIGTERM" in result.stdout
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0 and "failed" in err
    assert not taskdirs.is_done(directory)
    shown = json.loads(invoke(ws, "show", directory.name, "--json").stdout)
    assert shown["status"] == "failed"
    again = invoke(ws, "kill", directory.name)
    assert again.exit_code == 1 and "not running" in again.stderr


def test_kill_refuses_what_is_not_running(ws: Workspace) -> None:
    steps = run_chain(ws, "exp", 1, variant=3)
    result = invoke(ws, "kill", steps[0].__identifier__)
    assert result.exit_code == 1 and "not running" in result.stderr
    assert invoke(ws, "kill", "../1").exit_code == 2
    assert os.path.isdir(task_dir(ws, steps[0]))
