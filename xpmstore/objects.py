"""Objects on disk: preparing a task directory, finishing an object, reading it back.

Finishing writes the done manifest last and atomically (:mod:`xpmstore.atomic`); whether an
object is done is one ``stat`` of ``.xpm/done`` (:func:`is_done`), never the index alone.  The
index record of an object is derived from its directory (:func:`record_from_disk`), so the index
can always be rebuilt.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from . import manifest as manifest_module
from .atomic import write_atomic
from .config import Config, Task, class_spec, dependencies, iter_configs, tags_of
from .errors import CorruptObjectError, FormatVersionError
from .manifest import Manifest
from .serialize import params_json, params_of, refresh_values
from .workspace import DONE, KINDS, Workspace

__all__ = [
    "bind",
    "finish",
    "index_record",
    "is_done",
    "prepare_task_dir",
    "read_manifest",
    "record_from_disk",
]

_FULL_ID = re.compile(r"[0-9a-f]{64}")


def is_done(directory: str | os.PathLike[str]) -> bool:
    """Whether the object at ``directory`` is done: one stat of its done manifest."""
    return os.path.exists(os.path.join(directory, DONE))


def bind(config: Config, workspace: Workspace) -> None:
    """Bind every task reachable from ``config`` to its directory in ``workspace``.

    Afterwards generated paths resolve (``os.fspath`` works).
    """
    seen: set[int] = set()
    stack: list[Config] = [config]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Task) and "_xpm_taskdir" not in current.__dict__:
            name = class_spec(type(current)).identity_name
            current._xpm_bind(workspace.task_dir(name, current.__identifier__))
        stack.extend(c for _, c in iter_configs(current))
        producer = current.__dict__.get("_xpm_producer")
        if producer is not None:
            stack.append(producer)
        stack.extend(dependencies(current))


def prepare_task_dir(workspace: Workspace, task: Task) -> Path:
    """Create the task's directory with its params.json (idempotent); returns the directory."""
    name = class_spec(type(task)).identity_name
    directory = workspace.task_dir(name, task.__identifier__)
    params = directory / "params.json"
    # Not fsynced: params.json is a pure function of the task, rewritten here whenever it is
    # missing or empty; the done manifest, written by the job at the end, is the durable one.
    # (Written in place into a new directory, it was seen half-written by a concurrent
    # scheduler's job: the stress test.  Atomically, always.)
    if _make_dirs(directory):
        missing = True  # a new directory: no stat needed
    else:
        try:
            missing = os.stat(params).st_size == 0  # empty: a crash before its data was written
        except FileNotFoundError:
            missing = True
    if missing:
        write_atomic(params, params_json(task), durable=False)
    bind(task, workspace)
    return directory


def _make_dirs(directory: Path) -> bool:
    """``directory`` and its ``.xpm/`` (two ``mkdir`` when new, and when they exist); returns
    whether ``directory`` was made here."""
    made = True
    try:
        os.mkdir(directory)
    except FileExistsError:
        made = False
    except FileNotFoundError:  # the task's class folder is new too
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(directory)
        except FileExistsError:
            made = False
    try:
        os.mkdir(directory / ".xpm")
    except FileExistsError:
        if not os.path.isdir(directory / ".xpm"):
            raise
    return made


def task_extra(task: Task) -> dict[str, Any]:
    """What a task's manifest records beside its files: its tags and dependencies."""
    return {
        "tags": tags_of(task),
        "dependencies": sorted({d.__identifier__ for d in dependencies(task)}),
    }


def finish(directory: Path, identifier: str, kind: str, name: str,
           exclude: tuple[str, ...] = (), extra: dict[str, Any] | None = None) -> Manifest:
    """Scan ``directory`` and publish its done manifest (the last write); returns the manifest.

    A crash at any point leaves the object not done, never half-done.
    """
    manifest = manifest_module.make(directory, identifier, kind, name, exclude, extra)
    data = manifest_module.build(manifest)
    try:
        write_atomic(directory / DONE, data)
    except FileNotFoundError:  # no .xpm/ yet (a task directory always has one)
        if not directory.is_dir():
            raise
        (directory / ".xpm").mkdir(exist_ok=True)
        write_atomic(directory / DONE, data)
    return manifest


def read_manifest(directory: Path) -> Manifest | None:
    """The done manifest of ``directory``, or None when the object is not done."""
    try:
        data = (directory / DONE).read_bytes()
    except FileNotFoundError:
        return None
    return manifest_module.parse(data, str(directory / DONE))


def index_record(workspace: Workspace, directory: Path, manifest: Manifest,
                 identity: dict[str, Any] | None) -> dict[str, Any]:
    """The index record of a done object (pure but for the relative path)."""
    extra = manifest.extra
    record: dict[str, Any] = {
        "kind": manifest.kind,
        "name": manifest.name,
        "path": os.path.relpath(directory, workspace.root),
        "created": manifest.created,
        "last_access": manifest.created,
        "size": manifest.size,
        "tags": extra.get("tags", {}),
        "dependencies": extra.get("dependencies", []),
        "identity": identity,
    }
    if manifest.kind == "cache":
        record.update(config=extra.get("config"), method=extra.get("method"),
                      file=extra.get("file"))
    return record


def record_from_disk(workspace: Workspace, directory: Path) -> dict[str, Any] | None:
    """The index record of the object at ``directory`` read from its files; None when not done
    or unreadable (a corrupt object is never indexed)."""
    try:
        manifest = read_manifest(directory)
    except (CorruptObjectError, FormatVersionError):
        return None
    if manifest is None or manifest.identifier != directory.name:
        return None
    identity = None
    if manifest.kind == "task":
        try:
            identity = json.loads((directory / "params.json").read_bytes()).get("identity")
        except (OSError, ValueError):
            return None
    return index_record(workspace, directory, manifest, identity)


def list_object_dirs(workspace: Workspace) -> list[Path]:
    """Every ``jobs/<name>/<64 hex>`` and ``cache/<name>/<64 hex>`` directory (done or not)."""
    found = []
    for folder in KINDS.values():
        top = workspace.root / folder
        try:
            names = list(os.scandir(top))
        except FileNotFoundError:
            continue
        for name_entry in names:
            if not name_entry.is_dir(follow_symlinks=False) or name_entry.name.startswith("."):
                continue
            with os.scandir(name_entry.path) as it:
                for entry in it:
                    if _FULL_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                        found.append(Path(entry.path))
    return found


def now() -> float:
    """The current time (seconds since the epoch)."""
    return time.time()


def run_here(workspace: Workspace, task: Task) -> Path:
    """Run ``task.execute()`` in this process and publish it (tests and tools; the scheduler
    runs tasks in their own processes).  Returns the task directory; does nothing when done."""
    from .index import Index

    directory = prepare_task_dir(workspace, task)
    if is_done(directory):
        return directory
    refresh_values(directory, task)  # params.json says what this run ran with
    task.execute()
    name = class_spec(type(task)).identity_name
    exclude = tuple(getattr(type(task), "__xpm_exclude__", ()))
    manifest = finish(directory, task.__identifier__, "task", name, exclude, task_extra(task))
    identity = params_of(task)["identity"]
    Index.for_workspace(workspace).put(
        task.__identifier__, index_record(workspace, directory, manifest, identity)
    )
    return directory
