"""Users' scripts run as ``python script.py`` in a real process: what their modules do at import
(print, write to stdout, close it, log) never reaches the zygote's protocol, and a script that
enters its experiment unguarded stops with the one-line error, whichever process runs its jobs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ..helpers import run_python

TASKS = '''
import sys
from pathlib import Path
from xpmstore import Meta, Param, Task

NOISE

def note(counters, key):
    with open(Path(counters) / key, "a") as out:
        out.write("ran\\n")

class Leaf(Task):
    __xpmid__ = "noisy.Leaf"
    n: Param[int]
    counters: Meta[str] = ""

    def execute(self):
        note(self.counters, f"leaf-{self.n}")

class Join(Task):
    __xpmid__ = "noisy.Join"
    leaves: Param[list[Leaf]]
    counters: Meta[str] = ""

    def execute(self):
        note(self.counters, "join")
'''

DRIVER = '''
import sys
from xpmstore import experiment
from xpmstore.launchers import LocalLauncher
IMPORT

if __name__ == "__main__":
    counters = sys.argv[2]
    with experiment(sys.argv[1], "noisy", launcher=LocalLauncher(workers=2)):
        leaves = [Leaf(n=n, counters=counters).submit() for n in range(4)]
        Join(leaves=leaves, counters=counters).submit()
'''

NOISES = {
    "print": 'print("noise at import")',
    "write": 'sys.stdout.write("noise at import, no newline")',
    "close": "sys.stdout.close()",
    "logging": 'import logging\nlogging.basicConfig(stream=sys.stdout, level=logging.INFO)\n'
               'logging.getLogger("tasks").info("noise at import")',
}


@pytest.mark.parametrize("where", ["module", "script"])
@pytest.mark.parametrize("noise", sorted(NOISES))
def test_what_task_modules_print_at_import_never_breaks_the_zygote(
        tmp_path: Path, noise: str, where: str) -> None:
    tasks = TASKS.replace("NOISE", NOISES[noise])
    if where == "module":  # tasks in a module the zygote imports by name
        (tmp_path / "noisy.py").write_text(tasks)
        script = DRIVER.replace("IMPORT", "from noisy import Join, Leaf")
    else:  # tasks in the script itself, which the zygote imports by path
        script = tasks + DRIVER.replace("IMPORT", "")
    (tmp_path / "experiment.py").write_text(script)
    counters = tmp_path / "counters"
    counters.mkdir()
    done = run_python([str(tmp_path / "experiment.py"), str(tmp_path / "ws"), str(counters)],
                      cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "xpmstore: warning" not in done.stderr, done.stderr
    ran = {p.name: p.read_text() for p in counters.iterdir()}
    assert ran == {**{f"leaf-{n}": "ran\n" for n in range(4)}, "join": "ran\n"}  # once each
    for state in ("running", "done"):  # the progress lists each job once
        lines = re.findall(rf"\[noisy\] {state} +(\S+ \S+)$", done.stderr, re.MULTILINE)
        assert len(lines) == len(set(lines)) == 5, done.stderr
    if noise != "close":  # what the zygote's import printed reached the experiment's stderr
        assert "noise at import" in done.stderr, done.stderr


UNGUARDED = '''
import sys
from pathlib import Path
from xpmstore import ExperimentFailed, Param, Task, experiment
from xpmstore.launchers import LAUNCHER

class Hello(Task):
    __xpmid__ = "unguarded.Hello"
    n: Param[int] = 0

    def execute(self):
        Path("hello.txt").write_text("hello")

try:  # no `if __name__ == "__main__":` guard: the jobs that import this script come here too
    with experiment(WORKSPACE, "unguarded", launcher=ARGUMENTS):
        for n in range(3):
            Hello(n=n).submit()
except ExperimentFailed as exc:
    print(f"FAILED {exc}", file=sys.stderr)
    sys.exit(3)
'''


def unguarded_script(folder: Path, workspace: Path, launcher: str) -> Path:
    """An unguarded script in ``folder`` using ``launcher`` (Python text, e.g.
    ``LocalLauncher(workers=2)``)."""
    name, _, arguments = launcher.partition("(")
    script = folder / "unguarded.py"
    script.write_text(UNGUARDED.replace("LAUNCHER", name).replace(
        "ARGUMENTS", f"{name}({arguments}").replace("WORKSPACE", repr(str(workspace))))
    return script


def check_refused(done: subprocess.CompletedProcess[str], workspace: Path) -> None:
    """The unguarded experiment stopped with the one-line error, and no job ran its task or a
    second experiment."""
    assert done.returncode == 3, done.stderr
    [failure] = [line for line in done.stderr.splitlines() if line.startswith("FAILED ")]
    assert failure.startswith("FAILED experiment 'unguarded': experiment() was entered inside a"
                              " job's process"), failure
    assert 'guard the experiment with `if __name__ == "__main__":`' in failure
    assert "(3 job(s) failed;" in failure
    assert "Traceback" not in done.stderr, done.stderr
    assert len(list((workspace / "experiments" / "unguarded").iterdir())) == 1  # one run
    logs = sorted((workspace / "jobs" / "unguarded.Hello").glob("*/stderr"))
    assert len(logs) == 3
    for log in logs:
        assert "guard the experiment with" in log.read_text()
        assert not (log.parent / "hello.txt").exists()
        assert {p.name for p in log.parent.iterdir()} <= {"params.json", "stdout", "stderr",
                                                           ".xpm"}


@pytest.mark.parametrize("launcher", ["LocalLauncher(workers=2)",
                                      "LocalLauncher(workers=2, fresh_process=True)"],
                         ids=["zygote", "fresh"])
def test_an_unguarded_script_stops_with_the_one_line_error(tmp_path: Path, launcher: str) -> None:
    workspace = tmp_path / "ws"
    script = unguarded_script(tmp_path, workspace, launcher)
    check_refused(run_python([str(script)], cwd=tmp_path, timeout=120), workspace)


ENDINGS = '''
import sys
from pathlib import Path
from xpmstore import ExperimentFailed, Param, Task, experiment
from xpmstore.launchers import LocalLauncher

class Step(Task):
    __xpmid__ = "endings.Step"
    fail: Param[bool] = False

    def execute(self):
        if self.fail:
            raise ValueError("the step failed")
        Path("out.txt").write_text("ok")

def run(fail, raise_inside=False):
    with experiment(sys.argv[1], "endings", launcher=LocalLauncher(workers=1)):
        Step(fail=fail).submit()
        if raise_inside:
            raise LookupError("raised in the block")

if __name__ == "__main__":
    how = sys.argv[2]
    if how == "uncaught":
        run(fail=True)
    elif how == "caught":
        try:
            run(fail=True)
        except ExperimentFailed as exc:
            assert exc.failed and str(exc).startswith("experiment 'endings': 1 job(s) failed")
            print("caught")
    elif how == "another-hook":  # a library that took sys.excepthook first is left in charge
        sys.excepthook = lambda kind, error, trace: print(f"their hook: {kind.__name__}",
                                                          file=sys.stderr)
        run(fail=True)
    elif how == "after":
        run(fail=False)
        raise LookupError("raised after the experiment")
    elif how == "inside":
        run(fail=False, raise_inside=True)
'''


def run_endings(folder: Path, how: str, *python_options: str,
                traceback: str = "") -> subprocess.CompletedProcess[str]:
    """Run the script ``ENDINGS`` in ``folder`` (a real process) the way ``how`` says, with
    ``XPMSTORE_TRACEBACK=traceback`` (empty: off)."""
    script = folder / "endings.py"
    script.write_text(ENDINGS)
    return run_python([*python_options, str(script), str(folder / "ws"), how], cwd=folder,
                      env={"XPMSTORE_TRACEBACK": traceback}, stdin="", timeout=120)


def step_log(folder: Path) -> Path:
    """The log of the one failed Step job."""
    [log] = (folder / "ws" / "jobs" / "endings.Step").glob("*/stderr")
    return log


def test_a_failed_job_ends_the_script_with_one_line(tmp_path: Path) -> None:
    done = run_endings(tmp_path, "uncaught")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last == (f"xpmstore: experiment 'endings': 1 job(s) failed: endings.Step"
                    f" {step_log(tmp_path).parent.name[:12]} (ValueError: the step failed, log"
                    f" {step_log(tmp_path)})"), done.stderr
    assert "ValueError: the step failed" in step_log(tmp_path).read_text()


def test_an_experiment_that_cannot_start_ends_the_script_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "experiments").write_text("")  # a file: no run record can be made there
    done = run_endings(tmp_path, "uncaught")
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"xpmstore: experiment 'endings' cannot start: its run record in"
                           f" {tmp_path / 'ws' / 'experiments'} cannot be written"
                           f" (FileExistsError: "), done.stderr


def test_xpmstore_traceback_1_shows_the_traceback(tmp_path: Path) -> None:
    done = run_endings(tmp_path, "uncaught", traceback="1")
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last):" in done.stderr, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("xpmstore.errors.ExperimentFailed: experiment 'endings': 1 job(s)"
                           " failed: endings.Step"), done.stderr


def test_an_interactive_session_keeps_the_traceback(tmp_path: Path) -> None:
    done = run_endings(tmp_path, "uncaught", "-i")  # its prompt then reads the end of stdin
    assert "Traceback (most recent call last):" in done.stderr, done.stderr
    assert "ExperimentFailed: experiment 'endings': 1 job(s) failed" in done.stderr
    assert "\nxpmstore: experiment" not in done.stderr, done.stderr


def test_a_failure_the_script_catches_prints_nothing_more(tmp_path: Path) -> None:
    done = run_endings(tmp_path, "caught")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "caught\n"
    assert "xpmstore: experiment" not in done.stderr and "Traceback" not in done.stderr, \
        done.stderr


def test_a_hook_installed_before_the_experiment_stays_in_charge(tmp_path: Path) -> None:
    done = run_endings(tmp_path, "another-hook")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == "their hook: ExperimentFailed", done.stderr
    assert "xpmstore: experiment" not in done.stderr, done.stderr


@pytest.mark.parametrize("where", ["after", "inside"])
def test_the_script_s_own_errors_keep_their_traceback(tmp_path: Path, where: str) -> None:
    done = run_endings(tmp_path, where)
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last):" in done.stderr, done.stderr
    expected = {"after": "raised after the experiment", "inside": "raised in the block"}[where]
    assert done.stderr.splitlines()[-1] == f"LookupError: {expected}", done.stderr
    assert "xpmstore: experiment" not in done.stderr, done.stderr
