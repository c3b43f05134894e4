"""Listing the objects of a workspace: ``xpmstore ls`` (docs/cli.md).

Reconciles the index with the disk first (so results made on other hosts appear and deleted
ones disappear; only the class folders that changed are listed: :mod:`xpmstore.store.reconcile`),
and returns a :class:`~xpmstore.store.lookup.Record`
for each object, done or not, newest first, filtered by kind, identity name, status and tags.
Done objects come from the index; task directories that are not done (running, failed,
waiting, leftovers) are read from the disk (their size and dependencies are not known: 0 and
none; their tags are those of their launch record).  Safe across processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.fromtext import tag_matches
from ..store.indexrecords import summary, without_identity
from ..store.locate import ObjectDir, bulk, object_kind
from ..store.lookup import Record, Store
from ..store.reconcile import reconcile
from ..store.taskstate import object_status, read_launch

__all__ = ["list_entries", "list_json", "list_records"]


def _unfinished(directory: Path) -> dict[str, Any]:
    try:
        stamp = directory.stat().st_mtime
    except OSError:
        stamp = 0.0
    tags = (read_launch(directory) or {}).get("tags")
    return {"identifier": directory.name, "kind": object_kind(directory),
            "name": directory.parent.name, "status": object_status(directory),
            "path": str(directory), "created": stamp, "last_access": stamp, "size": 0,
            "tags": tags if isinstance(tags, dict) else {}, "dependencies": [], "config": None}


def list_entries(store: Store, *, kind: str | None = None, name: str | None = None,
                 status: str | None = None,
                 tags: list[tuple[str, list[Any]]] | None = None) -> list[dict[str, Any]]:
    """The objects of ``store`` matching every filter given, newest first, each as a dict of
    every field of a :class:`~xpmstore.store.lookup.Record` (JSON-ready: the path as a string).

    ``tags`` holds (name, acceptable values) pairs, as
    :func:`xpmstore.core.fromtext.parse_tag_filter` reads them from ``k=v``.
    """
    with bulk():
        return _entries(store, kind, name, status, tags)


def _listed(store: Store) -> list[ObjectDir]:
    """The object directories the index does not hold (not done, or done but unreadable),
    after reconciling the index with the disk (:mod:`xpmstore.store.reconcile`)."""
    return reconcile(store.index, store.workspace).unindexed


def _unfinished_entries(directories: list[ObjectDir], kind: str | None, name: str | None,
                        status: str | None) -> Iterator[dict[str, Any]]:
    """The entries of the directories that are not done, matching the filters."""
    for directory in directories:
        if directory.done or (kind is not None and directory.kind != kind) or (
                name is not None and directory.name != name):
            continue
        entry = _unfinished(Path(directory.path))
        if status is None or entry["status"] == status:
            yield entry


def _entries(store: Store, kind: str | None, name: str | None, status: str | None,
             tags: list[tuple[str, list[Any]]] | None) -> list[dict[str, Any]]:
    directories = _listed(store)
    root = f"{store.workspace.root}/"
    found: list[dict[str, Any]] = []
    if status in (None, "done"):
        for ident, data in store.index.summaries():
            if (kind is None or data["kind"] == kind) and (name is None or data["name"] == name):
                found.append(_done_entry(ident, data, root))
    if status != "done":
        found.extend(_unfinished_entries(directories, kind, name, status))
    if tags:
        found = [e for e in found if all(tag_matches(e["tags"], k, v) for k, v in tags)]
    found.sort(key=lambda e: (e["created"], e["identifier"]), reverse=True)
    return found


def _done_entry(ident: str, data: dict[str, Any], root: str) -> dict[str, Any]:
    return {"identifier": ident, "kind": data["kind"], "name": data["name"], "status": "done",
            "path": root + data["path"], "created": data["created"],
            "last_access": data.get("last_access", 0.0), "size": data.get("size", 0),
            "tags": data.get("tags") or {}, "dependencies": data.get("dependencies") or [],
            "config": data.get("config")}


_TASK_START = '{"kind":"task","name":'
_PATH_KEY = ',"path":"'
_CREATED_KEY = ',"created":'


def _task_created(text: str | None) -> float | None:
    """The ``created`` time of a task record's JSON text, read without parsing the rest; None
    for anything else (a cache entry, a record of another shape): those are parsed."""
    if text is None or not text.startswith(_TASK_START) or '"config":' in text:
        return None
    start = text.find(_CREATED_KEY)  # the first: kind, name and path come before it
    if start < 0:
        return None
    start += len(_CREATED_KEY)
    end = text.find(",", start)
    try:
        return float(text[start:end])
    except ValueError:
        return None


def list_json(store: Store, *, kind: str | None = None, name: str | None = None,
              status: str | None = None,
              tags: list[tuple[str, list[Any]]] | None = None) -> list[str]:
    """The JSON text of each entry :func:`list_entries` gives, in the same order, with the same
    fields.  A done task's text is the index's own (its identity section cut off), given its
    identifier, status, absolute path and config by splicing: 100,000 records are not encoded
    again (about a third of ``xpmstore ls --json``).  Filters on tags take the general path."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    if tags:
        return [encode(e) for e in list_entries(store, kind=kind, name=name, status=status,
                                                tags=tags)]
    with bulk():
        directories = _listed(store)
        root = f"{store.workspace.root}/"
        quoted_root = _PATH_KEY[:-1] + json.dumps(root)[:-1]  # ,"path":"<root>   (open quote)
        found: list[tuple[float, str, str]] = []
        if status in (None, "done"):
            for ident, value in store.index.raw_records():
                text = without_identity(value)
                created = _task_created(text) if name is None and kind in (None, "task") \
                    else None
                if text is not None and created is not None:  # a task: spliced, not parsed
                    body = text.replace(_PATH_KEY, quoted_root, 1)
                    line = f'{{"identifier":"{ident}","status":"done",{body[1:-1]},"config":null}}'
                    found.append((created, ident, line))
                    continue
                data = summary(value)
                if (kind is None or data["kind"] == kind) and (
                        name is None or data["name"] == name):
                    found.append((data["created"], ident, encode(_done_entry(ident, data, root))))
        if status != "done":
            found.extend((entry["created"], entry["identifier"], encode(entry))
                         for entry in _unfinished_entries(directories, kind, name, status))
        found.sort(key=lambda e: (e[0], e[1]), reverse=True)
        return [line for _, _, line in found]


def list_records(store: Store, *, kind: str | None = None, name: str | None = None,
                 status: str | None = None,
                 tags: list[tuple[str, list[Any]]] | None = None) -> list[Record]:
    """:func:`list_entries` as :class:`~xpmstore.store.lookup.Record` objects."""
    return [Record(**{**entry, "path": Path(entry["path"])})
            for entry in list_entries(store, kind=kind, name=name, status=status, tags=tags)]
