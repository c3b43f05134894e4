"""Search over every object of the workspace, a page at a time, fast at 100,000 objects.

The objects are those ``xpmstore ls`` lists (:func:`xpmstore.listing.list_entries`: the index,
reconciled with a listing of ``jobs/`` and ``cache/``).  Listing 100,000 objects takes over a
second, so the catalog keeps the last listing in memory and answers pages from it; a listing
older than ``max_age`` seconds is replaced by a new one made on a background thread while the
old one keeps answering (stale while it revalidates).  It is a copy, never a second source of
truth: the status of each object of a page is read again from its directory, and a listing is
never older than ``max_age`` plus the time to make one.

Filters are those of ``xpmstore ls`` (kind, name, status, ``--tag k=v``) and of
``Store.find`` (params ``k=v``, dotted names through nested configs and referenced tasks,
defaults filled in), plus an identifier prefix.  Params are read from each candidate's
params.json (memoized for done objects, whose params never change), so a params filter needs a
class name, as ``find`` needs a class.  Thread-safe.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import TextValueError
from ..listing import list_entries
from ..store import Store, object_status
from ..textvalues import tag_matches
from .params import param_leaves

__all__ = ["Catalog", "Filters"]

Filters = dict[str, Any]
"""kind, name, status, prefix (str or None); tags, params: lists of (name, candidates) as
:func:`xpmstore.textvalues.parse_tag_filter` reads ``k=v``."""


class Catalog:
    """The objects of ``store``, listed at most ``max_age`` seconds ago (see the module doc)."""

    def __init__(self, store: Store, max_age: float = 10.0,
                 lister: Callable[[Store], list[dict[str, Any]]] = list_entries):
        self.store = store
        self.max_age = max_age
        self._lister = lister
        self._entries: list[dict[str, Any]] | None = None
        self._made = 0.0
        self._lock = threading.Lock()  # one listing at a time
        self._refreshing = False
        self._leaves: dict[str, dict[str, Any]] = {}

    def _list(self) -> None:
        started = time.monotonic()
        entries = self._lister(self.store)
        self._entries, self._made = entries, started

    def entries(self) -> list[dict[str, Any]]:
        """The current listing (made now when there is none; refreshed in the background when
        older than ``max_age``).  Blocking on the first call."""
        if self._entries is None:
            with self._lock:
                if self._entries is None:
                    self._list()
        elif time.monotonic() - self._made > self.max_age and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh, name="xpmstore-catalog", daemon=True).start()
        assert self._entries is not None
        return self._entries

    def _refresh(self) -> None:
        try:
            with self._lock:
                self._list()
        except Exception:
            pass
        finally:
            self._refreshing = False

    def warm(self) -> None:
        """Make the first listing now (a server calls it on a thread at start, so that the
        first search does not wait); a failure is left for the first search to report."""
        try:
            self.entries()
        except Exception:  # reported by the request that needs the listing
            pass

    def invalidate(self) -> None:
        """Make the next call list again in the background (after an action changed the
        store)."""
        self._made = 0.0

    def names(self) -> list[dict[str, Any]]:
        """Each (kind, name) with its number of objects and of done ones, by name."""
        counts: dict[tuple[str, str], list[int]] = {}
        for entry in self.entries():
            count = counts.setdefault((entry["kind"], entry["name"]), [0, 0])
            count[0] += 1
            count[1] += entry["status"] == "done"
        return [{"kind": kind, "name": name, "objects": n, "done": done}
                for (kind, name), (n, done) in sorted(counts.items(), key=lambda i: i[0][::-1])]

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
        entries = self.entries()
        made = self._made
        matched = [entry for entry in entries if self._matches(entry, filters)]
        per_page = max(1, min(per_page, 500))
        pages = max(1, -(-len(matched) // per_page))
        page = max(1, min(page, pages))
        items = []
        for entry in matched[(page - 1) * per_page: page * per_page]:
            item = {k: v for k, v in entry.items() if k != "path"}
            item["status"] = object_status_of(entry)
            items.append(item)
        return {"total": len(matched), "page": page, "per_page": per_page, "pages": pages,
                "items": items, "listed": round(time.monotonic() - made, 3)}

    def _matches(self, entry: dict[str, Any], filters: Filters) -> bool:
        for key in ("kind", "name", "status"):
            wanted = filters.get(key)
            if wanted is not None and entry[key] != wanted:
                return False
        prefix = filters.get("prefix")
        if prefix and not entry["identifier"].startswith(prefix):
            return False
        tags = entry["tags"]
        if any(not tag_matches(tags, k, v) for k, v in filters.get("tags") or ()):
            return False
        params = filters.get("params")
        if params:
            leaves = self.params_of(entry)
            if any(not tag_matches(leaves, k, v) for k, v in params):
                return False
        return True


def object_status_of(entry: dict[str, Any]) -> str:
    """The status of a listed object, read again from its directory."""
    return object_status(Path(entry["path"]))
