"""gc after a run that did not succeed: the done jobs of the latest run of every experiment are
roots whatever its outcome — a job failed, the scheduler was killed with ``kill -9``, or it was
interrupted with Ctrl-C (docs/cli.md).

Every experiment is a real interpreter running ``tests.gctasks.drive grid`` (a grid of cells, one
failing or one waiting for a release file); gc runs as the real ``xpmstore`` console script.
Synchronisation is on the processes' output lines and on files (done manifests, launch records);
nothing waits on a clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from xpmstore.scheduler.runs import read_runs
from xpmstore.store import taskdirs
from xpmstore.store.taskstate import launch_is_live
from xpmstore.store.workspace import Workspace

from ..clihelpers import console
from ..gctasks import Cell, grid, touch
from ..helpers import PYTHON, REPO_ROOT
from ..storehelpers import DEADLINE, isolate, make_workspace, wait_for

DRIVER = "from tests.gctasks import drive; drive()"


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    isolate(monkeypatch, tmp_path)
    return make_workspace(tmp_path / "ws")


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C's default action (a background shell ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Grid:
    """An experiment process submitting a grid: stdout piped, stderr in a file (the zygote and the
    jobs inherit it: a pipe would stay open after a kill)."""

    def __init__(self, ws: Workspace, log: Path, size: int, fail: int, block: int, files: Path):
        args = ["grid", str(ws.root), "grid", str(size), str(fail), str(block), str(files)]
        with open(log, "w") as err:
            self.process = subprocess.Popen(
                [PYTHON, "-c", DRIVER, *args], cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
                preexec_fn=_default_sigint)
        self.log = log

    def submitted(self) -> None:
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "submitted", self.log.read_text()

    def finish(self) -> int:
        try:
            self.process.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise AssertionError(f"the experiment hung:\n{self.log.read_text()}") from None
        return self.process.returncode

    def abort(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def cell_dir(ws: Workspace, cell: Cell) -> Path:
    return ws.task_dir("tests.gc.Cell", cell.__identifier__)


def done_cells(ws: Workspace, cells: list[Cell]) -> set[int]:
    return {c.i for c in cells if taskdirs.is_done(cell_dir(ws, c))}


def present(ws: Workspace) -> set[str]:
    return {d.name for d in taskdirs.list_object_dirs(ws)}


def listed(output: str) -> set[str]:
    """The identifiers of the candidate lines of gc's output (tab-separated rows)."""
    return {line.split("\t")[0] for line in output.splitlines() if "\t" in line}


def root_line(output: str, experiment: str) -> str:
    """The line of ``gc --dry-run`` that says which run of ``experiment`` roots what."""
    found = [line for line in output.splitlines() if line.strip().startswith(f"{experiment}:")]
    assert len(found) == 1, output
    return found[0]


def test_a_failed_job_keeps_the_good_results_of_its_run(ws: Workspace, tmp_path: Path) -> None:
    cells = grid(24)
    (tmp_path / "fail").touch()
    failing = Grid(ws, tmp_path / "run1.log", 24, 5, -1, tmp_path)
    try:
        failing.submitted()
        assert failing.finish() == 1
    finally:
        failing.abort()
    assert done_cells(ws, cells) == set(range(24)) - {5}
    (run,) = read_runs(ws, "grid")
    assert run.status == "failed"

    dry = console(ws, "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert listed(dry.stdout) == set(), dry.stdout
    line = root_line(dry.stdout, "grid")
    assert "latest run" in line and run.name in line and "failed" in line, line
    assert "24 objects, 23 done" in line, line

    collected = console(ws, "gc", "-y")
    assert collected.returncode == 0, collected.stderr
    assert done_cells(ws, cells) == set(range(24)) - {5}
    assert cell_dir(ws, cells[5]).is_dir()  # the failed cell's logs say why: kept too

    (tmp_path / "fail").unlink()  # "fixed": the failed cell succeeds on the next run
    fixed = Grid(ws, tmp_path / "run2.log", 24, 5, -1, tmp_path)
    try:
        fixed.submitted()
        assert fixed.finish() == 0, fixed.log.read_text()
    finally:
        fixed.abort()
    second = read_runs(ws, "grid")[-1]
    reasons = {job.identifier: job.reason for job in second.jobs.values()}
    assert sorted(reasons.values()) == ["ran:failed-before"] + ["reused:local"] * 23
    assert reasons[cells[5].__identifier__] == "ran:failed-before"


def test_the_latest_failed_run_and_the_last_successful_run_are_both_roots(
        ws: Workspace, tmp_path: Path) -> None:
    first = Grid(ws, tmp_path / "run1.log", 3, -1, -1, tmp_path)   # cells 0-2: ok
    try:
        first.submitted()
        assert first.finish() == 0
    finally:
        first.abort()
    (tmp_path / "fail").touch()
    second = Grid(ws, tmp_path / "run2.log", 5, 4, -1, tmp_path)   # cells 0-4: 4 fails
    try:
        second.submitted()
        assert second.finish() == 1
    finally:
        second.abort()
    everything = present(ws)
    assert len(everything) == 5
    dry = console(ws, "gc", "--dry-run")
    assert dry.returncode == 0 and listed(dry.stdout) == set(), dry.stdout
    assert console(ws, "gc", "-y").returncode == 0
    assert present(ws) == everything
    wiped = console(ws, "gc", "-y", "--keep-runs", "0")  # no run is a root any more
    assert wiped.returncode == 0, wiped.stderr
    assert present(ws) == set()


def test_a_scheduler_killed_with_kill9_keeps_its_done_jobs(ws: Workspace, tmp_path: Path) -> None:
    cells = grid(6)
    killed = Grid(ws, tmp_path / "run.log", 6, -1, 0, tmp_path)
    try:
        killed.submitted()
        wait_for(lambda: done_cells(ws, cells) == {1, 2, 3, 4, 5}, "cells 1-5 to be done")
        wait_for(lambda: launch_is_live(cell_dir(ws, cells[0])), "cell 0 to run")
        os.kill(killed.process.pid, signal.SIGKILL)
        killed.process.wait()
    finally:
        killed.abort()
    (run,) = read_runs(ws, "grid")
    assert run.status == "dead"

    dry = console(ws, "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert listed(dry.stdout) == set(), dry.stdout
    line = root_line(dry.stdout, "grid")
    assert "latest run" in line and "dead" in line and "6 objects, 5 done" in line, line
    assert console(ws, "gc", "-y").returncode == 0
    assert done_cells(ws, cells) == {1, 2, 3, 4, 5}

    touch(tmp_path / "release")  # cell 0 still runs in its own session: let it finish
    wait_for(lambda: taskdirs.is_done(cell_dir(ws, cells[0])), "cell 0 to be done")
    assert console(ws, "gc", "-y").returncode == 0
    assert done_cells(ws, cells) == set(range(6))


def test_an_interrupted_run_keeps_its_done_jobs(ws: Workspace, tmp_path: Path) -> None:
    cells = grid(6)
    interrupted = Grid(ws, tmp_path / "run.log", 6, -1, 0, tmp_path)
    try:
        interrupted.submitted()
        wait_for(lambda: done_cells(ws, cells) == {1, 2, 3, 4, 5}, "cells 1-5 to be done")
        wait_for(lambda: launch_is_live(cell_dir(ws, cells[0])), "cell 0 to run")
        interrupted.process.send_signal(signal.SIGINT)
        assert interrupted.finish() != 0
    finally:
        interrupted.abort()
    (run,) = read_runs(ws, "grid")
    assert run.status == "interrupted"
    assert not launch_is_live(cell_dir(ws, cells[0]))

    dry = console(ws, "gc", "--dry-run")
    assert dry.returncode == 0 and listed(dry.stdout) == set(), dry.stdout
    assert "interrupted" in root_line(dry.stdout, "grid")
    assert console(ws, "gc", "-y").returncode == 0
    assert done_cells(ws, cells) == {1, 2, 3, 4, 5}
    assert cell_dir(ws, cells[0]).is_dir()


def test_a_run_that_submitted_nothing_hides_no_earlier_run(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "fail").touch()
    failing = Grid(ws, tmp_path / "run1.log", 3, 2, -1, tmp_path)
    try:
        failing.submitted()
        assert failing.finish() == 1
    finally:
        failing.abort()
    empty = Grid(ws, tmp_path / "run2.log", 0, -1, -1, tmp_path)  # a script that submits nothing
    try:
        empty.submitted()
        assert empty.finish() == 0
    finally:
        empty.abort()
    assert [r.status for r in read_runs(ws, "grid")] == ["failed", "ok"]
    dry = console(ws, "gc", "--dry-run")
    assert listed(dry.stdout) == set(), dry.stdout
    assert "3 objects, 2 done" in root_line(dry.stdout, "grid")
    assert console(ws, "gc", "-y").returncode == 0
    assert done_cells(ws, grid(3)) == {0, 1}
