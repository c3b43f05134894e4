"""Tasks and the experiment driver of the Slurm tests.

Tasks count what happens to them in counter files (see tests/schedtasks.py).  :func:`drive` is
the experiment process the reattach test starts and kills:
``python -c "from tests.slurm.slurmtasks import drive; drive()" WORKSPACE COUNTERS RELEASE``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from xpmstore import Meta, Param, Task

from ..schedtasks import note
from ..storehelpers import count_of

LONG = 600.0
"""Seconds a task waits for its release file before giving up: far beyond any test's time
limit, so a task stopped early was stopped by Slurm."""


def _wait_for_file(path: str) -> None:
    end = time.monotonic() + LONG
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise RuntimeError(f"gave up waiting for {path}")
        time.sleep(0.05)


class Sleeper(Task):
    """Counts its start in ``started-<key>``, waits for ``release``, counts its end."""

    __xpmid__ = "tests.slurm.Sleeper"
    key: Param[str]
    counters: Meta[str] = ""
    release: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"started-{self.key}")
        _wait_for_file(self.release)
        Path("result.txt").write_text(self.key)
        note(self.counters, f"ended-{self.key}")


class SlowFirstTime(Task):
    """Its first attempt waits (until Slurm stops it); later attempts succeed at once."""

    __xpmid__ = "tests.slurm.SlowFirstTime"
    key: Param[str]
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"attempt-{self.key}")
        if count_of(self.counters, f"attempt-{self.key}") == 1:
            _wait_for_file(os.path.join(self.counters, "never"))
        Path("result.txt").write_text(self.key)


def drive(argv: list[str] | None = None) -> None:
    """Submit ``Sleeper(key="reattach")`` with a SlurmLauncher; print ``submitted``."""
    from xpmstore import experiment
    from xpmstore.launchers import SlurmLauncher

    workspace, counters, release = (sys.argv[1:] if argv is None else argv)[:3]
    with experiment(workspace, "reattach", launcher=SlurmLauncher(poll_max=1.0)):
        Sleeper(key="reattach", counters=counters, release=release).submit()
        print("submitted", flush=True)
