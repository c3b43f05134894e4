"""Objects on disk: preparing a task directory, finishing an object, reading it back.

Finishing writes the done manifest last and atomically (:mod:`xpmstore.system.atomic`); whether an
object is done is one ``stat`` of ``.xpm/done`` (:func:`is_done`), never the index alone.  The
index record of an object is derived from its directory (:func:`record_from_disk`), so the index
can always be rebuilt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.config import Config, Task, class_spec, dependencies, iter_configs, tags_of
from ..core.params import params_json, params_of, read_params, refresh_values
from ..errors import CorruptObjectError, FormatVersionError, MalformedFileError, NotFound
from ..system import jsonio
from ..system.atomic import write_atomic
from . import manifest as manifest_module
from .edges import params_dependencies
from .indexrecords import IndexRecord, index_record
from .manifest import Manifest
from .objectdirs import list_object_dirs
from .workspace import DONE, XPM, Workspace

__all__ = [
    "bind",
    "finish",
    "index_record",
    "is_done",
    "is_done_listed",
    "list_object_dirs",  # kept here for the callers of its first home (objectdirs holds it)
    "prepare_task_dir",
    "read_manifest",
    "read_record",
    "record_from_disk",
]


def is_done(directory: str | os.PathLike[str]) -> bool:
    """Whether the object at ``directory`` is done: one stat of its done manifest."""
    return os.path.exists(os.path.join(directory, DONE))


def is_done_listed(directory: str | os.PathLike[str]) -> bool:
    """:func:`is_done`, after a listing of the object's ``.xpm/`` (on a network file system a
    listing refreshes the cached view that a plain stat may still answer from)."""
    try:
        os.listdir(os.path.join(directory, XPM))
    except OSError:
        pass
    return is_done(directory)


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
        os.mkdir(directory / XPM)
    except FileExistsError:
        if not os.path.isdir(directory / XPM):
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
        (directory / XPM).mkdir(exist_ok=True)
        write_atomic(directory / DONE, data)
    return manifest


def read_manifest(directory: Path) -> Manifest | None:
    """The done manifest of ``directory`` (parsed and checked:
    :func:`xpmstore.store.manifest.parse`), or None when the object is not done.

    Raises CorruptObjectError (damaged, hostile, or not a regular file), FormatVersionError.
    """
    path = directory / DONE
    try:
        data = jsonio.read_regular(path)
    except FileNotFoundError:
        return None
    except MalformedFileError as exc:
        raise CorruptObjectError(str(exc), directory.name) from None
    except OSError as exc:
        raise CorruptObjectError(f"{path}: cannot be read ({exc.strerror})",
                                 directory.name) from None
    return manifest_module.parse(data, str(path))


def read_record(workspace: Workspace, directory: Path) -> IndexRecord | None:
    """The index record of the object at ``directory`` read from its files, or None when it is
    not done.  A task's dependencies are those of its params.json (:mod:`xpmstore.store.edges`).

    Raises CorruptObjectError naming the file when the object is done but cannot be read
    (its manifest or params.json damaged, or a manifest of another object).
    """
    try:
        manifest = read_manifest(directory)
    except FormatVersionError as exc:
        raise CorruptObjectError(str(exc), directory.name) from None
    if manifest is None:
        return None
    if manifest.identifier != directory.name:
        raise CorruptObjectError(f"{directory / DONE}: the done manifest of another object"
                                 f" ({manifest.identifier[:16]})", directory.name)
    if manifest.kind != "task":
        return index_record(workspace, directory, manifest, None)
    params = directory / "params.json"
    try:
        document = read_params(params)
    except (NotFound, FormatVersionError) as exc:  # (their messages name the file)
        raise CorruptObjectError(str(exc), directory.name) from None
    except OSError as exc:
        raise CorruptObjectError(f"{params}: cannot be read ({exc.strerror})",
                                 directory.name) from None
    identity = document.get("identity")
    if not isinstance(identity, dict):
        raise CorruptObjectError(f"{params}: no identity section", directory.name)
    return index_record(workspace, directory, manifest, identity,
                        params_dependencies(document))


def record_from_disk(workspace: Workspace, directory: Path) -> IndexRecord | None:
    """:func:`read_record`, None when the object is not done or cannot be read (a corrupt
    object is never indexed)."""
    try:
        return read_record(workspace, directory)
    except CorruptObjectError:
        return None


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
