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
