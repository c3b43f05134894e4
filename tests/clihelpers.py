"""Helpers of the command line's tests: invoking commands (through click's CliRunner and as real
processes), filling a workspace with real experiments, and checking one-line errors."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from xpmstore_cli.main import cli

from xpmstore import experiment
from xpmstore.launchers import LocalLauncher
from xpmstore.scheduler.progress import Progress
from xpmstore.store.workspace import Workspace

from .gctasks import Step, chain
from .helpers import PYTHON, REPO_ROOT

XPMSTORE = str(Path(PYTHON).parent / "xpmstore")
"""The console script installed in the test interpreter's environment."""


def _root(workspace: Workspace | Path) -> Path:
    return workspace.root if isinstance(workspace, Workspace) else workspace


def invoke(workspace: Workspace | Path | None, *args: str, stdin: str | None = None) -> Result:
    """Run ``xpmstore --workspace WS ARGS…`` through click's CliRunner (stdout and stderr
    apart)."""
    prefix = ["--workspace", str(_root(workspace))] if workspace is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], input=stdin, catch_exceptions=False)


def console(workspace: Workspace | Path | None, *args: str, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console script ``xpmstore`` as a real process (workspace through
    XPMSTORE_WORKSPACE)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XPMSTORE"))}
    if workspace is not None:
        environ["XPMSTORE_WORKSPACE"] = str(_root(workspace))
    environ.update(env or {})
    return subprocess.run([XPMSTORE, *args], capture_output=True, text=True, timeout=120,
                          input=stdin, env=environ, cwd=REPO_ROOT, check=False)


def one_error_line(stderr: str) -> str:
    """The single ``xpmstore: …`` line of ``stderr`` (fails on anything else)."""
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {stderr!r}"
    assert "Traceback" not in stderr and lines[0].startswith("xpmstore: "), stderr
    return lines[0]


def run_experiment(workspace: Workspace, name: str, tasks: Sequence[Any],
                   workers: int = 2) -> None:
    """Submit ``tasks`` in an experiment ``name`` of this process and wait for them."""
    with experiment(workspace, name, launcher=LocalLauncher(workers=workers),
                    progress=Progress(name, stream=io.StringIO())):
        for task in tasks:
            task.submit()


def run_chain(workspace: Workspace, name: str, length: int, variant: int) -> list[Step]:
    """Run a chain of ``length`` Steps of ``variant`` in experiment ``name``; returns it."""
    steps = chain(length, variant)
    run_experiment(workspace, name, [steps[-1]])
    return steps


def task_dir(workspace: Workspace, task: Any) -> Path:
    """The directory of a task of tests/gctasks.py."""
    return workspace.task_dir(type(task).__xpmid__, task.__identifier__)
