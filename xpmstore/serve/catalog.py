"""Search over every object of the workspace, a page at a time, fast at 100,000 objects.

The objects are those ``xpmstore ls`` lists (:func:`xpmstore.admin.ls.list_entries`: the index,
reconciled with a listing of ``jobs/`` and ``cache/``).  Listing a large workspace takes
seconds (docs/serve.md), so the catalog keeps the last listing in memory and answers pages from
it; a listing older than ``max_age`` seconds is replaced by a new one made on a background
thread while the old one keeps answering (stale while it revalidates).  It is a copy, never a
second source of truth: the status of each object of a page is read again from its directory,
and a listing is never older than ``max_age`` plus the time to make one.

Filters are those of ``xpmstore ls`` (kind, name, status, ``--tag k=v``) and of
``Store.find`` (params ``k=v``, dotted names through nested configs and referenced tasks,
defaults filled in), plus an identifier prefix.  Params are read from each candidate's
params.json (memoized for done objects, whose params never change), so a params filter needs a
class name, as ``find`` needs a class.  Thread-safe.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..admin.ls import list_entries
from ..errors import TextValueError
from ..store.lookup import Store
from ..store.taskstate import Status, object_status
from .paramsview import param_leaves

__all__ = ["Catalog", "Filters", "Listing", "value_key"]

Filters = dict[str, Any]
"""kind, name, status, prefix (str or None); tags, params: lists of (name, candidates) as
:func:`xpmstore.core.fromtext.parse_tag_filter` reads ``k=v``."""


@dataclass
class Listing:
    """One listing of the workspace: its entries (newest first), grouped by class name, and
    the count of each class."""

    entries: list[dict[str, Any]]
    made: float
    """``time.monotonic()`` when the listing started."""
    signature: Any
    by_name: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    names: list[dict[str, Any]] = field(default_factory=list)
    values: dict[tuple[str | None, str, str], dict[tuple[str, Any], list[int]]] = field(
        default_factory=dict)
    """(class name or None, "tag"/"param", field name) -> value key -> positions in the
    group: made the first time a filter asks for it."""

    def group(self, name: str | None) -> list[dict[str, Any]]:
        """The entries of the class ``name`` (of every class for None), newest first."""
        return self.by_name.get(name, []) if name else self.entries

    def positions(self, name: str | None, kind: str, field_name: str,
                  values_of: Callable[[dict[str, Any]], dict[str, Any]]
                  ) -> dict[tuple[str, Any], list[int]]:
        """Where each value of the tag or param ``field_name`` is found in the group of
        ``name`` (see :func:`value_key`), made once per listing.  Thread-safe (two threads may
        both make it; either result is right)."""
        key = (name, kind, field_name)
        found = self.values.get(key)
        if found is None:
            found = {}
            for at, entry in enumerate(self.group(name)):
                value = value_key(values_of(entry).get(field_name, _ABSENT))
                if value is not None:
                    found.setdefault(value, []).append(at)
            self.values[key] = found
        return found

    @classmethod
    def of(cls, entries: list[dict[str, Any]], made: float, signature: Any) -> Listing:
        """The listing of ``entries``, with its groups and counts."""
        by_name: dict[str, list[dict[str, Any]]] = {}
        counts: dict[tuple[str, str], list[int]] = {}
        for entry in entries:
            by_name.setdefault(entry["name"], []).append(entry)
            count = counts.setdefault((entry["kind"], entry["name"]), [0, 0])
            count[0] += 1
            count[1] += entry["status"] == "done"
        names = [{"kind": kind, "name": name, "objects": n, "done": done}
                 for (kind, name), (n, done) in sorted(counts.items(), key=lambda i: i[0][::-1])]
        return cls(entries, made, signature, by_name, names)


class Catalog:
    """The objects of ``store``, listed at most ``max_age`` seconds ago (see the module doc).

    A listing older than ``max_age`` is kept when nothing it is made of changed — the index
    (its last transaction) and the folders of ``jobs/`` and ``cache/`` (their times change when
    an object directory is made or removed) — for at most ``max_keep`` seconds: a status that
    changes inside a directory (a job failing) changes neither.
    """

    def __init__(self, store: Store, max_age: float = 10.0, max_keep: float = 120.0,
                 lister: Callable[[Store], list[Any]] = list_entries):  # RecordEntry each
        self.store = store
        self.max_age = max_age
        self.max_keep = max_keep
        self._lister = lister
        self._listing: Listing | None = None
        self._lock = threading.Lock()  # one listing at a time
        self._refreshing = False
        self._leaves: dict[str, dict[str, Any]] = {}

    def signature(self) -> Any:
        """What a listing is made of, cheaply: the index's last transaction and the times of
        the class folders (None when it cannot be read: list again)."""
        try:
            transaction = self.store.index.env.info()["last_txnid"]
            folders: list[tuple[str, str, int]] = []
            for kind in ("jobs", "cache"):
                with os.scandir(self.store.workspace.root / kind) as found:
                    folders.extend((kind, f.name, f.stat(follow_symlinks=False).st_mtime_ns)
                                   for f in found)
        except Exception:  # a missing folder, an index being reopened: list again
            return None
        return transaction, tuple(sorted(folders))

    def _list(self) -> Listing:
        started = time.monotonic()
        # The index brought in line first: the listing's own reconcile then finds nothing new
        # and writes nothing, so the signature taken now stays true of the listing (taken
        # after, it would hide a change made while listing; taken before the reconcile's
        # write, every listing that saw a change would count as one and be made twice).
        self.store.reconcile()
        signature = self.signature()
        listing = Listing.of(self._lister(self.store), started, signature)
        self._listing = listing
        return listing

    def listing(self) -> Listing:
        """The current listing (made now when there is none; made again in the background when
        older than ``max_age`` and the workspace changed).  Blocking on the first call."""
        listing = self._listing
        if listing is None:
            with self._lock:
                listing = self._listing or self._list()
            return listing
        age = time.monotonic() - listing.made
        if age > self.max_age and not self._refreshing:
            signature = self.signature()
            if age < self.max_keep and signature is not None and signature == listing.signature:
                listing.made = time.monotonic()  # nothing changed: keep it
            else:
                self._refreshing = True
                threading.Thread(target=self._refresh, name="xpmstore-catalog",
                                 daemon=True).start()
        return listing

    def entries(self) -> list[dict[str, Any]]:
        """The entries of the current listing, newest first (see :meth:`listing`)."""
        return self.listing().entries

    def _refresh(self) -> None:
        try:
            with self._lock:
                self._list()
        except Exception:  # a failed listing keeps the last one
            pass
        finally:
            self._refreshing = False

    def warm(self) -> None:
        """Make the first listing now (a server calls it on a thread at start, so that the
        first search does not wait); a failure is left for the first search to report."""
        try:
            self.listing()
        except Exception:  # reported by the request that needs the listing
            pass

    def invalidate(self) -> None:
        """Make the next call list again in the background (after an action changed the
        store)."""
        if self._listing is not None:
            self._listing.made = 0.0
            self._listing.signature = None

    def names(self) -> list[dict[str, Any]]:
        """Each (kind, name) with its number of objects and of done ones, by name."""
        return self.listing().names

    def params_of(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The dotted Params of an object, defaults filled in (memoized once it is done)."""
        ident = entry["identifier"]
        found = self._leaves.get(ident)
        if found is None:
            try:
                with open(f"{entry['path']}/params.json", "rb") as handle:
                    document = json.loads(handle.read())
            except (OSError, ValueError, RecursionError):
                document = None
            found = param_leaves(document)
            if entry["status"] == "done":
                self._leaves[ident] = found
        return found

    def search(self, filters: Filters, page: int = 1, per_page: int = 50) -> dict[str, Any]:
        """One page of the objects matching ``filters``, newest first: ``total``, ``page``,
        ``per_page``, ``pages``, ``items`` (each with its status read again from the disk), and
        ``listed`` (seconds since the listing was made).  Raises TextValueError for params
        without a class name."""
        if filters.get("params") and not filters.get("name"):
            raise TextValueError("a params filter needs a class name (name=...), as find()"
                                 " needs a class")
        listing = self.listing()
        name = filters.get("name")
        group = listing.group(name)
        chosen: set[int] | None = None
        for kind, values_of in (("tag", _tags_of), ("param", self.params_of)):
            for field_name, candidates in filters.get(f"{kind}s") or ():
                where = listing.positions(name, kind, field_name, values_of)
                keys = {value_key(c) for c in candidates}
                hits = {at for k in keys if k is not None for at in where.get(k, ())}
                chosen = hits if chosen is None else chosen & hits
        candidates = group if chosen is None else [group[at] for at in sorted(chosen)]
        matches = self._predicate(filters)
        matched = candidates if matches is None else [e for e in candidates if matches(e)]
        per_page = max(1, min(per_page, 500))
        pages = max(1, -(-len(matched) // per_page))
        page = max(1, min(page, pages))
        items = []
        for entry in matched[(page - 1) * per_page: page * per_page]:
            item = {k: v for k, v in entry.items() if k != "path"}
            item["status"] = object_status_of(entry)
            items.append(item)
        return {"total": len(matched), "page": page, "per_page": per_page, "pages": pages,
                "items": items, "listed": round(time.monotonic() - listing.made, 3)}

    @staticmethod
    def _predicate(filters: Filters) -> Callable[[dict[str, Any]], bool] | None:
        """One test of an entry for the kind, status and prefix filters (the name chose the
        group, tags and params the positions), or None when there is none."""
        tests: list[Test] = []
        for key in ("kind", "status"):
            if filters.get(key) is not None:
                tests.append(_equals(key, filters[key]))
        prefix = filters.get("prefix")
        if prefix:
            tests.append(lambda entry: bool(entry["identifier"].startswith(prefix)))
        if not tests:
            return None
        return lambda entry: all(test(entry) for test in tests)


Test = Callable[[dict[str, Any]], bool]


def _equals(key: str, wanted: Any) -> Test:
    return lambda entry: bool(entry[key] == wanted)


def _tags_of(entry: dict[str, Any]) -> dict[str, Any]:
    tags = entry["tags"]
    return tags if isinstance(tags, dict) else {}


_ABSENT = object()


def value_key(value: Any) -> tuple[str, Any] | None:
    """A tag's or param's value as a key such that two values have the same key exactly when
    :func:`xpmstore.core.fromtext.tag_matches` matches them (``ls --tag``'s rule: a bool only
    equals a bool, numbers equal across int and float, strings equal); None for what no
    ``k=v`` filter matches (lists, NaN, absent)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value) if value == value else None  # NaN equals nothing
    if isinstance(value, str):
        return ("s", value)
    return None


def object_status_of(entry: dict[str, Any]) -> Status:
    """The status of a listed object, read again from its directory."""
    return object_status(Path(entry["path"]))
