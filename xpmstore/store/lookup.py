"""Looking prior results up from code, without running anything (docs/store.md).

```python
store = Store("WORKSPACE")            # Store() is the default workspace
store.status(learn)                   # "done" | "failed" | "running" | "queued" | "absent"
store.outputs(learn)                  # what task_outputs returns, for a done task
store.find(ModelLearn, epochs=10)     # prior tasks of that class matching those params
store.find(Evaluate, learned__epochs=10)  # through a task reference
store.cached(Terms(n=4).load)         # the Record of a @cache entry, or None
store.find(Terms)                     # the @cache entries of a config class
store.get("3fa9c1")                   # a Record by identifier or unique prefix
store.explain(learn)                  # why is this absent? the nearest prior configs
store.table(Evaluate, metrics="metrics.json")  # one dict per task: params, tags, metrics
```

A lookup of a done task costs one identifier and one ``stat``.  ``find``, ``explain`` and a
prefix ``get`` that misses first reconcile the index with a listing of ``jobs/`` and ``cache/`` so
that results made on other hosts appear.  Safe across threads and processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from ..core import identifier, query
from ..core.active import active
from ..core.config import Config, Task, class_spec, iter_configs
from ..core.identifier import cache_identifier, unique_match
from ..core.params import load as load_file
from ..core.params import params_of
from ..errors import (
    ConfigTypeError,
    CorruptObjectError,
    InvalidIdentifierError,
    NotFound,
)
from .index import Index
from .indexrecords import IndexRecord, RecordSummary
from .objectdirs import find_object_dirs
from .taskdirs import bind, is_done, read_record, record_from_disk
from .taskstate import Status, object_status
from .workspace import DONE, Workspace, current_workspace

__all__ = ["Explanation", "Record", "RecordEntry", "Store", "add_tags", "load", "record_entry"]


_new_record = object.__new__


def _note_root(identifier: str) -> None:
    """Inside an active experiment, a looked-up object becomes one of the run's roots (gc)."""
    current = active()
    if current is not None:
        current.note_root(identifier)


def add_tags(workspace: Workspace, items: list[tuple[str, Path, dict[str, Any]]]) -> None:
    """Add the tags of submissions that reused done tasks, ``(identifier, directory, tags)``,
    to the index (which keeps the union: a name keeps the value it had first); a task not
    indexed yet is indexed from its directory first.  Safe across processes."""
    index = Index.for_workspace(workspace)
    unknown = index.add_tags((ident, tags) for ident, _, tags in items)
    records = []
    for ident, directory, tags in items:
        if ident in unknown and (record := record_from_disk(workspace, directory)):
            record["tags"] = {**tags, **record["tags"]}
            records.append((ident, record))
    if records:
        index.put_many(records)


class RecordEntry(TypedDict):
    """Every field of a :class:`Record`, JSON-ready (the path a str): :meth:`Record.to_json`, an
    entry of a listing (:func:`xpmstore.admin.ls.list_entries`)."""

    identifier: str
    kind: str
    name: str
    status: str
    path: str
    created: float
    last_access: float
    size: int
    tags: dict[str, Any]
    dependencies: list[str]
    config: str | None


def record_entry(ident: str, data: RecordSummary, status: str, path: str) -> RecordEntry:
    """The fields of the Record of the object ``ident`` that the index records as ``data``,
    with its ``status`` and (absolute) ``path``: the one mapping of an index record to a
    Record, defaults included."""
    return {"identifier": ident, "kind": data["kind"], "name": data["name"], "status": status,
            "path": path, "created": data["created"],
            "last_access": data.get("last_access", 0.0), "size": data.get("size", 0),
            "tags": data.get("tags") or {}, "dependencies": data.get("dependencies") or [],
            "config": data.get("config")}


@dataclass(frozen=True)
class Record:
    """What the store knows of one object.

    ``status`` is read from the disk when the Record is made ("done", "failed", "running",
    "queued", "absent"); ``config`` is, for a cache entry, its config's identifier.
    """

    identifier: str
    kind: str
    name: str
    status: Status
    path: Path
    created: float
    last_access: float
    size: int
    tags: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    config: str | None = None

    def to_json(self) -> RecordEntry:
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

    def status(self, config: Config) -> Status:
        """"done", "failed", "running", "queued" (claimed, not started) or "absent" for a task
        (one identifier, one stat).

        Raises ConfigTypeError for what is not a Task (it says what to call instead: a config's
        results are ``@cache`` entries, see :meth:`cached`)."""
        if not isinstance(config, Task):
            raise ConfigTypeError(_not_a_task("status", config))
        identifier = config.__identifier__
        directory = f"{self._jobs}/{class_spec(type(config)).identity_name}/{identifier}"
        if os.path.exists(directory + "/" + DONE):
            _note_root(identifier)
            return "done"
        return object_status(Path(directory))

    def outputs(self, task: Task) -> Any:
        """What ``task.task_outputs`` returns, bound to this workspace; NotFound unless done.

        Raises ConfigTypeError for what is not a Task (saying what to call instead)."""
        if not isinstance(task, Task):
            raise ConfigTypeError(_not_a_task("outputs", task))
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

    def cached(self, method: Callable[..., Any]) -> Record | None:
        """The Record of the ``@cache`` entry of a method bound to its config
        (``store.cached(Terms(n=4).load)``), or None when the entry is not done here.

        Computes nothing and takes no lock (one identifier and one ``stat`` when absent).
        Raises ConfigTypeError when ``method`` is not a ``@cache`` method of a config.
        """
        config = getattr(method, "__self__", None)
        filename = getattr(getattr(method, "__func__", None), "__xpm_cache__", None)
        if not isinstance(config, Config) or not isinstance(filename, str):
            raise ConfigTypeError(
                f"cached() takes a @cache method bound to its config, such as"
                f" store.cached(Terms(n=4).load); got {_describe(method)}")
        name = class_spec(type(config)).identity_name
        ident = cache_identifier(config.__identifier__, filename)
        directory = self.workspace.object_dir("cache", name, ident)
        if not is_done(directory):
            return None
        data = self.index.get(ident)
        if data is None:  # made on another host, or the index was lost: read the disk
            data = record_from_disk(self.workspace, directory)
            if data is None:
                return None
            self.index.put(ident, data)
        return self._record(ident, data)

    def _record(self, ident: str, data: RecordSummary) -> Record:
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
        # object.__setattr__ (see benchmarks/README.md, "lookup").
        record = _new_record(Record)
        fields = record.__dict__
        fields.update(record_entry(ident, data, status, text))
        fields["path"] = path
        return record

    def _absent(self, ident: str) -> str:
        """Why there is no Record of ``ident``: no such object, or an object not done."""
        for _, candidate in find_object_dirs(self.workspace, ident):
            return (f"{candidate.parent.name} {ident} in {self.workspace.root} is not done (it"
                    f" is {object_status(candidate)}): nothing to look up yet")
        return f"no object {ident} in {self.workspace.root}"

    def _from_disk(self, ident: str) -> IndexRecord | None:
        for _, candidate in find_object_dirs(self.workspace, ident):
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
        ident = unique_match(text, matches, where=f" in {self.workspace.root}")
        data = self.index.get(ident)
        assert data is not None
        return self._record(ident, data)

    # --- many objects -------------------------------------------------------------------------

    def reconcile(self, full: bool = False) -> tuple[int, int]:
        """Bring the index in line with the directories, listing only the class folders that
        changed since the last reconcile (every folder, every directory with ``full``:
        :mod:`xpmstore.store.reconcile`); returns (added, removed)."""
        from .reconcile import reconcile

        done = reconcile(self.index, self.workspace, full=full)
        return done.added, done.removed

    def rebuild(self, on_damaged: Callable[[Path, str], None] | None = None) -> int:
        """Rebuild the index from the directories (built beside the old one, which is never
        read unless sound, then put in its place); returns the count.  A done object that
        cannot be read is left out: ``on_damaged(directory, why)``."""
        from .reindex import rebuild

        return rebuild(self.workspace, on_damaged)[0]

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
        """Prior objects of class ``cls`` whose params match, newest first: the tasks of a
        Task class, the ``@cache`` entries of any other Config class.

        Params compare by encoding with defaults filled in; nested fields as ``model__hidden``,
        through task references too (``learned__epochs``: the referenced task's params);
        Config values by identifier.  ``status=None`` accepts any status.  Raises
        UnknownFieldError / ConfigTypeError for a param that ``cls`` does not declare or a value
        of the wrong type; for cache entries, which record only their config's identifier,
        MissingFieldError when the params do not make a whole config.
        """
        if not (isinstance(cls, type) and issubclass(cls, Config)):
            raise ConfigTypeError(f"find() takes a Config or Task class, got {_describe(cls)}"
                                  " (e.g. store.find(Learn, epochs=10))")
        if not issubclass(cls, Task):
            return self._find_entries(cls, tags, status, params)
        found = []
        for ident, data in self.matching(cls, tags, params):
            record = self._record(ident, data)
            if status is None or record.status == status:
                found.append(record)
        return sorted(found, key=lambda r: r.created, reverse=True)

    def matching(self, cls: type[Task], tags: dict[str, Any] | None, params: dict[str, Any],
                 resolve: query.Resolve | None = None,
                 reconcile: bool = True) -> list[tuple[str, IndexRecord]]:
        """(identifier, index record) of the indexed tasks of class ``cls`` whose tags and
        params match (as :meth:`find` matches them; task references through ``resolve``, by
        default the index), after a reconcile of the whole index unless ``reconcile=False``;
        raises as :meth:`find` does for a bad query."""
        asked = query.wanted(cls, params)
        if reconcile:
            self.reconcile()
        resolve = resolve or self._resolver()
        found = []
        for ident in self.index.by_name(class_spec(cls).identity_name):
            data = self.index.get(ident)
            if data is not None and data["kind"] == "task" and query.matches(
                    cls, data.get("identity"), data.get("tags"), asked, tags, resolve):
                found.append((ident, data))
        return found

    def table(self, cls: type[Task], *, metrics: Any = "metrics.json",
              status: str | None = "done", all_params: bool = False,
              tags: dict[str, Any] | None = None, **filters: Any) -> list[dict[str, Any]]:
        """One dict per task of class ``cls`` with that status (None: any), newest first:
        ``"id"``, the params that differ across the rows (``model.lr``; all of them with
        ``all_params``), the tags (``"tag:<name>"``) and the values of ``metrics`` (a JSON file
        of the task directory, or a callable given the directory) flattened with dots.
        ``pandas.DataFrame(rows)`` takes it as it is.  Filters as :meth:`find`'s.  See
        :mod:`xpmstore.store.table` for the columns and the errors."""
        from .table import tabulate

        return tabulate(self, cls, metrics=metrics, status=status, all_params=all_params,
                        tags=tags, **filters)

    def _find_entries(self, cls: type[Config], tags: dict[str, Any] | None,
                      status: str | None, params: dict[str, Any]) -> list[Record]:
        """The ``@cache`` entries of a config class (of the one config ``params`` make)."""
        config = None
        if params:
            config = query.config_of(cls, params)
        self.reconcile()
        found = []
        for ident in self.index.by_name(class_spec(cls).identity_name):
            data = self.index.get(ident)
            if data is None or data["kind"] != "cache" or tags:  # entries have no tags
                continue
            if config is not None and data.get("config") != config.__identifier__:
                continue
            record = self._record(ident, data)
            if status is None or record.status == status:
                found.append(record)
        return sorted(found, key=lambda r: r.created, reverse=True)

    def explain(self, config: Config, limit: int = 5) -> list[Explanation]:
        """Why is ``config`` absent: the nearest prior objects of its class (fewest differing
        leaf fields first, at most ``limit``) and the fields in which they differ (a field
        left at its default shows the default's value; a referenced task is compared field by
        field)."""
        mine = params_of(config)["identity"]
        known = {task.__identifier__: params_of(task)["identity"]
                 for task in _tasks_in(config)}  # the asked tasks may exist nowhere yet
        resolve = self._resolver(known)
        self.reconcile()
        cls = type(config)
        ranked = []
        for ident in self.index.by_name(class_spec(cls).identity_name):
            data = self.index.get(ident)
            if data is None or data.get("identity") is None:
                continue
            described = query.differences(cls, data["identity"], mine, resolve)
            ranked.append((len(described), -data["created"], ident, data, described))
        ranked.sort(key=lambda item: item[:3])
        return [Explanation(self._record(i, d), desc) for _, _, i, d, desc in ranked[:limit]]

    def _resolver(self, known: dict[str, Any] | None = None) -> query.Resolve:
        """The identity section of a task by identifier: from ``known``, else the index
        (memoized for one query)."""
        found: dict[str, Any] = dict(known or {})

        def resolve(ident: str) -> dict[str, Any] | None:
            if ident not in found:
                try:
                    data = self.index.get(ident)
                except InvalidIdentifierError:
                    data = None
                found[ident] = data.get("identity") if data else None
            return found[ident]

        return resolve


def load(path: str | os.PathLike[str]) -> Config:
    """Rebuild the config recorded in a params.json, a task directory holding one, or the
    task of an identifier or unique prefix in the default workspace (``xpmstore.load``).

    The result has the same class, values, tags and ``dep`` marks, hence the same identifier.
    Raises NotFound, AmbiguousPrefixError, FormatVersionError, or ClassNotFoundError naming the
    class; warns as :func:`xpmstore.core.params.load` does.
    """
    target = os.fspath(path)
    if not os.path.exists(target) and isinstance(path, str) and path and all(
        c in "0123456789abcdef" for c in path
    ):
        target = os.fspath(Store().get(path).path)
    return load_file(target, stacklevel=3)


def _tasks_in(config: Config) -> list[Task]:
    """Every task reachable from ``config`` through its fields (``config`` itself excluded)."""
    found: dict[int, Task] = {}
    stack = [c for _, c in iter_configs(config)]
    seen = {id(config)}
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Task):
            found[id(current)] = current
        stack.extend(c for _, c in iter_configs(current))
    return list(found.values())


def _describe(value: Any) -> str:
    """What ``value`` is, for an error message."""
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    function = getattr(value, "__func__", value)
    if callable(value) and hasattr(function, "__qualname__"):
        return f"{type(value).__name__} {function.__qualname__}"
    return type(value).__qualname__


def _not_a_task(call: str, value: Any) -> str:
    """The error of ``status()``/``outputs()`` given something else than a Task: what to call
    instead."""
    owner = getattr(value, "__self__", None)
    filename = getattr(getattr(value, "__func__", None), "__xpm_cache__", None)
    if isinstance(owner, Config) and isinstance(filename, str):
        method = value.__func__.__name__
        return (f"{call}() takes a Task; for the @cache entry of"
                f" {type(owner).__qualname__}.{method}, call"
                f" store.cached(config.{method}) (a Record, or None when absent)")
    if isinstance(value, Config):
        cls = type(value).__qualname__
        return (f"{call}() takes a Task, and {cls} is a Config: its results are @cache entries;"
                f" look one up with store.cached(config.<method>), or list them with"
                f" store.find({cls})")
    return f"{call}() takes a Task, got {_describe(value)}"
