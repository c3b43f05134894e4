"""Everything known of one object: ``xpmstore show ID`` (DESIGN §10).

Params (the identity section of params.json), tags, dependencies, dependents, status and state,
earlier attempts, the reasons recorded by the runs that submitted it, size, pin, and the paths of
its logs.  Works for done objects and for task directories that are running, failed or waiting.
Reads only (and reconciles the index, for dependents); safe across processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import jsonio
from .claim import read_state
from .liveness import read_launch
from .locate import locate, object_kind
from .objects import record_from_disk
from .pins import pinned
from .runs import read_runs
from .store import Store, object_status
from .workspace import Workspace

__all__ = ["Details", "describe"]


@dataclass
class Details:
    """What :func:`describe` gathers about one object."""

    identifier: str
    kind: str
    name: str
    path: Path
    status: str
    size: int
    created: float | None
    params: dict[str, Any] | None
    tags: dict[str, Any]
    dependencies: list[str]
    dependents: list[str]
    state: dict[str, Any]
    launch: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    reasons: list[dict[str, str]]
    pinned: bool
    logs: dict[str, str] = field(default_factory=dict)
    config: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        data = dict(self.__dict__)
        data["path"] = str(self.path)
        return data


def _attempts(directory: Path) -> list[dict[str, Any]]:
    top = directory / ".xpm" / "attempts"
    try:
        numbers = sorted(int(n) for n in os.listdir(top) if n.isdigit())
    except FileNotFoundError:
        return []
    found = []
    for number in numbers:
        folder = top / str(number)
        state = _state_in(folder)
        found.append({"attempt": number, "state": state.get("state"),
                      "reason": state.get("reason"), "stderr": str(folder / "stderr")})
    return found


def _state_in(folder: Path) -> dict[str, Any]:
    try:
        data = jsonio.read(folder / "state.json")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(workspace: Workspace, text: str) -> Details:
    """The details of the object named by ``text`` (identifier or unique prefix).

    Raises InvalidIdentifierError, NotFound, AmbiguousPrefixError.
    """
    identifier, directory = locate(workspace, text)
    store = Store(workspace)
    record = store.index.get(identifier) or record_from_disk(workspace, directory) or {}
    params = None
    try:
        params = jsonio.read(directory / "params.json").get("identity")
    except (OSError, ValueError, AttributeError):
        params = None
    reasons = [{"experiment": run.experiment, "run": run.name,
                "reason": run.jobs[identifier].reason}
               for run in read_runs(workspace) if identifier in run.jobs]
    stdout, stderr = directory / "stdout", directory / "stderr"
    return Details(
        identifier=identifier, kind=object_kind(directory), name=directory.parent.name,
        path=directory, status=object_status(directory), size=int(record.get("size") or 0),
        created=record.get("created"), params=params, tags=record.get("tags") or {},
        dependencies=list(record.get("dependencies") or []),
        dependents=sorted(store.index.dependents(identifier)),
        state=read_state(directory), launch=read_launch(directory),
        attempts=_attempts(directory), reasons=reasons,
        pinned=identifier in pinned(workspace, store.index),
        logs={k: str(p) for k, p in (("stdout", stdout), ("stderr", stderr)) if p.exists()},
        config=record.get("config"),
    )
