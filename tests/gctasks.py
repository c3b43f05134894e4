"""Tasks and driver of the command line's tests (gc, rm, fsck, jobs, kill, logs).

Every class lives at module level with an explicit ``__xpmid__`` so that job processes import
it by name.  :func:`drive` is the entry point of the experiment processes the tests start:
``python -c "from tests.gctasks import drive; drive()" MODE ARGS…``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from xpmstore import Meta, Param, Task

from .schedtasks import wait_file
from .storehelpers import Terms, count_line


class Step(Task):
    """One link of a chain: reads its predecessor's output (so a deleted dependency fails it)
    and writes its own.  With ``release`` set, waits for that file first."""

    __xpmid__ = "tests.gc.Step"
    i: Param[int]
    variant: Param[int] = 0
    previous: Param[Task | None] = None
    release: Meta[str] = ""

    def execute(self) -> None:
        if self.release:
            wait_file(self.release)
        before = ""
        if self.previous is not None:
            before = (self.previous.__taskdir__ / "out.txt").read_text()
        (self.__taskdir__ / "out.txt").write_text(f"{before}{self.variant}:{self.i}\n")
        (self.__taskdir__ / "data.bin").write_bytes(bytes([self.i % 256]) * (1000 + self.i))


class Talker(Task):
    """Prints ``lines`` lines on stdout and one on stderr, waiting for ``release`` (if given)
    after the first."""

    __xpmid__ = "tests.gc.Talker"
    key: Param[str]
    lines: Param[int] = 3
    release: Meta[str] = ""

    def execute(self) -> None:
        print(f"{self.key} line 0", flush=True)
        if self.release:
            wait_file(self.release)
        for k in range(1, self.lines):
            print(f"{self.key} line {k}", flush=True)
        print(f"{self.key} says goodbye", file=sys.stderr, flush=True)
        (self.__taskdir__ / "talked.txt").write_text(self.key)


class Cell(Task):
    """One cell of a grid: writes ``cell.txt``; waits for the file ``release`` first (when
    given), then fails while the file ``fail`` exists (neither is identity; params.json keeps
    them, so a cell that failed succeeds on the next run once ``fail`` is removed)."""

    __xpmid__ = "tests.gc.Cell"
    i: Param[int]
    fail: Meta[str] = ""
    release: Meta[str] = ""

    def execute(self) -> None:
        if self.release:
            wait_file(self.release)
        if self.fail and os.path.exists(self.fail):
            raise RuntimeError(f"cell {self.i} fails")
        (self.__taskdir__ / "cell.txt").write_text(f"{self.i}\n")


class CacheReader(Task):
    """Reads the ``@cache`` entries ``Terms(n)`` for n below ``entries``, round after round,
    until a round that started once the file ``stop`` existed; appends a line to
    ``counters/reader-<i>`` after each round and fails on a wrong value (or when an entry
    vanishes under it)."""

    __xpmid__ = "tests.gc.CacheReader"
    i: Param[int]
    entries: Param[int] = 3
    counters: Meta[str] = ""
    stop: Meta[str] = ""

    def execute(self) -> None:
        while True:
            last = os.path.exists(self.stop)  # seen before the round: one whole round after it
            for n in range(self.entries):
                value = Terms(n=n).load(self.counters)
                if value != f"terms of {n}\n" * 3:
                    raise RuntimeError(f"Terms(n={n}) read {value!r}")
            count_line(self.counters, f"reader-{self.i}")
            if last:
                return


def grid(size: int, fail: int = -1, block: int = -1, files: str = "") -> list[Cell]:
    """``size`` Cells: cell ``fail`` fails while ``files/fail`` exists, cell ``block`` waits for
    ``files/release`` (-1: none)."""
    return [Cell(i=i, fail=os.path.join(files, "fail") if i == fail else "",
                 release=os.path.join(files, "release") if i == block else "")
            for i in range(size)]


def chain(length: int, variant: int, release: str = "") -> list[Step]:
    """``length`` Steps, each depending on the one before; the first waits for ``release``."""
    steps: list[Step] = []
    for i in range(length):
        steps.append(Step(i=i, variant=variant, previous=steps[-1] if steps else None,
                          release=release if i == 0 else ""))
    return steps


def drive(argv: list[str] | None = None) -> None:
    """The experiment processes of the tests (see the module doc):

    * ``chain WS NAME LENGTH VARIANT EXTRA [RELEASE [extra-only]]``: submit a chain of VARIANT
      and one ``Step(i=0, variant=EXTRA)`` (both waiting for RELEASE when they run, or only the
      extra step with ``extra-only``: the chain may be reused, the extra step never is, so the
      run stays live until RELEASE exists), print ``submitted``, and wait for the jobs;
    * ``talker WS KEY RELEASE``: submit a Talker, print ``submitted``;
    * ``hold WS COUNTERS N…``: use the ``@cache`` entries ``Terms(n)`` (leasing them), print
      ``leased``, and wait for a line on stdin (then exit normally);
    * ``readers WS COUNTERS N STOP``: submit N :class:`CacheReader` (N workers), print
      ``submitted``, and wait for the jobs;
    * ``grid WS NAME SIZE FAIL BLOCK FILES``: submit :func:`grid` (cell FAIL fails while
      FILES/fail exists, cell BLOCK waits for FILES/release; -1 for none), print
      ``submitted``, and wait for the jobs.
    """
    from xpmstore import experiment
    from xpmstore.launchers import LocalLauncher

    args = sys.argv[1:] if argv is None else argv
    mode, workspace = args[0], args[1]
    if mode == "chain":
        name, length, variant, extra = args[2], int(args[3]), int(args[4]), int(args[5])
        release = args[6] if len(args) > 6 else ""
        extra_only = args[7:] == ["extra-only"]
        with experiment(workspace, name, launcher=LocalLauncher(workers=2)):
            chain(length, variant, "" if extra_only else release)[-1].submit()
            Step(i=0, variant=extra, release=release).submit()  # new each run: always waits
            print("submitted", flush=True)
    elif mode == "talker":
        with experiment(workspace, "talk", launcher=LocalLauncher(workers=1)):
            Talker(key=args[2], release=args[3]).submit()
            print("submitted", flush=True)
    elif mode == "hold":
        from .storehelpers import active, make_workspace

        with active(make_workspace(Path(workspace))):
            for n in args[3:]:
                Terms(n=int(n)).load(args[2])
        print("leased", flush=True)
        sys.stdin.readline()
    elif mode == "readers":
        counters, size, stop = args[2], int(args[3]), args[4]
        with experiment(workspace, "readers", launcher=LocalLauncher(workers=size)):
            for i in range(size):
                CacheReader(i=i, counters=counters, stop=stop).submit()
            print("submitted", flush=True)
    elif mode == "grid":
        name, size, fail, block = args[2], int(args[3]), int(args[4]), int(args[5])
        with experiment(workspace, name, launcher=LocalLauncher(workers=2)):
            for cell in grid(size, fail, block, args[6]):
                cell.submit()
            print("submitted", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


def touch(path: str | Path) -> None:
    """Create the file ``path`` (a release flag)."""
    Path(path).write_text("go")
