"""Matching recorded identity sections against a query (``Store.find``, ``Store.explain``).

A query names fields by paths (``model__hidden``) through nested configs and task references;
a recorded object holds only its identity section, where a Param left at its default is absent
and a task reference is the referenced task's identifier.  The functions here walk both: the
declared classes say what each step is, ``resolve`` gives a referenced task's identity section,
and an absent field is the default the class declares (a nested default config's own fields
included).  A ``@cache`` entry records only its config's identifier: :func:`config_of` builds the
config a query describes.  Pure: no disk, no index (``resolve`` is the caller's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import (
    ConfigTypeError,
    InputPathError,
    Mismatch,
    MissingFieldError,
    UnknownFieldError,
)
from . import digests, identifier
from .config import Config, FieldSpec, class_spec
from .fields import FieldKind

__all__ = ["Resolve", "Wanted", "config_of", "differences", "field_for", "matches",
           "nested_class", "query_encoding", "referenced_identity", "stored_encoding", "wanted"]

Resolve = Callable[[str], "dict[str, Any] | None"]
"""The identity section of the task of an identifier, or None when it is not known."""

_ABSENT = object()


def _nested(spec: FieldSpec | None) -> type[Config] | None:
    annotation = spec.annotation if spec is not None else None
    if isinstance(annotation, type) and issubclass(annotation, Config):
        return annotation
    return None


def nested_class(cls: type[Config], name: str) -> type[Config]:
    """The config (or task) class declared by the field ``name`` of ``cls``; raises
    UnknownFieldError when it is not such a field."""
    nested = _nested(class_spec(cls).fields.get(name))
    if nested is None:
        raise UnknownFieldError(f"{cls.__qualname__}.{name}: not a nested config or task field")
    return nested


def field_for(cls: type[Config], path: list[str]) -> tuple[type[Config], FieldSpec]:
    """The class that declares the last field of ``path`` and that field's spec.

    Raises UnknownFieldError naming the step that is not a nested config (or task) field, or
    the last name when it is not a Param or Constant.
    """
    current: type[Config] = cls
    for step in path[:-1]:
        current = nested_class(current, step)
    field_spec = class_spec(current).fields.get(path[-1])
    if field_spec is None or field_spec.kind not in (FieldKind.PARAM, FieldKind.CONSTANT):
        raise UnknownFieldError(f"{current.__qualname__}: no Param named {path[-1]!r}")
    return current, field_spec


def query_encoding(cls: type[Config], path: list[str], value: Any) -> bytes:
    """The encoding of ``value`` given for the field at ``path``, checked with its declared type
    (ConfigTypeError naming the field when it does not fit)."""
    owner, field_spec = field_for(cls, path)
    try:
        checked = field_spec.checker(value)
    except Mismatch as exc:
        raise ConfigTypeError(f"{owner.__qualname__}.{path[-1]}: {exc.message}") from None
    return identifier.encode_value(checked, digests.digest_input)


def _stored(cls: type[Config], identity: Any, path: list[str],
            resolve: Resolve) -> tuple[str, Any]:
    """What a recorded object holds at ``path``: ``("json", v)`` a value of its identity
    section, ``("live", v)`` a default's Python value, or ``("none", None)`` (nothing there: a
    reference that cannot be followed, a step that is not a config)."""
    current: type[Config] = cls
    tree: Any = identity
    live: Any = _ABSENT  # once inside a default config: its Python object
    for position, step in enumerate(path):
        if live is not _ABSENT:
            if not isinstance(live, Config) or step not in live.__dict__:
                return "none", None
            live = live.__dict__[step]
            continue
        spec = class_spec(current).fields.get(step)
        fields = tree.get("fields") if isinstance(tree, dict) else None
        if spec is None or not isinstance(fields, dict):
            return "none", None
        value = fields.get(step, _ABSENT)
        if value is _ABSENT:  # left at its default: the class says which
            if not spec.has_default:
                return "none", None
            live = spec.make_default()
            continue
        if position == len(path) - 1:
            return "json", value
        nested = _nested(spec)
        if nested is None or not isinstance(value, dict):
            return "none", None
        if "$config" in value:
            tree = value["$config"]
        elif isinstance(value.get("$task"), str):
            tree = resolve(value["$task"])  # follow the reference: the task's own identity
        else:
            return "none", None
        current = nested
    return ("live", live) if live is not _ABSENT else ("none", None)


def stored_encoding(cls: type[Config], identity: Any, path: list[str],
                    resolve: Resolve) -> bytes | None:
    """The encoding of the value a recorded object of class ``cls`` has at ``path`` (defaults
    filled in, task references followed through ``resolve``); None when it has none."""
    if len(path) == 1:  # the common case: a default's encoding is memoized by its field
        fields = identity.get("fields") if isinstance(identity, dict) else None
        spec = class_spec(cls).fields.get(path[0])
        if isinstance(fields, dict) and path[0] not in fields and spec is not None:
            return spec.default_encoding()
    kind, value = _stored(cls, identity, path, resolve)
    try:
        if kind == "json":
            return identifier.identity_value_bytes(value)
        if kind == "live":
            return identifier.encode_value(value, digests.digest_input)
    except (TypeError, ValueError, InputPathError, RecursionError):
        return None  # a damaged record, or a default input file that is gone: no match
    return None


Wanted = list[tuple[list[str], bytes]]
"""What a query asks: (field path, encoding of the value asked) pairs."""


def wanted(cls: type[Config], params: dict[str, Any]) -> Wanted:
    """The query ``params`` (``model__hidden=64``) as field paths and encodings, each checked
    against the field's declared type (UnknownFieldError, ConfigTypeError)."""
    return [(path.split("__"), query_encoding(cls, path.split("__"), value))
            for path, value in params.items()]


def matches(cls: type[Config], identity: Any, tags: Any, asked: Wanted,
            asked_tags: dict[str, Any] | None, resolve: Resolve) -> bool:
    """Whether a recorded object (its identity section and tags) has the asked tags and params
    (defaults filled in, task references followed through ``resolve``)."""
    if asked_tags:
        held = tags if isinstance(tags, dict) else {}
        if any(held.get(k) != v for k, v in asked_tags.items()):
            return False
    return all(stored_encoding(cls, identity or {}, path, resolve) == encoding
               for path, encoding in asked)


def referenced_identity(value: Any, resolve: Resolve) -> dict[str, Any] | None:
    """The identity section a field's recorded JSON ``value`` stands for: a nested config's, or
    that of the task it references (when ``resolve`` knows it); None for a plain value."""
    if not isinstance(value, dict):
        return None
    if "$config" in value:
        nested = value["$config"]
    elif isinstance(value.get("$task"), str):
        nested = resolve(value["$task"])
    else:
        return None
    return nested if isinstance(nested, dict) else None


def _leaves(identity: Any, resolve: Resolve, prefix: str = "",
            depth: int = 0) -> dict[str, Any]:
    """Every leaf field of an identity section (nested configs, and the tasks it references
    when ``resolve`` knows them, flattened with dots)."""
    out: dict[str, Any] = {}
    fields = identity.get("fields") if isinstance(identity, dict) else None
    for key, value in (fields if isinstance(fields, dict) else {}).items():
        nested = referenced_identity(value, resolve) if depth < _MAX_DEPTH else None
        if nested is not None:
            out.update(_leaves(nested, resolve, f"{prefix}{key}.", depth + 1))
        else:
            out[f"{prefix}{key}"] = value
    return out


_MAX_DEPTH = 64  # nesting deeper than this in a recorded identity is damage, not a config


def _shown(cls: type[Config], identity: Any, path: str, leaves: dict[str, Any],
           resolve: Resolve) -> str:
    """The text of the value at ``path`` of a recorded identity: its JSON, or for a field left
    at its default, the default's value."""
    if path in leaves:
        return json.dumps(leaves[path], sort_keys=True)
    kind, value = _stored(cls, identity, path.split("."), resolve)
    if kind == "live":
        from .params import identity_json

        try:
            return json.dumps(identity_json(value), sort_keys=True)
        except (TypeError, ValueError, InputPathError):
            return repr(value)
    return "(not set)"


def differences(cls: type[Config], theirs: Any, mine: Any, resolve: Resolve) -> list[str]:
    """``"field: X here, Y asked"`` for every leaf field in which a recorded identity section
    (``theirs``) and the one asked for (``mine``) differ, sorted by field.  Referenced tasks
    that ``resolve`` knows are compared field by field (``learned.epochs``); a field left at
    its default shows the default's value."""
    their_leaves, my_leaves = _leaves(theirs, resolve), _leaves(mine, resolve)
    lines = []
    for path in sorted(their_leaves.keys() | my_leaves.keys()):
        here = _shown(cls, theirs, path, their_leaves, resolve)
        asked = _shown(cls, mine, path, my_leaves, resolve)
        if here != asked:
            lines.append(f"{path}: {here} here, {asked} asked")
    return lines


class _Fields(dict[str, Any]):
    """The fields of a nested config, given as ``a__b`` names (not a dict value)."""


def config_of(cls: type[Config], params: dict[str, Any]) -> Config:
    """The config of class ``cls`` that ``params`` describe (``a__b`` names set fields of
    nested configs), identified (what ``find`` matches a ``@cache`` entry's config with).

    Raises MissingFieldError unless it is whole, UnknownFieldError, and the class's own errors.
    """
    tree = _Fields()
    for name, value in params.items():
        *steps, last = name.split("__")
        node = tree
        for step in steps:
            node = node.setdefault(step, _Fields())
            if not isinstance(node, _Fields):
                raise UnknownFieldError(f"{cls.__qualname__}.{name}: {step} is given a value"
                                        " and fields")
        node[last] = value

    def build(current: type[Config], values: _Fields) -> Config:
        kwargs = {}
        for name, value in values.items():
            if isinstance(value, _Fields):
                value = build(nested_class(current, name), value)
            kwargs[name] = value
        return current(**kwargs)

    config = build(cls, tree)
    try:
        config.__identifier__  # noqa: B018 (identifying checks that it is whole)
    except MissingFieldError as exc:
        raise MissingFieldError(
            f"{exc}: a @cache entry records only its config's identifier, so find() of"
            f" {cls.__qualname__} needs every field without a default"
        ) from None
    return config
