"""Looking prior results up from code, without running anything (DESIGN §9).

```python
store = Store("WORKSPACE")            # Store() is the default workspace
store.status(learn)                   # "done" | "failed" | "running" | "absent"
store.outputs(learn)                  # what task_outputs returns, for a done task
store.find(ModelLearn, epochs=10)     # prior tasks of that class matching those params
store.get("3fa9c1")                   # a Record by identifier or unique prefix
store.explain(learn)                  # why is this absent? the nearest prior configs
```

A lookup of a done task costs one identifier and one ``stat``.  ``find``, ``explain`` and a
prefix ``get`` that misses first reconcile the index with a listing of ``jobs/`` and ``cache/`` so
that results made on other hosts appear.  Safe across threads and processes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import identifier, inputs, jsonio
from .config import Config, Task, class_spec
from .errors import (
    AmbiguousPrefixError,
    ConfigTypeError,
    CorruptObjectError,
    NotFound,
    UnknownFieldError,
)
from .fields import FieldKind
from .index import Index
from .objects import bind, is_done, list_object_dirs, read_record, record_from_disk
from .workspace import DONE, Workspace, current_workspace

__all__ = ["Explanation", "Record", "Store"]


_new_record = object.__new__


def _note_root(identifier: str) -> None:
    """Inside an active experiment, a looked-up object becomes one of the run's roots (gc)."""
    module = sys.modules.get("xpmstore.experiment")  # never imported: no experiment is active
    current = module.active_experiment() if module is not None else None
    if current is not None:
        current.note_root(identifier)


@dataclass(frozen=True)
class Record:
    """What the store knows of one object.

    ``status`` is read from the disk when the Record is made ("done", "failed", "running",
    "absent"); ``config`` is, for a cache entry, its config's identifier.
    """

    identifier: str
    kind: str
    name: str
    status: str
    path: Path
    created: float
    last_access: float
    size: int
    tags: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    config: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return {  # not dataclasses.asdict: it deep-copies, slow over a whole store
            "identifier": self.identifier, "kind": self.kind, "name": self.name,
            "status": self.status, "path": str(self.path), "created": self.created,
            "last_access": self.last_access, "size": self.size, "tags": dict(self.tags),
            "dependencies": list(self.dependencies), "config": self.config,
        }


@dataclass(frozen=True)
class Explanation:
    """A prior object of the same class and the leaf fields in which it differs."""

    record: Record
    differences: list[str]


def object_status(directory: Path) -> str:
    """"done", "failed", "running" or "absent", read from an object directory.

    A job whose state says running but whose holder is gone (killed, machine rebooted) is
    "failed": it will run again on the next submit.
    """
    if is_done(directory):
        return "done"
    try:
        data = jsonio.read(directory / ".xpm" / "state.json")
    except (OSError, ValueError):
        data = None
    state = data.get("state") if isinstance(data, dict) else None
    if state == "failed":
        return "failed"
    if state == "running" or os.path.exists(directory / ".xpm" / "launch.json"):
        from . import liveness  # the scheduler's module, only when something ran

        if liveness.launch_is_live(directory):
            return "running"  # running, or claimed and about to start
        return "failed" if state == "running" else "absent"
    return "absent"


class Store:
    """The objects of one workspace (the default workspace when ``workspace`` is None)."""

    def __init__(self, workspace: str | os.PathLike[str] | Workspace | None = None):
        self.workspace = Workspace.at(workspace) if workspace is not None else current_workspace()
        self._index: Index | None = None
        self._root = str(self.workspace.root)
        self._jobs = str(self.workspace.jobs)
        self._folders: dict[str, Path] = {}  # "jobs/<name>" -> its Path, for records

    @property
    def index(self) -> Index:
        """The workspace's index (opened on first use)."""
        if self._index is None:
            self._index = Index.for_workspace(self.workspace)
        return self._index

    def _directory(self, config: Config) -> Path:
        name = class_spec(type(config)).identity_name
        return self.workspace.task_dir(name, config.__identifier__)

    # --- one object ---------------------------------------------------------------------------

    def status(self, config: Config) -> str:
        """"done", "failed", "running" or "absent" for a task (one identifier, one stat)."""
        identifier = config.__identifier__
        directory = f"{self._jobs}/{class_spec(type(config)).identity_name}/{identifier}"
        if os.path.exists(directory + "/" + DONE):
            _note_root(identifier)
            return "done"
        return object_status(Path(directory))

    def outputs(self, task: Task) -> Any:
        """What ``task.task_outputs`` returns, bound to this workspace; NotFound unless done."""
        if not isinstance(task, Task):
            raise ConfigTypeError(f"outputs() takes a Task, got {type(task).__qualname__}")
        directory = self._directory(task)
        if not is_done(directory):
            raise NotFound(f"{type(task).__qualname__} {task.__identifier__[:12]} is not done in"
                           f" {self.workspace.root}")
        _note_root(task.__identifier__)
        bind(task, self.workspace)
        result = task.__xpm_outputs__()
        if isinstance(result, Config):
            bind(result, self.workspace)
        return result

    def _record(self, ident: str, data: dict[str, Any]) -> Record:
        relative = data["path"]
        text = f"{self._root}/{relative}"
        status = "done" if os.path.exists(text + "/" + DONE) else object_status(Path(text))
        parent, _, leaf = relative.rpartition("/")
        base = self._folders.get(parent)
        if base is None:
            base = self._folders[parent] = self.workspace.root / parent
        path = base / leaf  # one segment parsed, where Path(text) parses them all
        if status == "done":
            _note_root(ident)
        # Every field at once: a frozen dataclass's __init__ sets them one by one through
        # object.__setattr__, a quarter of a lookup's time.
        record = _new_record(Record)
        record.__dict__.update(
            identifier=ident, kind=data["kind"], name=data["name"], status=status,
            path=path, created=data["created"], last_access=data.get("last_access", 0.0),
            size=data.get("size", 0), tags=data.get("tags") or {},
            dependencies=data.get("dependencies") or [], config=data.get("config"),
        )
        return record

    def _directories_named(self, ident: str) -> Iterator[tuple[str, Path]]:
        """(identity name, directory) of every object directory called ``ident``."""
        for folder in ("jobs", "cache"):
            top = self.workspace.root / folder
            try:
                names = os.listdir(top)
            except FileNotFoundError:
                continue
            for name in names:
                candidate = top / name / ident
                if candidate.is_dir():
                    yield name, candidate

    def _absent(self, ident: str) -> str:
        """Why there is no Record of ``ident``: no such object, or an object not done."""
        for name, candidate in self._directories_named(ident):
            return (f"{name} {ident} in {self.workspace.root} is not done (it is"
                    f" {object_status(candidate)}): nothing to look up yet")
        return f"no object {ident} in {self.workspace.root}"

    def _from_disk(self, ident: str) -> dict[str, Any] | None:
        for _, candidate in self._directories_named(ident):
            try:
                record = read_record(self.workspace, candidate)
            except CorruptObjectError as exc:  # done, but its files cannot be read
                raise CorruptObjectError(f"{exc}; run xpmstore fsck", ident) from None
            if record is not None:
                self.index.put(ident, record)
                return record
        return None

    def get(self, identifier_or_prefix: str) -> Record:
        """The Record of an identifier or unique prefix.

        Raises InvalidIdentifierError (not 1–64 hex), NotFound, AmbiguousPrefixError (listing
        the candidates), CorruptObjectError (a done object whose files cannot be read).
        """
        text = identifier.check_identifier(identifier_or_prefix)
        if len(text) == 64:
            data = self.index.get_raw(bytes.fromhex(text), identity=False) \
                or self._from_disk(text)
            if data is None:
                raise NotFound(self._absent(text))
            return self._record(text, data)
        matches = self.index.with_prefix(text)
        if not matches:
            self.reconcile()
            matches = self.index.with_prefix(text)
        if not matches:
            raise NotFound(f"no object starts with {text} in {self.workspace.root}")
        if len(matches) > 1:
            shown = ", ".join(m[:16] for m in matches[:10])
            raise AmbiguousPrefixError(
                f"prefix {text} matches {len(matches)} objects ({shown}); give more characters",
                candidates=matches,
            )
        data = self.index.get(matches[0])
        assert data is not None
        return self._record(matches[0], data)

    # --- many objects -------------------------------------------------------------------------

    def reconcile(self) -> tuple[int, int]:
        """Bring the index in line with the directories; returns (added, removed)."""
        known = self.index.identifiers()
        on_disk: dict[str, Path] = {d.name: d for d in list_object_dirs(self.workspace)}
        added = []
        for ident, directory in on_disk.items():
            if ident not in known and is_done(directory):
                record = record_from_disk(self.workspace, directory)
                if record is not None:
                    added.append((ident, record))
        removed = [i for i in known if i not in on_disk or not is_done(on_disk[i])]
        if added:
            self.index.put_many(added)
        if removed:
            self.index.delete_many(removed)
        return len(added), len(removed)

    def rebuild(self, on_damaged: Callable[[Path, str], None] | None = None) -> int:
        """Refill the index from the directories in one write transaction; returns the count.
        A done object that cannot be read is left out: ``on_damaged(directory, why)``."""
        records = []
        for directory in list_object_dirs(self.workspace):
            try:
                record = read_record(self.workspace, directory)
            except CorruptObjectError as exc:
                if on_damaged is not None:
                    on_damaged(directory, str(exc))
                continue
            if record is not None:
                records.append((directory.name, record))
        return self.index.replace_all(records)

    def records(self, kind: str | None = None, name: str | None = None) -> list[Record]:
        """Every known object (after a reconcile), newest first, filtered by kind and name."""
        self.reconcile()
        if name is not None:
            items = [(i, self.index.get(i)) for i in self.index.by_name(name)]
        else:
            items = list(self.index.items())
        found = [self._record(i, d) for i, d in items
                 if d is not None and (kind is None or d["kind"] == kind)]
        return sorted(found, key=lambda r: r.created, reverse=True)

    def find(self, cls: type[Config], *, tags: dict[str, Any] | None = None,
             status: str | None = "done", **params: Any) -> list[Record]:
        """Prior objects of class ``cls`` whose params match, newest first.

        Params compare by encoding with defaults filled in; nested fields as ``model__hidden``;
        Config values by identifier.  ``status=None`` accepts any status.  Raises
        UnknownFieldError / ConfigTypeError for a param that ``cls`` does not declare or a value
        of the wrong type.
        """
        wanted = [(path.split("__"), _query_encoding(cls, path.split("__"), value))
                  for path, value in params.items()]
        self.reconcile()
        name = class_spec(cls).identity_name
        found = []
        for ident in self.index.by_name(name):
            data = self.index.get(ident)
            if data is None or data["kind"] != "task":
                continue
            if tags and any((data.get("tags") or {}).get(k) != v for k, v in tags.items()):
                continue
            identity = data.get("identity") or {}
            if all(_stored_encoding(cls, identity, path) == enc for path, enc in wanted):
                record = self._record(ident, data)
                if status is None or record.status == status:
                    found.append(record)
        return sorted(found, key=lambda r: r.created, reverse=True)

    def explain(self, config: Config, limit: int = 5) -> list[Explanation]:
        """Why is ``config`` absent: the nearest prior objects of its class (fewest differing
        leaf fields first, at most ``limit``) and the fields in which they differ."""
        from .serialize import params_of

        mine = _leaves(params_of(config)["identity"])
        self.reconcile()
        name = class_spec(type(config)).identity_name
        ranked = []
        for ident in self.index.by_name(name):
            data = self.index.get(ident)
            if data is None or data.get("identity") is None:
                continue
            theirs = _leaves(data["identity"])
            differing = sorted(k for k in mine.keys() | theirs.keys()
                               if mine.get(k) != theirs.get(k))
            described = [f"{k}: {_show(theirs.get(k))} here, {_show(mine.get(k))} asked"
                         for k in differing]
            ranked.append((len(differing), -data["created"], ident, data, described))
        ranked.sort(key=lambda item: item[:3])
        return [Explanation(self._record(i, d), desc) for _, _, i, d, desc in ranked[:limit]]


def _show(value: str | None) -> str:
    return "(default)" if value is None else value


def _leaves(identity: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in identity.get("fields", {}).items():
        if isinstance(value, dict) and "$config" in value:
            out.update(_leaves(value["$config"], f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return out


def _field_for(cls: type[Config], path: list[str]) -> tuple[type[Config], Any]:
    current: type[Config] = cls
    for step in path[:-1]:
        spec = class_spec(current).fields.get(step)
        if spec is None or not (isinstance(spec.annotation, type)
                                and issubclass(spec.annotation, Config)):
            raise UnknownFieldError(f"{current.__qualname__}.{step}: not a nested config field")
        current = spec.annotation
    field_spec = class_spec(current).fields.get(path[-1])
    if field_spec is None or field_spec.kind not in (FieldKind.PARAM, FieldKind.CONSTANT):
        raise UnknownFieldError(f"{current.__qualname__}: no Param named {path[-1]!r}")
    return current, field_spec


def _query_encoding(cls: type[Config], path: list[str], value: Any) -> bytes:
    owner, field_spec = _field_for(cls, path)
    from .checks import Mismatch

    try:
        checked = field_spec.checker(value)
    except Mismatch as exc:
        raise ConfigTypeError(f"{owner.__qualname__}.{path[-1]}: {exc.message}") from None
    return identifier.encode_value(checked, inputs.digest_input)


def _stored_encoding(cls: type[Config], identity: dict[str, Any], path: list[str]) -> bytes | None:
    current: type[Config] = cls
    tree: dict[str, Any] | None = identity
    for step in path[:-1]:
        spec = class_spec(current).fields[step]
        current = spec.annotation
        value = (tree or {}).get("fields", {}).get(step) if tree is not None else None
        if isinstance(value, dict) and "$config" in value:
            tree = value["$config"]
        elif value is None:
            tree = None  # the nested config is the default one: its fields are defaults
        else:
            return None
    field_spec = class_spec(current).fields[path[-1]]
    fields = tree.get("fields", {}) if tree is not None else {}
    if path[-1] not in fields:
        return field_spec.default_encoding()
    return identifier.identity_value_bytes(fields[path[-1]])
