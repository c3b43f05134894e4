"""A task's dependencies read from its params.json: the edges fsck, rm and gc trust.

A done manifest records the identifiers of the tasks its object was made from, but a manifest
can be damaged or edited; params.json says the same thing from what the task *is*: every task,
``dep``-marked output or generated path of a task that a field (Param or Meta) holds, as
:func:`xpmstore.core.config.dependencies` finds them, recorded in its ``values`` section (whose
bytes the manifest's blake3 of params.json vouches for).
:func:`params_dependencies` reads them back without importing user code;
:func:`dependencies_problem` says how a manifest's list differs.  Pure; thread-safe.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ..core.identifier import is_full_identifier
from ..system import jsonio
from .workspace import DONE

__all__ = ["dependencies_on_disk", "dependencies_problem", "params_dependencies"]



def _full(value: Any) -> str | None:
    return value if is_full_identifier(value) else None


def _values_references(values: Any) -> set[str]:
    """The dependencies the values section describes (see the module doc)."""
    if not isinstance(values, dict) or not isinstance(values.get("objects"), dict):
        return set()
    table: dict[str, Any] = values["objects"]
    root = values.get("root")

    def entry(key: Any) -> dict[str, Any]:
        found = table.get(key) if isinstance(key, str) else None
        return found if isinstance(found, dict) else {}

    def task_of(key: Any) -> str | None:
        """The identifier of the task that owns the object ``key`` (itself, or its owners')."""
        for _ in range(len(table) + 1):  # an owner chain never loops; a damaged one stops here
            current = entry(key)
            if current.get("task"):
                return None if key == root else _full(current.get("id"))
            owner = current.get("owner")
            if not (isinstance(owner, list) and owner):
                return None
            key = owner[0]
        return None

    found: set[str] = set()
    seen: set[Any] = {root}
    stack: list[Any] = []

    def enter(key: Any) -> None:
        fields = entry(key)
        for section in ("fields", "defaults"):
            part = fields.get(section)
            if isinstance(part, dict):
                stack.extend(part.values())

    enter(root)
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif not isinstance(value, dict):
            continue
        elif "$ref" in value:
            key = value["$ref"]
            target = entry(key)
            if key == root:
                continue
            if target.get("task"):
                ident = _full(target.get("id"))
                if ident is not None:
                    found.add(ident)
                continue  # a task's own fields are its business
            producer = target.get("producer")
            if producer is not None and producer != root:
                ident = _full(entry(producer).get("id"))
                if ident is not None:
                    found.add(ident)
            if isinstance(key, str) and key not in seen:
                seen.add(key)
                enter(key)
        elif "$taskpath" in value:
            ident = task_of(value["$taskpath"])
            if ident is not None:
                found.add(ident)
        else:
            for tag in ("$tuple", "$set"):
                if isinstance(value.get(tag), list):
                    stack.extend(value[tag])
            if isinstance(value.get("$dict"), dict):
                stack.extend(value["$dict"].values())
    return found


def params_dependencies(document: Any) -> list[str]:
    """The sorted identifiers of the tasks that the params.json ``document`` says its task
    depends on (see the module doc); empty for a document that is not one.  Never raises."""
    if not isinstance(document, dict):
        return []
    found = _values_references(document.get("values"))
    found.discard(str(document.get("identifier", "")))
    return sorted(found)


def dependencies_on_disk(directory: str | os.PathLike[str]) -> list[str]:
    """The dependencies of the object at ``directory`` read from its params.json when it can be
    read, else from its done manifest, else none: the edges of a done object the index lacks
    (its manifest damaged, say), for gc and rm.  Never raises."""
    try:
        return params_dependencies(jsonio.read(os.path.join(directory, "params.json")))
    except (OSError, ValueError):
        pass
    try:
        done = jsonio.read(os.path.join(directory, DONE))
        listed = done.get("extra", {}).get("dependencies", [])
        return sorted({d for d in listed if is_full_identifier(d)})
    except (OSError, ValueError, AttributeError):
        return []


def dependencies_problem(listed: Iterable[str], expected: Iterable[str]) -> str:
    """How the dependencies a manifest lists differ from those its params.json gives ('' when
    they agree). Pure."""
    listed_set, expected_set = set(listed), set(expected)
    if listed_set == expected_set:
        return ""
    missing, extra = sorted(expected_set - listed_set), sorted(listed_set - expected_set)
    parts = ([f"{len(missing)} missing ({', '.join(i[:12] for i in missing[:3])})"]
             if missing else []) + \
        ([f"{len(extra)} not in params.json ({', '.join(i[:12] for i in extra[:3])})"]
         if extra else [])
    return "dependencies differ from params.json: " + "; ".join(parts)
