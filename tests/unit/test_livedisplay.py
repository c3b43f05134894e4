"""The experiment's display as a person sees it: on a real pseudo terminal one compact block
(totals, the running jobs with elapsed time, tags and progress bars) and each failure as one
permanent line with its log; off a terminal one line per state change.  Neither the jobs'
processes nor an experiment off a terminal import rich."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from xpmstore.scheduler.livedisplay import LiveDisplay, display_for, elapsed_text
from xpmstore.scheduler.progress import Progress

from ..helpers import PYTHON, REPO_ROOT
from ..progresstasks import Broken
from ..terminal import Terminal

DRIVE = [PYTHON, "-c", "from tests.progresstasks import drive; drive()"]
SUMMARY = re.compile(r"^display: (\d+) done, (\d+) reused, (\d+) failed in \d+\.\ds$")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of the experiment's process: no xpmstore settings, the tests importable."""
    home = tmp_path / "home"
    home.mkdir()
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("XPMSTORE", "PYTHON", "COLUMNS", "LINES"))}
    return {**environ, "HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}


def test_on_a_terminal_one_block_then_the_failures_and_the_summary(
        tmp_path: Path, env: dict[str, str]) -> None:
    workspace, release = tmp_path / "ws", tmp_path / "release"
    terminal = Terminal([*DRIVE, str(workspace), "3", str(release), "fail"], env=env,
                        cwd=REPO_ROOT)
    try:
        block = terminal.wait_for(
            lambda s: sum("train 3/10" in line for line in s) == 2
            and any("2 queued" in line for line in s),
            "two running jobs at step 3 of 10, two queued (claimed ahead of a free worker)")
    finally:
        release.write_text("")
    totals = [line for line in block if line.startswith("display ")]
    assert len(totals) == 1, block
    assert re.search(r" 0/4 +0 done · 0 reused · 2 running · 2 queued · 0 failed +\d+s$",
                     totals[0]), totals[0]
    running = [line for line in block if "train 3/10" in line]
    for line in running:  # name, identifier, elapsed, tags, bar, progress text
        assert re.match(r"^  Looping [0-9a-f]{12} +\d+s lr=0\.[01] +\S+ train 3/10$", line), line
    assert len(block) <= 4, block  # the block alone: nothing else was printed yet
    run = terminal.finish()
    assert run.returncode == 0
    lines = run.lines()
    text = "".join(lines)  # a long failure line wraps: its parts join back
    broken = Broken(n=1).__identifier__
    log = workspace / "jobs" / "tests.progress.Broken" / broken / "stderr"
    assert f"failed   tests.progress.Broken {broken[:12]} RuntimeError: broken on purpose" \
           f"  log: {log}" in text
    summaries = [found.groups() for line in lines if (found := SUMMARY.match(line))]
    assert summaries == [("3", "0", "1")]
    assert lines[-2:] == ["failed: 1", "rich imported: True"]
    assert not any("running" in line or "train" in line for line in lines)  # the block is gone
    assert len(lines) <= 6, lines


def test_many_jobs_leave_a_few_lines_on_a_terminal_and_a_line_per_change_off_it(
        tmp_path: Path, env: dict[str, str]) -> None:
    count = 200
    run = Terminal([*DRIVE, str(tmp_path / "ws"), str(count), "-"], env=env,
                   cwd=REPO_ROOT).finish()
    assert run.returncode == 0
    lines = run.lines()
    assert len(lines) == 2, lines
    summary = SUMMARY.match(lines[0])
    assert summary is not None and summary.groups() == (str(count), "0", "0")
    assert lines[1] == "rich imported: True"

    piped = subprocess.run([*DRIVE, str(tmp_path / "ws2"), str(count), "-"], env=env,
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                           check=False)
    assert piped.returncode == 0, piped.stderr
    assert "\033" not in piped.stderr and "\r" not in piped.stderr
    changes = piped.stderr.splitlines()
    assert sum(line.startswith("[display] running ") for line in changes) == count
    assert sum(line.startswith("[display] done ") for line in changes) == count
    assert piped.stdout.splitlines() == ["rich imported: False"]  # off a terminal: never


def test_the_jobs_processes_never_import_rich(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "modules"
    run = Terminal([*DRIVE, str(tmp_path / "ws"), "modules", str(out)], env=env,
                   cwd=REPO_ROOT).finish()
    assert run.returncode == 0
    assert run.lines()[-1] == "rich imported: True"  # the experiment draws with rich...
    assert json.loads(Path(f"{out}.0").read_text()) == []  # ...its zygote's jobs do not
    assert json.loads(Path(f"{out}.1").read_text()) == []  # ...nor a fresh process's


def test_a_cache_hit_never_imports_rich(tmp_path: Path, env: dict[str, str]) -> None:
    code = ("import sys\n"
            "from xpmstore.store.workspace import Workspace, set_active_workspace\n"
            "from tests.storehelpers import Terms\n"
            f"set_active_workspace(Workspace.at({str(tmp_path / 'ws')!r}))\n"
            f"for _ in range(2): Terms(n=1).load(counters={str(tmp_path)!r})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))")
    done = subprocess.run([PYTHON, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "terms-1").read_text().count("\n") == 1  # computed once, then a hit


# --- the pieces -----------------------------------------------------------------------------


class FakeTerminal:
    """A stream that says it is a terminal."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return True


def test_display_for_chooses_by_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(display_for("x", FakeTerminal()), LiveDisplay)  # type: ignore[arg-type]
    plain = display_for("x", open(os.devnull, "w"))  # noqa: SIM115
    assert type(plain) is Progress and plain.live is False
    monkeypatch.setenv("TERM", "dumb")
    assert type(display_for("x", FakeTerminal())) is Progress  # type: ignore[arg-type]


def test_a_dry_run_draws_nothing_and_the_summary_ends_it() -> None:
    stream = FakeTerminal()
    display = LiveDisplay("dry", stream)  # type: ignore[arg-type]
    display.close()
    assert re.fullmatch(r"dry: 0 done, 0 reused, 0 failed in \d+\.\ds\n", stream.text)


def test_the_block_names_every_count_and_each_running_job(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from rich.console import Console

    taskdir = tmp_path / "task"
    (taskdir / ".xpm").mkdir(parents=True)
    (taskdir / ".xpm" / "progress.json").write_text(json.dumps({
        "version": 1, "updated": 1.7e9, "levels": [
            {"level": 0, "fraction": 0.4, "step": 2, "total": 5, "desc": "epoch"},
            {"level": 1, "fraction": 0.5, "step": 50, "total": 100, "desc": "train"}]}))
    jobs = {"a" * 64: SimpleNamespace(taskdir=taskdir, tags={"lr": 0.1, "seed": 2}),
            "b" * 64: SimpleNamespace(taskdir=tmp_path / "none", tags={})}
    display = LiveDisplay("exp", FakeTerminal(), jobs=jobs.get,  # type: ignore[arg-type]
                          total=lambda: 12)
    display._start = lambda: None  # type: ignore[method-assign]  # draw by hand, below
    for outcome in ("done", "reused", "waited", "blocked"):
        display.finished_job("c" * 64, "pkg.Other", outcome)
    display.queued_job("d" * 64, "pkg.Learn")
    display.started_job("a" * 64, "pkg.Learn")
    display.started_job("b" * 64, "pkg.Learn")
    display.started_job("e" * 64, "pkg.Pulled", "pulling")  # pulled from the remote
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(display._render())
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert re.search(r"^exp .* 4/12 +1 done · 1 reused · 1 waited · 3 running · 1 queued"
                     r" · 0 failed · 1 blocked +\d+s$", lines[0]), lines[0]
    assert re.match(r"^  Pulled eeeeeeeeeeee +0s +pulling *$", lines[3]), lines[3]
    # the bar: (2 epochs + half of the third) / 5 = 50%, 8 of its 16 cells
    assert re.match(r"^  Learn +aaaaaaaaaaaa +0s lr=0.1 seed=2 ━{8} {9}epoch 2/5 · train 50%"
                    r" \(50/100\)$", lines[1]), lines[1]
    assert re.match(r"^  Learn +bbbbbbbbbbbb +0s *$", lines[2]), lines[2]  # nothing reported
    display.close()


def test_elapsed_text() -> None:
    assert [elapsed_text(s) for s in (0, 42.9, 185, 7620, -3)] == [
        "0s", "42s", "3m05s", "2h07m", "0s"]
