"""An object's params.json for people: the params as a tree, and as flat dotted leaves.

The values section of params.json (``serialize``) holds every object of a config tree: its
fields as given, the Params left at their default (``defaults``), its class, identifier and
whether it is a task; the identity section says which fields are Params.  :func:`params_tree`
marks each field ``param``, ``default`` (a Param left at its default) or ``meta`` (not part of
the identity); :func:`param_leaves` flattens the Params, defaults included, through nested
configs and referenced tasks (``model.hidden``, ``learned.epochs``).  Pure: no disk.
"""

from __future__ import annotations

from typing import Any

from ..admin.show import shown_value

__all__ = ["ParamNode", "param_leaves", "params_tree"]

ParamNode = dict[str, Any]
"""One field: ``name``, ``kind`` (param, default, meta), and ``value`` for a plain value, or
``class``, ``id``, ``task`` and ``children`` for a nested config or a referenced task."""

_MAX_DEPTH = 64  # deeper than this in a recorded document is damage, not a config


def _identity_fields(identity: Any) -> dict[str, Any] | None:
    fields = identity.get("fields") if isinstance(identity, dict) else None
    return fields if isinstance(fields, dict) else None


def _nested_identity(identity_value: Any) -> Any:
    """The identity section of a nested config field (None for a task reference: its
    identity is in its own params.json)."""
    if isinstance(identity_value, dict) and isinstance(identity_value.get("$config"), dict):
        return identity_value["$config"]
    return None


def _kind(name: str, defaults: dict[str, Any], identity: dict[str, Any] | None) -> str:
    if name in defaults:
        return "default"
    if identity is not None and name not in identity:
        return "meta"
    return "param"


def _object(objects: dict[str, Any], value: Any) -> tuple[str, dict[str, Any]] | None:
    """(key, object) of a ``{"$ref": key}`` value of the values section, else None."""
    if isinstance(value, dict) and isinstance(value.get("$ref"), str):
        entry = objects.get(value["$ref"])
        if isinstance(entry, dict):
            return value["$ref"], entry
    return None


def _fields(entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    fields = entry.get("fields")
    defaults = entry.get("defaults")
    return (fields if isinstance(fields, dict) else {},
            defaults if isinstance(defaults, dict) else {})


def _children(objects: dict[str, Any], entry: dict[str, Any], identity: Any,
              seen: frozenset[str]) -> list[ParamNode]:
    fields, defaults = _fields(entry)
    known = _identity_fields(identity)
    nodes: list[ParamNode] = []
    for name in sorted(set(fields) | set(defaults)):
        value = fields[name] if name in fields else defaults[name]
        node: ParamNode = {"name": str(name), "kind": _kind(name, defaults, known)}
        nested = _object(objects, value)
        if nested is not None and nested[0] not in seen and len(seen) < _MAX_DEPTH:
            key, child = nested
            node.update({"class": str(child.get("class", "?")), "id": child.get("id"),
                         "task": bool(child.get("task"))})
            child_identity = None if child.get("task") else _nested_identity(
                (known or {}).get(name))
            node["children"] = _children(objects, child, child_identity, seen | {key})
        else:
            node["value"] = shown_value(value, objects)
        nodes.append(node)
    return nodes


def _root(document: Any) -> tuple[dict[str, Any], str, dict[str, Any]] | None:
    """(objects, root key, root object) of a params.json document, or None when damaged."""
    values = document.get("values") if isinstance(document, dict) else None
    objects = values.get("objects") if isinstance(values, dict) else None
    root = values.get("root") if isinstance(values, dict) else None
    if not isinstance(objects, dict) or not isinstance(root, str):
        return None
    entry = objects.get(root)
    return (objects, root, entry) if isinstance(entry, dict) else None


def params_tree(document: Any) -> list[ParamNode] | None:
    """The fields of a params.json document's root config as a tree (see :data:`ParamNode`),
    sorted by name; None when the document does not hold a values section."""
    found = _root(document)
    if found is None:
        return None
    objects, key, entry = found
    identity = document.get("identity")
    return _children(objects, entry, identity, frozenset({key}))


def _flatten(nodes: list[ParamNode], prefix: str, out: dict[str, Any]) -> None:
    for node in nodes:
        if node["kind"] == "meta":
            continue
        name = prefix + node["name"]
        if "children" in node:
            _flatten(node["children"], name + ".", out)
        else:
            out[name] = node["value"]


def param_leaves(document: Any) -> dict[str, Any]:
    """Every Param of a params.json document with defaults filled in, by dotted name through
    nested configs and referenced tasks (``model.hidden``, ``learned.epochs``); Meta fields
    left out.  ``{}`` for a damaged document."""
    tree = params_tree(document)
    out: dict[str, Any] = {}
    if tree is not None:
        _flatten(tree, "", out)
    return out
