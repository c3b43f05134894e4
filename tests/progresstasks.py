"""Tasks of the progress and table tests: tasks that report progress from their job's process,
and tasks that write a metrics file.

Every class lives at module level with an explicit ``__xpmid__`` so that job processes import it
by name.  ``Reporting`` reports, then waits for a release file, so that a test can read its
progress from another process while it runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xpmstore import Config, Meta, Param, Task, progress

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
    """Reports ``steps`` steps in a loop, in ``pause`` seconds each (the live display's walk)."""

    __xpmid__ = "tests.progress.Looping"
    n: Param[int] = 0
    steps: Meta[int] = 20
    release: Meta[str] = ""

    def execute(self) -> None:
        for _ in progress.track(range(self.steps), desc="train"):
            if self.release:
                wait_file(self.release)


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
