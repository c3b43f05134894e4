"""Listing the objects of a workspace: ``xpmstore ls`` (docs/cli.md).

Reconciles the index with the disk first (so results made on other hosts appear and deleted
ones disappear; only the class folders that changed are listed: :mod:`xpmstore.store.reconcile`),
and returns every field of a
:class:`~xpmstore.store.lookup.Record` (:class:`~xpmstore.store.lookup.RecordEntry`) for each
object, done or not, newest first, filtered by kind, identity name, status and tags.
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
from ..store.indexrecords import decode_summary, task_listing_members
from ..store.locate import bulk, object_kind
from ..store.lookup import RecordEntry, Store, record_entry
from ..store.objectdirs import ObjectDir
from ..store.reconcile import reconcile
from ..store.taskstate import object_status, read_launch
from ..store.workspace import Workspace

__all__ = ["list_entries", "list_json", "list_remote"]


def _unfinished(directory: Path) -> RecordEntry:
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
                 tags: list[tuple[str, list[Any]]] | None = None) -> list[RecordEntry]:
    """The objects of ``store`` matching every filter given, newest first, each as every field
    of a :class:`~xpmstore.store.lookup.Record` (JSON-ready: the path as a string).

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
                        status: str | None) -> Iterator[RecordEntry]:
    """The entries of the directories that are not done, matching the filters."""
    for directory in directories:
        if directory.done or (kind is not None and directory.kind != kind) or (
                name is not None and directory.name != name):
            continue
        entry = _unfinished(Path(directory.path))
        if status is None or entry["status"] == status:
            yield entry


def _entries(store: Store, kind: str | None, name: str | None, status: str | None,
             tags: list[tuple[str, list[Any]]] | None) -> list[RecordEntry]:
    directories = _listed(store)
    root = f"{store.workspace.root}/"
    found: list[RecordEntry] = []
    if status in (None, "done"):
        for ident, data in store.index.summaries():
            if (kind is None or data["kind"] == kind) and (name is None or data["name"] == name):
                found.append(record_entry(ident, data, "done", root + data["path"]))
    if status != "done":
        found.extend(_unfinished_entries(directories, kind, name, status))
    if tags:
        found = [e for e in found if all(tag_matches(e["tags"], k, v) for k, v in tags)]
    found.sort(key=lambda e: (e["created"], e["identifier"]), reverse=True)
    return found


def list_json(store: Store, *, kind: str | None = None, name: str | None = None,
              status: str | None = None,
              tags: list[tuple[str, list[Any]]] | None = None) -> list[str]:
    """The JSON text of each entry :func:`list_entries` gives, in the same order, with the same
    fields.  A done task's text is the index's own
    (:func:`~xpmstore.store.indexrecords.task_listing_members`), given its identifier, status
    and config by splicing: records are not decoded and encoded again.  Filters on tags take
    the general path."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    if tags:
        return [encode(e) for e in list_entries(store, kind=kind, name=name, status=status,
                                                tags=tags)]
    with bulk():
        directories = _listed(store)
        root = f"{store.workspace.root}/"
        splice = name is None and kind in (None, "task")
        found: list[tuple[float, str, str]] = []
        if status in (None, "done"):
            for ident, body in store.index.raw_records():
                task = task_listing_members(body, root) if splice else None
                if task is not None:  # spliced, not parsed
                    created, members = task
                    line = f'{{"identifier":"{ident}","status":"done",{members},"config":null}}'
                    found.append((created, ident, line))
                    continue
                data = decode_summary(body)
                if (kind is None or data["kind"] == kind) and (
                        name is None or data["name"] == name):
                    entry = record_entry(ident, data, "done", root + data["path"])
                    found.append((data["created"], ident, encode(entry)))
        if status != "done":
            found.extend((entry["created"], entry["identifier"], encode(entry))
                         for entry in _unfinished_entries(directories, kind, name, status))
        found.sort(key=lambda e: (e[0], e[1]), reverse=True)
        return [line for _, _, line in found]



def list_remote(workspace: Workspace, *, kind: str | None = None,
                name: str | None = None) -> list[dict[str, Any]]:
    """The objects of the workspace's remote, of that kind and identity name when given, newest
    first: one dict each (identifier, kind, name, size, created, tags; kind ``"corrupt"`` for
    one that does not parse).  Raises RemoteError (none configured, or unreachable)."""
    from ..remote.transfer import remote_entries
    from .remotes import need_remote

    return remote_entries(need_remote(workspace), kind=kind, name=name)
