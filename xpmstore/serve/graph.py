"""The provenance graph of an object: what it was made from (its dependencies, transitively)
and what uses it (its dependents), as nodes and edges for the page's layout library.

Edges come from the index (the records of done objects and their dependents) and from the
job lines of the run records (a job that is not done yet has no record, but its run names its
dependencies).  The walk is breadth-first in each direction up to ``depth`` steps and stops at
``limit`` nodes (``truncated`` then says so).  Reads only; blocking (disk, index).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..store.index import Index
from ..store.indexrecords import IndexRecord
from ..store.locate import locate
from ..store.taskstate import object_status
from ..store.workspace import Workspace
from .runcache import JobEdges

__all__ = ["MAX_DEPTH", "MAX_NODES", "provenance"]

MAX_DEPTH = 20
MAX_NODES = 400


def _walk(start: str, step: Callable[[str], Iterable[str]], depth: int, limit: int,
          nodes: dict[str, int], edges: set[tuple[str, str]], upstream: bool) -> bool:
    """Breadth-first from ``start`` through ``step``; adds nodes (with their distance, negative
    upstream) and edges (dependency, dependent); returns whether ``limit`` cut it short."""
    queue = deque([(start, 0)])
    while queue:
        current, distance = queue.popleft()
        if distance >= depth:
            continue
        for other in step(current):
            edges.add((other, current) if upstream else (current, other))
            if other not in nodes:
                if len(nodes) >= limit:
                    return True
                nodes[other] = -(distance + 1) if upstream else distance + 1
                queue.append((other, distance + 1))
    return False


def provenance(workspace: Workspace, text: str, jobs: JobEdges, depth: int = 3,
               limit: int = MAX_NODES) -> dict[str, Any]:
    """Nodes (identifier, name, kind, status, distance: negative for what it was made from,
    0 for the object, positive for what uses it) and edges (``from`` the dependency ``to`` its
    dependent) around the object ``text`` names.  Raises InvalidIdentifierError, NotFound,
    AmbiguousPrefixError.  ``jobs``: the dependencies the run records name."""
    identifier, _ = locate(workspace, text)
    index = Index.for_workspace(workspace)
    depends, used_by, names = jobs.depends, jobs.used_by, jobs.names
    records: dict[str, IndexRecord | None] = {}

    def record(ident: str) -> IndexRecord | None:
        if ident not in records:
            records[ident] = index.get(ident)
        return records[ident]

    def dependencies(ident: str) -> list[str]:
        data = record(ident)
        found = set(depends.get(ident, ()))
        if data is not None:
            found.update(data.get("dependencies") or [])
        return sorted(found)

    def dependents(ident: str) -> list[str]:
        return sorted(set(index.dependents(ident)) | used_by.get(ident, set()))

    depth = max(1, min(depth, MAX_DEPTH))
    nodes = {identifier: 0}
    edges: set[tuple[str, str]] = set()
    cut = _walk(identifier, dependencies, depth, limit, nodes, edges, upstream=True)
    cut = _walk(identifier, dependents, depth, limit, nodes, edges, upstream=False) or cut
    shown = []
    for ident, distance in nodes.items():
        data = record(ident)
        name = data["name"] if data is not None else names.get(ident, "?")
        kind = data["kind"] if data is not None else "task"
        status = "done" if data is not None else "absent"
        if name != "?" and "/" not in name and not name.startswith("."):
            status = object_status(workspace.object_dir(kind, name, ident))
        shown.append({"identifier": ident, "name": name, "kind": kind, "status": status,
                      "distance": distance})
    return {"root": identifier, "nodes": shown,
            "edges": [{"from": a, "to": b} for a, b in sorted(edges) if a in nodes and b in nodes],
            "truncated": cut, "depth": depth}
