"""Values given as text on the command line, read with the type their field declares.

``xpmstore why module:Class epochs=10 lr=0.1 model.hidden=64`` builds the config those
assignments describe: each value is parsed as its field's declared type (``int``, ``float``,
``bool`` as true/false/yes/no/1/0, ``str``, paths, Enum members by name, ``Optional`` as
``none``, Literals, and containers as JSON), and a dotted (or ``__``-separated) name sets a field
of a nested config.  ``xpmstore ls --tag k=v`` filters on tags, whose values are str, int, float
or bool.  A required field holding a config whose fields all have defaults needs no value (its
default-built config is used).  Pure but for :func:`import_class`, which imports user code, and
:func:`importable`.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import json
import os
import re
import sys
import types
import typing
from pathlib import Path, PurePath
from typing import Any

from ..errors import ClassNotFoundError, TextValueError, UnknownFieldError
from .config import Config, class_spec
from .fields import FieldKind

__all__ = ["build_config", "import_class", "importable", "parse_as", "parse_tag_filter",
           "split_assignment", "tag_matches"]

_CLASS = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def split_assignment(text: str) -> tuple[str, str]:
    """``"k=v"`` → ``("k", "v")``; raises TextValueError without ``=`` or with an empty name."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise TextValueError(f"{text!r}: expected name=value")
    return name.strip(), value


def _show(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or str(tp).replace("typing.", "")


def parse_as(text: str, tp: Any) -> Any:
    """``text`` read as a value of the declared type ``tp``; raises TextValueError."""
    try:
        return _parse(text, tp)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, TextValueError):
            raise
        raise TextValueError(f"{text!r} is not a {_show(tp)} ({exc})") from None


def _parse(text: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _parse(text, typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse(text, arg)
            except (ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise TextValueError(f"{text!r} is not a {_show(tp)}")
    if origin is typing.Literal:
        for allowed in typing.get_args(tp):
            if str(allowed) == text or (isinstance(allowed, str) and allowed == text):
                return allowed
        raise TextValueError(f"{text!r} is not one of {list(typing.get_args(tp))!r}")
    if origin in (list, tuple, set, frozenset, dict) or tp in (list, tuple, set, frozenset, dict):
        return _from_json(json.loads(text), tp)
    return _scalar(text, tp)


def _scalar(text: str, tp: Any) -> Any:
    if tp is Any or tp is object:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if tp is str:
        return text
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise TextValueError(f"{text!r} is not a bool (true/false, yes/no, 1/0)")
    if tp is int:
        return int(text)
    if tp is float:
        return float(text)
    if tp is type(None) or tp is None:
        if text.strip().lower() in ("none", "null"):
            return None
        raise TextValueError(f"{text!r} is not none")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if member.name == text or str(member.value) == text:
                return member
        raise TextValueError(f"{text!r} is not a member of {tp.__qualname__}"
                             f" ({', '.join(m.name for m in tp)})")
    if isinstance(tp, type) and (issubclass(tp, PurePath) or tp is os.PathLike):
        return Path(text)
    if isinstance(tp, type) and issubclass(tp, Config):
        raise TextValueError(f"a {tp.__qualname__} cannot be written as text: set its fields"
                             " with dotted names (field.sub=value)")
    raise TextValueError(f"values of type {_show(tp)} cannot be given as text")


def _from_json(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _from_json(value, args[0])
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _from_json(value, arg)
            except (ValueError, TypeError):
                continue
        raise TextValueError(f"{json.dumps(value)} is not a {_show(tp)}")
    if origin is list:
        if not isinstance(value, list):
            raise TextValueError(f"{json.dumps(value)} is not a JSON list")
        return [_from_json(v, args[0]) if args else v for v in value]
    if origin in (set, frozenset):
        if not isinstance(value, list):
            raise TextValueError(f"{json.dumps(value)} is not a JSON list")
        return origin(_from_json(v, args[0]) if args else v for v in value)
    if origin is tuple:
        if not isinstance(value, list):
            raise TextValueError(f"{json.dumps(value)} is not a JSON list")
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(v, args[0]) for v in value)
        if len(args) != len(value):
            raise TextValueError(f"{json.dumps(value)}: expected {len(args)} items")
        return tuple(_from_json(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise TextValueError(f"{json.dumps(value)} is not a JSON object")
        return {k: _from_json(v, args[1]) if args else v for k, v in value.items()}
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    if tp is Any or tp is object:
        return value
    if tp is type(None) and value is None:
        return None
    if isinstance(value, str):
        return _scalar(value, tp)
    raise TextValueError(f"{json.dumps(value)} is not a {_show(tp)}")


def importable(*folders: str | os.PathLike[str]) -> None:
    """Make the current directory (as with ``python -m``) and ``folders`` importable, as they
    are in a job's process (which inherits its experiment's ``sys.path``: the current directory,
    the folder of the script that ran)."""
    for folder in (os.getcwd(), *folders):
        text = os.fspath(folder)
        if text not in sys.path and not (text == os.getcwd() and "" in sys.path):
            sys.path.insert(0, text)


def import_class(text: str) -> type[Config]:
    """The Config class named ``module:Class`` (the current directory is importable, as with
    ``python -m``); raises TextValueError (malformed), ClassNotFoundError (cannot import,
    whatever the module raised while it was imported).  What the module prints while it is
    imported (a script's top-level ``print``) goes to stderr: stdout is the command's output."""
    if not _CLASS.fullmatch(text):
        raise TextValueError(f"{text!r}: expected module:Class (e.g. mypackage.tasks:Learn)")
    module_name, _, qualname = text.partition(":")
    importable()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ClassNotFoundError(f"cannot import {text} ({exc})") from None
    except Exception as exc:  # the user's module failed while it was imported
        raise ClassNotFoundError(f"cannot import {text}: importing {module_name} raised"
                                 f" {type(exc).__name__}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, Config)):
        raise TextValueError(f"{text} is not a Config or Task class")
    return found


def build_config(cls: type[Config], assignments: list[str]) -> Config:
    """An instance of ``cls`` from ``name=value`` texts (dotted names for nested configs).

    Raises TextValueError (malformed text, a value not of the field's type), UnknownFieldError
    (no such Param), and whatever the class's construction raises (missing fields...).
    """
    tree: dict[str, Any] = {}
    for text in assignments:
        name, value = split_assignment(text)
        path = re.split(r"\.|__", name)
        if any(not step for step in path):
            raise TextValueError(f"{text!r}: empty field name")
        node = tree
        for step in path[:-1]:
            child = node.setdefault(step, {})
            if not isinstance(child, dict):
                raise TextValueError(f"{text!r}: {step} is given a value and fields")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise TextValueError(f"{text!r}: {path[-1]} is given a value and fields")
        node[path[-1]] = value
    return _build(cls, tree)


def _defaults_only(cls: type[Config], seen: frozenset[type] = frozenset()) -> bool:
    """Whether ``cls()`` is whole: every field has a default or is a config of such a class."""
    if cls in seen:
        return False
    for field_spec in class_spec(cls).fields.values():
        if field_spec.has_default or field_spec.kind in (FieldKind.GENERATED,
                                                         FieldKind.CONSTANT):
            continue
        nested = field_spec.annotation
        if not (isinstance(nested, type) and issubclass(nested, Config)
                and _defaults_only(nested, seen | {cls})):
            return False
    return True


def _build(cls: type[Config], tree: dict[str, Any]) -> Config:
    spec = class_spec(cls)
    values: dict[str, Any] = {}
    for name, declared in spec.fields.items():  # a required sub-config that needs no value
        nested = declared.annotation
        if name not in tree and not declared.has_default and declared.kind in (
                FieldKind.PARAM, FieldKind.META) and isinstance(nested, type) \
                and issubclass(nested, Config) and _defaults_only(nested):
            values[name] = _build(nested, {})
    for name, given in tree.items():
        field_spec = spec.fields.get(name)
        if field_spec is None or field_spec.kind not in (FieldKind.PARAM, FieldKind.META):
            raise UnknownFieldError(f"{cls.__qualname__}: no Param named {name!r}")
        annotation = field_spec.annotation
        if isinstance(given, dict):
            if not (isinstance(annotation, type) and issubclass(annotation, Config)):
                raise TextValueError(f"{cls.__qualname__}.{name} is not a nested config")
            values[name] = _build(annotation, given)
        else:
            try:
                values[name] = parse_as(given, annotation)
            except TextValueError as exc:
                raise TextValueError(f"{cls.__qualname__}.{name}: {exc}") from None
    return cls(**values)


def parse_tag_filter(text: str) -> tuple[str, list[Any]]:
    """``"k=v"`` → (k, the values v may stand for: the string itself, and the int, float or
    bool it spells); raises TextValueError."""
    name, value = split_assignment(text)
    candidates: list[Any] = [value]
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        candidates.append(lowered == "true")
    try:
        candidates.append(int(value))
    except ValueError:
        pass
    try:
        number = float(value)
        if number == number:  # NaN never equals a tag
            candidates.append(number)
    except ValueError:
        pass
    return name, candidates


def tag_matches(tags: dict[str, Any], name: str, candidates: list[Any]) -> bool:
    """Whether ``tags[name]`` is one of ``candidates`` (bools only match bools)."""
    if name not in tags:
        return False
    value = tags[name]
    return any(type(value) is type(c) and value == c for c in candidates) or any(
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and isinstance(c, (int, float)) and not isinstance(c, bool) and value == c
        for c in candidates)
