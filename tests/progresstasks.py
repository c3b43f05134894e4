"""Tasks of the progress and table tests: tasks that report progress from their job's process,
and tasks that write a metrics file.

Every class lives at module level with an explicit ``__xpmid__`` so that job processes import it
by name.  ``Reporting`` reports, then waits for a release file, so that a test can read its
progress from another process while it runs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from xpmstore import Config, ExperimentFailed, Meta, Param, Task, experiment, progress
from xpmstore.launchers import LocalLauncher

from .schedtasks import wait_file


class Reporting(Task):
    """Reports two levels (epoch 2 of 3, step 40 of 100 of "train"), says so by creating
    ``reported``, waits for ``release``, then ends at 100%."""

    __xpmid__ = "tests.progress.Reporting"
    n: Param[int] = 0
    reported: Meta[str] = ""
    release: Meta[str] = ""

    def execute(self) -> None:
        for epoch in progress.track(range(3), desc="epoch"):
            if epoch < 2:
                continue
            for step in progress.track(range(100), desc="train"):
                if step == 40:  # 40 steps of epoch 2 done: wait while the test reads them
                    Path(self.reported).write_text(str(os.getpid()))
                    wait_file(self.release)
                    break
        progress(1.0)


class Looping(Task):
    """Reports ``steps`` steps of "train"; with ``release``, waits for that file after its
    third step (the live display's tests read the block meanwhile)."""

    __xpmid__ = "tests.progress.Looping"
    n: Param[int] = 0
    steps: Meta[int] = 10
    release: Meta[str] = ""

    def execute(self) -> None:
        for step in progress.track(range(self.steps), desc="train"):
            if step == 3 and self.release:
                wait_file(self.release)


class Broken(Task):
    """Fails at once."""

    __xpmid__ = "tests.progress.Broken"
    n: Param[int] = 0

    def execute(self) -> None:
        raise RuntimeError("broken on purpose")


class ModulesSeen(Task):
    """Writes to ``out`` the names of the rich modules its process holds (none, we expect)."""

    __xpmid__ = "tests.progress.ModulesSeen"
    out: Meta[str] = ""

    def execute(self) -> None:
        held = sorted(m for m in sys.modules if m.split(".")[0] == "rich")
        Path(self.out).write_text(json.dumps(held))


class FreshModulesSeen(ModulesSeen):
    """The same in a fresh process (``python -m xpmstore.scheduler.runner``), not forked from the
    zygote."""

    __xpmid__ = "tests.progress.FreshModulesSeen"
    fresh_process = True


def drive(argv: list[str] | None = None) -> None:
    """``python -c "from tests.progresstasks import drive; drive()" WS COUNT RELEASE [FAIL]``:
    an experiment of COUNT Looping tasks (tagged lr; waiting for the file RELEASE unless it is
    "-") and, with FAIL, one Broken task; prints "failed: N" when jobs failed.  With COUNT
    "modules", two ModulesSeen tasks (zygote, fresh process) write to RELEASE.{0,1}.  Prints
    whether this process imported rich, last."""
    args = sys.argv[1:] if argv is None else argv
    workspace, count, release = args[0], args[1], args[2]
    try:
        with experiment(workspace, "display", launcher=LocalLauncher(workers=2)):
            if count == "modules":
                ModulesSeen(out=f"{release}.0").submit()
                FreshModulesSeen(out=f"{release}.1").submit()
            for n in range(int(count) if count.isdigit() else 0):
                Looping(n=n, release="" if release == "-" else release).tag("lr", n / 10).submit()
            if len(args) > 3:
                Broken(n=1).submit()
    except ExperimentFailed as exc:
        print(f"failed: {len(exc.failed)}")
    print(f"rich imported: {'rich' in sys.modules}")


class Hyper(Config):
    """A nested config of :class:`Scored`."""

    __xpmid__ = "tests.table.Hyper"
    lr: Param[float] = 0.1
    layers: Param[int] = 2


class Scored(Task):
    """Writes ``metrics.json``: ``accuracy`` from its params and a nested ``eval`` object."""

    __xpmid__ = "tests.table.Scored"
    hyper: Param[Hyper]
    seed: Param[int] = 0
    name: Param[str] = "run"

    def execute(self) -> None:
        accuracy = round(0.5 + self.hyper.lr + self.seed / 100, 4)
        (self.__taskdir__ / "metrics.json").write_text(json.dumps(
            {"accuracy": accuracy, "eval": {"loss": 1 - accuracy, "n": 10}}))


class Judged(Task):
    """Depends on a :class:`Scored`; writes ``metrics.json`` with ``judged``."""

    __xpmid__ = "tests.table.Judged"
    scored: Param[Scored]
    strict: Param[bool] = False

    def execute(self) -> None:
        (self.__taskdir__ / "metrics.json").write_text(json.dumps({"judged": self.strict}))
