"""Experiments and their runs: ``xpmstore experiments [NAME]`` (docs/cli.md).

The runs are read back from their run records (:mod:`xpmstore.scheduler.runs`); a run's status
is live (running now), ok, failed, interrupted, or dead (it ended without an end line: killed).
Reads only; safe across processes.
"""

from __future__ import annotations

from ..errors import NotFound
from ..scheduler.runs import Run, check_experiment_name, read_runs
from ..store.workspace import Workspace

__all__ = ["experiment_runs"]


def experiment_runs(workspace: Workspace, name: str | None = None) -> list[Run]:
    """The runs of every experiment (or of the experiment ``name``), oldest first within an
    experiment, experiments by name.

    Raises TextValueError when ``name`` cannot name an experiment, NotFound when the workspace
    holds no experiment of that name.
    """
    if name is not None:
        check_experiment_name(name)
        if not (workspace.experiments / name).is_dir():
            raise NotFound(f"no experiment {name!r} in {workspace.root}")
    return read_runs(workspace, name)
