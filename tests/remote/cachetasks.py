"""Tasks and scripts of the remote's tests that run in processes of their own: ``@cache``
entries created in a job's process (forked by the zygote) and in a plain script, and an
experiment interrupted while it pushes a big result.

Every class lives at module level with an explicit ``__xpmid__`` so that job processes import it
by name.  Computations are counted in counter files (:func:`tests.storehelpers.count_line`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from xpmstore import Config, Meta, Param, Task, cache

from ..storehelpers import Terms, active, make_workspace

__all__ = ["BigBlob", "BigOutput", "UsesTerms", "create_entries", "interrupted_run"]


class BigBlob(Config):
    """An ``@cache`` entry holding one file of ``size`` random bytes."""

    __xpmid__ = "tests.remote.BigBlob"
    size: Param[int]

    @cache("blob.bin")
    def file(self, path: Path) -> Path:
        if not path.exists():
            path.write_bytes(os.urandom(self.size))
        return path


class BigOutput(Task):
    """A task whose one output is ``size`` random bytes."""

    __xpmid__ = "tests.remote.BigOutput"
    size: Param[int]

    def execute(self) -> None:
        (self.__taskdir__ / "out.bin").write_bytes(os.urandom(self.size))


class UsesTerms(Task):
    """Loads ``Terms(n)`` (an ``@cache`` entry) in its job's process; records what it got and
    whether its environment said the remote is down."""

    __xpmid__ = "tests.remote.UsesTerms"
    n: Param[int]
    counters: Meta[str] = ""

    def execute(self) -> None:
        Path("terms.txt").write_text(Terms(n=self.n).load(self.counters))
        Path("seen.json").write_text(json.dumps(
            {"remote_down": os.environ.get("XPMSTORE_REMOTE_DOWN", "")}))


def create_entries() -> None:
    """``python -c "from tests.remote.cachetasks import create_entries; create_entries()"
    WORKSPACE COUNTERS N…``: load ``Terms(n)`` for each N in WORKSPACE, print the names of the
    remote's modules imported by then (one JSON line), and exit at once (no explicit wait for
    background pushes)."""
    root, counters, *numbers = sys.argv[1:]
    with active(make_workspace(Path(root))):
        for n in numbers:
            Terms(n=int(n)).load(counters)
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("xpmstore.remote"))))


def interrupted_run() -> None:
    """``python -c "from tests.remote.cachetasks import interrupted_run; interrupted_run()"
    WORKSPACE SIZE RELEASE``: an experiment of two jobs, ``BigOutput(SIZE)`` (pushed as it
    ends, with ``push = "auto"``) and a Step that waits for the file RELEASE: the run goes on
    until it is interrupted."""
    from xpmstore import experiment
    from xpmstore.launchers import LocalLauncher

    from ..gctasks import Step

    root, size, release = sys.argv[1:]
    with experiment(make_workspace(Path(root)), "big", launcher=LocalLauncher(workers=2)):
        BigOutput(size=int(size)).submit()
        Step(i=1, variant=30, release=release).submit()
