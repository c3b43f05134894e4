"""Results as a table: one row per task of a class (``Store.table``, ``xpmstore table``).

A row is a dict: ``"id"`` (the identifier), ``"status"`` (only when rows of every status are
asked for), then the params that differ across the rows under dotted names (``model.lr``,
``learned.epochs`` through a task reference; defaults filled in), the tags as ``"tag:<name>"``,
then the values of the task's metrics (a JSON file of its directory, or what a callable returns
for it), nested objects flattened with dots.  A param named ``id`` or ``status`` becomes
``"param:<name>"``; a metric named ``id``, ``status``, like a param of the rows (shown or not:
names never depend on which params differ), like a tag column, or starting with ``param:``,
``tag:`` or ``metric:``, becomes ``"metric:<name>"``.  Every row has every column (None where
it has no value), so ``pandas.DataFrame(rows)`` takes the list as it is.

:func:`build_rows` is pure; :func:`tabulate` reads the local store (the index for done tasks,
the directories for the others) and the metrics files.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import query
from ..core.config import Config, Task, class_spec
from ..core.fields import FieldKind
from ..core.identifier import is_full_identifier
from ..errors import ConfigTypeError, TextValueError, UnreadableMetrics, XpmstoreError
from .workspace import DONE, XPM

if TYPE_CHECKING:
    from .lookup import Store

__all__ = ["MAX_METRICS_BYTES", "STATUSES", "Metrics", "TaskRow", "UnreadableMetrics",
           "build_rows", "check_metrics_path", "check_status", "check_task_class",
           "flatten_identity", "flatten_metrics", "parse_metrics", "sort_rows", "tabulate",
           "tag_filter", "warn"]

MAX_METRICS_BYTES = 16 * 1024 * 1024
"""A metrics file larger than this is not read."""

STATUSES = ("done", "failed", "running", "queued", "absent")

Metrics = str | Callable[[Path], "Mapping[str, Any] | None"] | None
"""A metrics file's path relative to the task directory, a callable given the task directory
that returns the values, or None (no metrics)."""

_MAX_DEPTH = 32  # nesting deeper than this (an identity, a metrics document) is not flattened
_PREFIXES = ("param:", "tag:", "metric:")
_RESERVED = ("id", "status")  # the fixed columns: a param of such a name is "param:<name>"


@dataclass
class TaskRow:
    """One task as read, before its columns are chosen."""

    identifier: str
    identity: Any
    tags: dict[str, Any]
    status: str
    created: float
    metrics: dict[str, Any] | None = None
    directory: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


# --- values as cells ------------------------------------------------------------------------


def _cell(value: Any, depth: int = 0) -> Any:
    """A value of an identity section as a plain cell: numbers, strings, booleans and None as
    they are; an enum member by its name; a tuple or set as a list; a file by its identifier or
    digest; bytes in base64."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, list):
        return [_cell(v, depth + 1) for v in value]
    if not isinstance(value, dict):
        return None
    if "$float" in value:
        text = value["$float"]
        return float(text) if text in ("nan", "inf", "-inf") else None
    if "$enum" in value:
        return value.get("member")
    for key in ("$tuple", "$set"):
        if key in value:
            items = value[key]
            return [_cell(v, depth + 1) for v in items] if isinstance(items, list) else None
    if "$dict" in value:
        items = value["$dict"]
        return {str(k): _cell(v, depth + 1) for k, v in items.items()} \
            if isinstance(items, dict) else None
    if "$bytes" in value:
        return value["$bytes"] if isinstance(value["$bytes"], str) else None
    if "$digest" in value:
        return value["$digest"] if isinstance(value["$digest"], str) else None
    if "$file" in value:
        return f"{value['$file']}/{value.get('rel', '')}"
    if "$task" in value:
        return value["$task"] if isinstance(value["$task"], str) else None
    return None


def _default_json(spec: Any, memo: dict[int, Any]) -> Any:
    """The identity JSON of a field's default (memoized for one table; None when it cannot be
    made, an input file that is gone, say)."""
    key = id(spec)
    if key not in memo:
        from ..core.params import identity_json

        try:
            memo[key] = identity_json(spec.make_default())
        except (XpmstoreError, OSError, TypeError, ValueError):
            memo[key] = None
    return memo[key]


def _nested_class(spec: Any) -> type[Config] | None:
    annotation = spec.annotation if spec is not None else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, Config) else None


def flatten_identity(cls: type[Config] | None, identity: Any, resolve: query.Resolve,
                     memo: dict[int, Any] | None = None) -> dict[str, Any]:
    """Every leaf param of a recorded identity section as ``{dotted name: cell}``: nested
    configs flattened, task references followed through ``resolve`` (the referenced task's
    identifier when it is not known), fields left at their default filled in from ``cls``.
    Pure; never raises on a damaged section (what cannot be read is left out)."""
    out: dict[str, Any] = {}
    _flatten(cls, identity, resolve, "", out, 0, {} if memo is None else memo)
    return out


def _flatten(cls: type[Config] | None, identity: Any, resolve: query.Resolve, prefix: str,
             out: dict[str, Any], depth: int, memo: dict[int, Any]) -> None:
    fields = identity.get("fields") if isinstance(identity, dict) else None
    fields = fields if isinstance(fields, dict) else {}
    specs = {}
    if cls is not None:
        specs = {n: s for n, s in class_spec(cls).fields.items()
                 if s.kind in (FieldKind.PARAM, FieldKind.CONSTANT)}
    names = list(specs) + [n for n in fields if n not in specs]
    for name in names:
        spec = specs.get(name)
        if name in fields:
            value = fields[name]
        elif spec is not None and spec.has_default:
            value = _default_json(spec, memo)
        else:
            continue
        nested = query.referenced_identity(value, resolve) if depth < _MAX_DEPTH else None
        if nested is not None:
            _flatten(_nested_class(spec), nested, resolve, f"{prefix}{name}.", out, depth + 1,
                     memo)
        else:
            out[f"{prefix}{name}"] = _cell(value)


def flatten_metrics(document: Mapping[str, Any], prefix: str = "",
                    depth: int = 0) -> dict[str, Any]:
    """A metrics document with its nested objects flattened: ``{"eval": {"acc": 1}}`` gives
    ``{"eval.acc": 1}``.  Pure."""
    out: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and depth < _MAX_DEPTH:
            out.update(flatten_metrics(value, f"{name}.", depth + 1))
        else:
            out[name] = value
    return out


# --- the columns ----------------------------------------------------------------------------


def _same(values: list[Any]) -> bool:
    """Whether every value is the first (of the same type: 1, 1.0 and True differ)."""
    first = values[0]
    kind = type(first)
    return all(type(v) is kind and v == first for v in values)


def _ordered_union(dicts: Iterable[Mapping[str, Any] | None]) -> list[str]:
    seen: dict[str, None] = {}
    for mapping in dicts:
        for key in mapping or ():
            seen.setdefault(key, None)
    return list(seen)


def build_rows(rows: list[TaskRow], status_column: bool = False,
               all_params: bool = False) -> list[dict[str, Any]]:
    """The table of ``rows`` (their ``params`` already flattened): see the module doc for the
    columns.  ``all_params`` keeps the params that are the same in every row too.  Pure."""
    every_param = _ordered_union(r.params for r in rows)
    shown = every_param if all_params else [
        n for n in every_param
        if any(n not in r.params for r in rows)
        or not _same([r.params[n] for r in rows])]  # (NaN differs from NaN)
    # Names depend on what the rows hold, never on which params differ this time: a metric
    # that is also a param's name is "metric:" whether that param is shown or not.
    params = [(name, f"param:{name}" if name in _RESERVED else name) for name in shown]
    tags = [(name, f"tag:{name}") for name in sorted(_ordered_union(r.tags for r in rows))]
    taken = {*_RESERVED, *every_param, *(c for _, c in tags)}
    metrics = [(name, f"metric:{name}" if name in taken or name.startswith(_PREFIXES) else name)
               for name in _ordered_union(r.metrics for r in rows)]
    table = []
    for row in rows:
        cells: dict[str, Any] = {"id": row.identifier}
        if status_column:
            cells["status"] = row.status
        for name, column in params:
            cells[column] = row.params.get(name)
        for name, column in tags:
            cells[column] = row.tags.get(name)
        values = row.metrics or {}
        for name, column in metrics:
            cells[column] = values.get(name)
        table.append(cells)
    return table


def sort_rows(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """``rows`` sorted by ``column`` (``-column``: descending); rows without a value (or with
    NaN) last either way; numbers before text.  Raises TextValueError for an unknown column."""
    descending = column.startswith("-")
    name = column[1:] if descending else column
    if rows and name not in rows[0]:
        raise TextValueError(f"--sort {column}: no column {name!r} (columns:"
                             f" {', '.join(rows[0])})")

    def key(row: dict[str, Any]) -> tuple[int, Any]:
        value = row.get(name)
        if isinstance(value, bool):
            return 0, float(value)
        if isinstance(value, (int, float)) and not (isinstance(value, float)
                                                    and math.isnan(value)):
            return 0, value
        if isinstance(value, str):
            return 1, value
        return 2, 0

    present = [r for r in rows if key(r)[0] < 2]
    absent = [r for r in rows if key(r)[0] == 2]
    numbers = sorted((r for r in present if key(r)[0] == 0), key=key, reverse=descending)
    texts = sorted((r for r in present if key(r)[0] == 1), key=key, reverse=descending)
    return numbers + texts + absent


# --- metrics files --------------------------------------------------------------------------


def check_metrics_path(relative: str) -> str:
    """``relative`` if it names a file inside a task directory (relative, no ``..``, not in
    ``.xpm/``); TextValueError otherwise."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or "\0" in relative \
            or any(p in ("", ".", "..") for p in parts) or parts[0] == XPM:
        raise TextValueError(f"metrics {relative!r}: expected a file's path relative to the task"
                             " directory (such as metrics.json or eval/scores.json)")
    return relative


def parse_metrics(data: bytes) -> dict[str, Any]:
    """The flattened values of a metrics file's bytes; raises UnreadableMetrics (not JSON, not an
    object)."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise UnreadableMetrics("not JSON") from None
    if not isinstance(document, dict):
        raise UnreadableMetrics(f"a JSON {type(document).__name__}, not an object")
    return flatten_metrics(document)


def _read_metrics_file(directory: str, relative: str) -> dict[str, Any] | None:
    """The flattened values of ``directory/relative``; None when there is no such file; raises
    UnreadableMetrics for a file that is not a regular file inside the directory, too large, or not
    a JSON object."""
    path = os.path.join(directory, relative)
    if "/" in relative:  # a folder on the way could be a link leaving the task directory
        real = os.path.realpath(os.path.dirname(path))
        if not real.startswith(os.path.realpath(directory) + os.sep):
            raise UnreadableMetrics("its folder leaves the task directory")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnreadableMetrics(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableMetrics("not a regular file")
        if info.st_size > MAX_METRICS_BYTES:
            raise UnreadableMetrics(f"larger than {MAX_METRICS_BYTES // (1024 * 1024)} MiB")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as exc:
        raise UnreadableMetrics(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    return parse_metrics(b"".join(chunks))


def read_metrics(rows: list[TaskRow], metrics: Metrics) -> None:
    """Fill in each row's ``metrics`` (from its ``directory``); one warning line on stderr for
    the files that exist but cannot be read.  Raises ConfigTypeError when a callable returns
    something else than a mapping or None (its own exceptions propagate)."""
    if metrics is None:
        return
    bad: list[str] = []
    for row in rows:
        if row.directory is None:
            continue
        if callable(metrics):
            values = metrics(Path(row.directory))
            if values is not None and not isinstance(values, Mapping):
                raise ConfigTypeError(f"table(metrics=...): the callable returned a"
                                      f" {type(values).__qualname__} for {row.directory};"
                                      " return a dict of values (or None)")
            row.metrics = flatten_metrics(values) if values is not None else None
            continue
        try:
            row.metrics = _read_metrics_file(row.directory, metrics)
        except UnreadableMetrics as exc:
            bad.append(f"{os.path.join(row.directory, metrics)}: {exc}")
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        warn(f"xpmstore: warning: metrics not read from {bad[0]}{more}")


def tag_filter(tags: dict[str, Any], filters: list[tuple[str, list[Any]]] | None) -> bool:
    """Whether ``tags`` pass every ``--tag K=V`` filter (see
    :func:`xpmstore.core.fromtext.parse_tag_filter`)."""
    if not filters:
        return True
    from ..core.fromtext import tag_matches

    return all(tag_matches(tags, name, candidates) for name, candidates in filters)


def warn(line: str) -> None:
    """One warning line on stderr (a broken stderr loses it)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


# --- the local store ------------------------------------------------------------------------


def check_task_class(cls: Any) -> type[Task]:
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        what = cls.__qualname__ if isinstance(cls, type) else type(cls).__qualname__
        raise ConfigTypeError(f"{what} is not a Task class: a table lists the tasks of one"
                              " Task class (e.g. store.table(Evaluate))")
    return cls


def check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise TextValueError(f"status {status!r}: expected one of {', '.join(STATUSES)} (or"
                             " None for every status)")


def _not_done_rows(store: Store, cls: type[Task], status: str | None, asked: query.Wanted,
                   tags: dict[str, Any] | None, resolve: query.Resolve,
                   done: set[str]) -> list[TaskRow]:
    """The tasks of ``cls`` in ``jobs/`` that are not done, read from their directories."""
    from ..core.params import read_params
    from .taskstate import object_status, read_launch

    folder = store.workspace.jobs / class_spec(cls).identity_name
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        if name in done or not is_full_identifier(name):
            continue
        directory = folder / name
        current = object_status(directory)
        if current == "done" or (status is not None and current != status):
            continue
        try:
            document = read_params(directory)
            created = os.stat(directory / "params.json").st_mtime
        except (XpmstoreError, OSError):
            continue
        identity = document.get("identity")
        launch_tags = (read_launch(directory) or {}).get("tags")
        row_tags = launch_tags if isinstance(launch_tags, dict) else {}
        if query.matches(cls, identity, row_tags, asked, tags, resolve):
            found.append(TaskRow(name, identity, row_tags, current, created,
                                 directory=str(directory)))
    return found


def _reconcile_folder(store: Store, name: str) -> None:
    """Bring the index in line with ``jobs/<name>/`` (not the whole workspace, as ``find``
    does): its done tasks made on other hosts are indexed, the tasks whose directory is gone
    forgotten."""
    from .taskdirs import is_done, record_from_disk

    folder = store.workspace.jobs / name
    try:
        on_disk = {n for n in os.listdir(folder) if is_full_identifier(n)}
    except OSError:
        on_disk = set()
    known = set(store.index.by_name(name))
    added = []
    for ident in on_disk - known:
        directory = folder / ident
        if is_done(directory) and (record := record_from_disk(store.workspace, directory)):
            added.append((ident, record))
    if added:
        store.index.put_many(added)
    gone = [i for i in known - on_disk
            if (record := store.index.get(i)) is not None and record["kind"] == "task"]
    if gone:
        store.index.delete_many(gone)


def _resolver(store: Store) -> query.Resolve:
    """The identity section of a referenced task: from the index, else (a task this host has
    not indexed) from its params.json; memoized for one table."""
    from ..core.params import read_params

    from_index = store._resolver()
    found: dict[str, Any] = {}
    names: list[str] = []

    def resolve(ident: str) -> dict[str, Any] | None:
        identity = from_index(ident)
        if identity is not None or not is_full_identifier(ident):
            return identity
        if ident not in found:
            if not names:
                names.extend(os.listdir(store.workspace.jobs)
                             if store.workspace.jobs.is_dir() else [])
            found[ident] = None
            for name in names:
                directory = store.workspace.jobs / name / ident
                if os.path.exists(directory / "params.json"):
                    try:
                        value = read_params(directory).get("identity")
                    except (XpmstoreError, OSError):
                        continue
                    found[ident] = value if isinstance(value, dict) else None
                    break
        return found[ident]

    return resolve


def tabulate(store: Store, cls: type[Task], *, metrics: Metrics = "metrics.json",
             status: str | None = "done", all_params: bool = False,
             tags: dict[str, Any] | None = None,
             tag_filters: list[tuple[str, list[Any]]] | None = None,
             **filters: Any) -> list[dict[str, Any]]:
    """One row per task of class ``cls`` in ``store`` with that status (None: every status)
    whose tags and params match (as ``Store.find`` matches them; ``tag_filters`` as ``xpmstore
    ls --tag``), newest first; see the module doc for the columns.  Raises ConfigTypeError
    (not a Task class, a callable's bad return), UnknownFieldError / ConfigTypeError for a bad
    filter, TextValueError for a bad status or metrics path."""
    cls = check_task_class(cls)
    check_status(status)
    if isinstance(metrics, str):
        check_metrics_path(metrics)
    elif metrics is not None and not callable(metrics):
        raise ConfigTypeError(f"table(metrics=...): expected a file name, a callable or None,"
                              f" got {type(metrics).__qualname__}")
    rows: list[TaskRow] = []
    resolve = _resolver(store)
    done: set[str] = set()
    if status in ("done", None):
        root = str(store.workspace.root)
        _reconcile_folder(store, class_spec(cls).identity_name)
        for ident, data in store.matching(cls, tags, filters, resolve, reconcile=False):
            directory = f"{root}/{data['path']}"
            if not os.path.exists(f"{directory}/{DONE}"):
                continue
            done.add(ident)
            rows.append(TaskRow(ident, data.get("identity"), data.get("tags") or {}, "done",
                                data.get("created", 0.0), directory=directory))
    if status != "done":
        rows += _not_done_rows(store, cls, status, query.wanted(cls, filters), tags, resolve,
                               done)
    rows = [r for r in rows if tag_filter(r.tags, tag_filters)]
    rows.sort(key=lambda r: r.created, reverse=True)
    memo: dict[int, Any] = {}
    for row in rows:
        row.params = flatten_identity(cls, row.identity, resolve, memo)
    read_metrics(rows, metrics)
    return build_rows(rows, status_column=status is None, all_params=all_params)

