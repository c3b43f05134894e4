"""Tasks and the experiment driver of the ``xpmstore serve`` tests.

A :class:`Gated` task prints a line, then waits until the test creates the file
``<gate>/<name>.go`` (so that a test decides when it finishes: never a sleep), prints another
line, and writes ``metrics.json``.  :class:`Scored` uses one.  :func:`drive` runs an experiment
of them in a process of its own: ``python -c "from tests.serve.servetasks import drive; drive()"
WORKSPACE GATE NAME[:EPOCHS:LR]…``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from xpmstore import Meta, Param, Task, experiment
from xpmstore.launchers import LocalLauncher

DEADLINE = 120.0
"""Seconds a task waits for its gate before it fails (never an expected duration)."""


class Gated(Task):
    """Prints ``started NAME``, waits for its gate file, prints ``released NAME``, writes its
    metrics (loss = 1 / (epochs × lr))."""

    __xpmid__ = "servetests.Gated"

    name: Param[str]
    epochs: Param[int] = 2
    lr: Param[float] = 0.1
    gate: Meta[str] = ""

    def execute(self) -> None:
        print(f"started {self.name}", flush=True)
        go = Path(self.gate) / f"{self.name}.go"
        deadline = time.monotonic() + DEADLINE
        while self.gate and not go.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {go}")
            time.sleep(0.02)
        print(f"released {self.name}", flush=True)
        Path("metrics.json").write_text(json.dumps(
            {"loss": 1.0 / (self.epochs * self.lr), "epochs_seen": self.epochs}))


class Scored(Task):
    """Uses a Gated task's output."""

    __xpmid__ = "servetests.Scored"

    source: Param[Gated]

    def execute(self) -> None:
        Path("score.txt").write_text("1\n")


def submit(workspace: str, gate: str, specs: list[str], name: str = "serve-tests") -> None:
    """Run the experiment ``name``: for each ``NAME[:EPOCHS:LR]``, a Gated task (tagged with its
    lr) and a Scored task using it."""
    with experiment(workspace, name, launcher=LocalLauncher(workers=4)):
        for spec in specs:
            label, *rest = spec.split(":")
            epochs, lr = (int(rest[0]), float(rest[1])) if rest else (2, 0.1)
            task = Gated(name=label, epochs=epochs, lr=lr, gate=gate).tag("lr", lr)
            Scored(source=task.submit()).submit()


def drive() -> None:
    """Entry point of the experiment processes (see the module doc)."""
    workspace, gate, *specs = sys.argv[1:]
    submit(workspace, gate, specs)
