"""The zygote forks the local jobs and is single-threaded by design; a task module that starts a
thread when imported makes it multi-threaded, and a job forked then may hang on a lock that
thread held.  Python 3.12+ warns about that fork with a DeprecationWarning that points at
xpmstore's own line and says nothing of the cause; the zygote says it instead, once, in one line
naming the import that started the thread and what to do — on every Python version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..storehelpers import isolate

THREADED = '''
import threading
import time

threading.Thread(target=time.sleep, args=(3600,), daemon=True, name="poller").start()
'''

NATIVE = '''
import numpy  # OpenBLAS starts its threads when loaded, and stops them before a fork

numpy.ones((64, 64)) @ numpy.ones((64, 64))
'''

LARGE_INPUT = '''
from pathlib import Path
from xpmstore import Config

class Data(Config):
    __xpmid__ = "zygotethreads.Data"
    path: Param[Path]

LARGE = Path(__file__).with_name("large.bin")
LARGE.write_bytes(bytes(3 << 20))
print("data", Data(path=LARGE).__identifier__)  # hashes 3 MiB on all cores, in the zygote too
'''

TASKS = '''
from pathlib import Path

from xpmstore import Param, Task

{prelude}

class Hello(Task):
    __xpmid__ = "zygotethreads.Hello"
    n: Param[int] = 0

    def execute(self):
        Path("out.bin").write_bytes(bytes(2 << 20))  # the done manifest hashes it on all cores
'''

RUN = '''
import sys

from xpmstore import experiment
from xpmstore.launchers import LocalLauncher

from tasks import Hello

if __name__ == "__main__":
    with experiment(sys.argv[1], "threads", launcher=LocalLauncher(workers=2)):
        for n in range(4):
            Hello(n=n).submit()
'''


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prelude: str) -> str:
    """Run an experiment of four tasks whose module begins with ``prelude``; its stderr."""
    isolate(monkeypatch, tmp_path)
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "tasks.py").write_text(TASKS.format(prelude=prelude))
    (folder / "run.py").write_text(RUN)
    workspace = tmp_path / "ws"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XPMSTORE"))}
    done = subprocess.run([sys.executable, "run.py", str(workspace)], cwd=folder, env=environ,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert len(os.listdir(workspace / "jobs" / "zygotethreads.Hello")) == 4
    assert "4 done" in done.stderr, done.stderr
    return done.stderr


def test_a_thread_started_by_a_task_module_is_named_once_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = run(tmp_path, monkeypatch, THREADED)
    warned = [line for line in stderr.splitlines() if "xpmstore: warning:" in line]
    assert len(warned) == 1, stderr
    assert "the import of tasks" in warned[0] and "'poller'" in warned[0], warned[0]
    assert "fresh_process=True" in warned[0], warned[0]
    assert "DeprecationWarning" not in stderr and "os.fork" not in stderr, stderr


@pytest.mark.parametrize("prelude", ["", NATIVE, LARGE_INPUT], ids=["plain", "numpy", "hash"])
def test_a_zygote_without_threads_at_the_fork_says_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prelude: str) -> None:
    stderr = run(tmp_path, monkeypatch, prelude)
    assert "warning" not in stderr.lower(), stderr
