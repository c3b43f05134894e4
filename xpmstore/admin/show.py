"""Everything known of one object: ``xpmstore show ID`` (docs/cli.md).

Params (the identity section of params.json), values (its Meta fields, as the task was made or
is about to run), tags, dependencies, dependents, status and state,
earlier attempts, the reasons recorded by the runs that submitted it, size, pin, and the paths of
its logs.  Works for done objects and for task directories that are running, failed or waiting.
Reads only (and reconciles the index, for dependents); safe across processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..scheduler.runs import Run, read_runs
from ..store.locate import locate, object_kind
from ..store.lookup import Store
from ..store.pins import pinned
from ..store.taskdirs import record_from_disk
from ..store.taskprogress import ProgressLevel, read_progress
from ..store.taskstate import (
    LaunchRecord,
    StateDocument,
    Status,
    attempt_dir,
    attempt_numbers,
    object_status,
    read_attempt_state,
    read_launch,
    read_state,
)
from ..store.workspace import Workspace
from ..system import jsonio

__all__ = ["Details", "describe", "shown_value"]


@dataclass
class Details:
    """What :func:`describe` gathers about one object."""

    identifier: str
    kind: str
    name: str
    path: Path
    status: Status
    size: int
    created: float | None
    params: dict[str, Any] | None
    values: dict[str, Any] | None
    tags: dict[str, Any]
    dependencies: list[str]
    dependents: list[str]
    state: StateDocument
    launch: LaunchRecord | None
    attempts: list[dict[str, Any]]
    reasons: list[dict[str, str]]
    pinned: bool
    logs: dict[str, str] = field(default_factory=dict)
    config: str | None = None
    progress: list[ProgressLevel] | None = None
    """What its task last reported (:mod:`xpmstore.store.taskprogress`), or None."""
    damaged: str | None = None
    """Why a task's params.json gives no params (missing, not JSON, not a params document),
    one line naming the file; None when it is readable, and for ``@cache`` entries (which have
    none)."""

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        data = dict(self.__dict__)
        data["path"] = str(self.path)
        return data


def _attempts(directory: Path) -> list[dict[str, Any]]:
    """The earlier attempts of a task: state, reason, log, and the values it ran with (None
    when its params.json copy is absent, as for attempts made before it was kept, or
    unreadable)."""
    found = []
    for number in attempt_numbers(directory):
        state = read_attempt_state(directory, number)
        folder = attempt_dir(directory, number)
        try:
            document = jsonio.read(folder / "params.json")
        except (OSError, ValueError):
            document = None
        found.append({"attempt": number, "state": state.get("state"),
                      "reason": state.get("reason"), "stderr": str(folder / "stderr"),
                      "values": _meta_values(document)})
    return found


def shown_value(value: Any, objects: dict[str, Any]) -> Any:
    """A value of params.json's values section as plain JSON for people: a sub-config as its
    class and short identifier, a path as its text, tagged containers as lists and objects."""
    if isinstance(value, list):
        return [shown_value(v, objects) for v in value]
    if not isinstance(value, dict):
        return value
    if "$ref" in value:
        entry = objects.get(value["$ref"]) if isinstance(value["$ref"], str) else None
        if isinstance(entry, dict):
            return f"{entry.get('class', '?')} {str(entry.get('id', '?'))[:12]}"
        return "?"
    for tag in ("$path", "$float", "$bytes", "member"):
        if tag in value:
            return value[tag]
    for tag in ("$tuple", "$set"):
        if tag in value:
            return shown_value(value[tag], objects)
    if "$dict" in value and isinstance(value["$dict"], dict):
        return {str(k): shown_value(v, objects) for k, v in value["$dict"].items()}
    if "$taskpath" in value:
        return value.get("name")
    return {str(k): shown_value(v, objects) for k, v in value.items()}


def _meta_values(document: Any) -> dict[str, Any] | None:
    """The fields of a params.json's root object that are not in its identity section (its
    Meta fields), shown for people; None when the document does not hold them."""
    try:
        values = document["values"]
        objects = values["objects"]
        root = objects[values["root"]]
        identity = document["identity"]["fields"]
        return {name: shown_value(value, objects) for name, value in sorted(root["fields"].items())
                if name not in identity}
    except (KeyError, TypeError, AttributeError):
        return None


def _params_document(path: Path) -> tuple[Any, str | None]:
    """(the document in params.json or None, why it could not be read or None)."""
    try:
        return jsonio.read(path), None
    except FileNotFoundError:
        return None, f"{path}: missing"
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    except ValueError as exc:  # MalformedFileError: names the file already
        return None, str(exc)


def describe(workspace: Workspace, text: str, runs: Sequence[Run] | None = None) -> Details:
    """The details of the object named by ``text`` (identifier or unique prefix).  ``runs``:
    the workspace's runs as :func:`xpmstore.scheduler.runs.read_runs` gives them, when the
    caller keeps them parsed (the web service); None: read here.

    Raises InvalidIdentifierError, NotFound, AmbiguousPrefixError.
    """
    identifier, directory = locate(workspace, text)
    store = Store(workspace)
    record: Mapping[str, Any] = (store.index.get(identifier)
                                 or record_from_disk(workspace, directory) or {})
    kind = object_kind(directory)
    document, damaged = _params_document(directory / "params.json")
    params = document.get("identity") if isinstance(document, dict) else None
    if not isinstance(params, dict):
        params = None
        if damaged is None:
            damaged = f"{directory / 'params.json'}: not a params.json document (no identity)"
    if kind != "task":
        damaged = None
    submitted = [run for run in (read_runs(workspace) if runs is None else runs)
                 if identifier in run.jobs]
    reasons = [{"experiment": run.experiment, "run": run.name,
                "reason": run.jobs[identifier].reason} for run in submitted]
    tags = record.get("tags") or {}
    if not tags and submitted:  # not done (not indexed): the tags its latest run gave it
        tags = max(submitted, key=lambda run: run.started).jobs[identifier].tags
    stdout, stderr = directory / "stdout", directory / "stderr"
    return Details(
        identifier=identifier, kind=kind, name=directory.parent.name,
        path=directory, status=object_status(directory), size=int(record.get("size") or 0),
        created=record.get("created"), params=params, values=_meta_values(document), tags=tags,
        dependencies=list(record.get("dependencies") or []),
        dependents=sorted(store.index.dependents(identifier)),
        state=read_state(directory), launch=read_launch(directory),
        attempts=_attempts(directory), reasons=reasons,
        pinned=identifier in pinned(workspace, store.index),
        logs={k: str(p) for k, p in (("stdout", stdout), ("stderr", stderr)) if p.exists()},
        config=record.get("config"), progress=read_progress(directory), damaged=damaged,
    )
