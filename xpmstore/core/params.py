"""params.json: the serialization of a config, and :func:`load` that rebuilds it.

A params.json has two sections (docs/identifiers.md):

* ``identity``: exactly what the encoder hashes (identity names, non-default Params, Constants,
  input digests, task identifiers), from which :func:`xpmstore.core.identifier.from_params`
  recomputes the identifier without importing user code;
* ``values``: what :func:`load` needs to rebuild the live objects (classes, every field value as
  given, Meta fields, tags, omitted defaults, ``dep`` marks), as a table of objects so that shared
  sub-configs stay shared.

The JSON forms are documented in ``docs/identifiers.md``.  Pure apart from :func:`load` and
:func:`write_params`; thread-safe.
"""

from __future__ import annotations

import base64
import enum
import importlib
import importlib.util
import json
import math
import os
import sys
import warnings
from pathlib import Path, PurePath
from typing import Any

from ..errors import (
    ClassNotFoundError,
    FormatVersionError,
    InputPathError,
    MalformedFileError,
    NotFound,
    UnsupportedValueError,
    XpmstoreError,
)
from ..system import jsonio
from . import digests, identifier
from .config import Config, FieldSpec, Task, TaskPath, class_spec
from .fields import FieldKind
from .typecheck import freeze_any

__all__ = ["PARAMS_VERSION", "changed_defaults", "from_params_file", "identity_json", "load",
           "params_json", "params_of", "read_params", "refresh_values", "to_json_bytes"]

PARAMS_VERSION = 1
_FORMAT = "xpmstore.params"
_MAIN_ALIAS = "__xpm_main__"


def _float_json(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {"$float": "nan" if value != value else ("inf" if value > 0 else "-inf")}


def _class_path(cls: type) -> str:
    module = cls.__module__
    if module.startswith(_MAIN_ALIAS):
        module = "__main__"
    return f"{module}:{cls.__qualname__}"


class _Writer:
    """Builds both sections for one root config."""

    def __init__(self) -> None:
        self.keys: dict[int, str] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.script = _main_script()

    # identity section ------------------------------------------------------------------------

    def identity(self, config: Config) -> dict[str, Any]:
        spec = class_spec(type(config))
        fields = {}
        for field_spec, value, included in _identity_fields(config):
            if included:
                fields[field_spec.name] = self.identity_value(value)
        tree: dict[str, Any] = {
            "name": spec.identity_name,
            "pathgens": sorted(relpath for _, relpath in spec.pathgens),
            "fields": fields,
        }
        producer = config.__dict__.get("_xpm_producer")
        if producer is not None and producer is not config:
            tree["output"] = producer.__identifier__
        return tree

    def identity_value(self, value: Any) -> Any:
        if value is None or (isinstance(value, (bool, str)) and not isinstance(value, enum.Enum)):
            return value
        if isinstance(value, Task):
            return {"$task": value.__identifier__, "name": class_spec(type(value)).identity_name}
        if isinstance(value, Config):
            return {"$config": self.identity(value)}
        if isinstance(value, TaskPath):
            task, rel = value.task_and_relpath()
            return {"$file": task.__identifier__, "rel": rel}
        if isinstance(value, enum.Enum):
            return {"$enum": identifier.enum_identity_name(type(value)), "member": value.name}
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return _float_json(value)
        if isinstance(value, bytes):
            return {"$bytes": base64.b64encode(value).decode("ascii")}
        if isinstance(value, PurePath):
            found = digests.digest_input(value)
            if isinstance(found, tuple):
                return {"$file": found[0], "rel": found[1]}
            return {"$digest": found.hex()}
        if isinstance(value, list):
            return [self.identity_value(v) for v in value]
        if isinstance(value, tuple):
            return {"$tuple": [self.identity_value(v) for v in value]}
        if isinstance(value, (set, frozenset)):
            ordered = sorted(value, key=lambda v: identifier.encode_value(v, digests.digest_input))
            return {"$set": [self.identity_value(v) for v in ordered]}
        if isinstance(value, dict):
            return {"$dict": {k: self.identity_value(value[k]) for k in sorted(value)}}
        raise UnsupportedValueError(f"a {type(value).__qualname__} cannot enter params.json")

    # values section --------------------------------------------------------------------------

    def key(self, config: Config) -> str:
        found = self.keys.get(id(config))
        if found is not None:
            return found
        key = str(len(self.keys))
        self.keys[id(config)] = key
        self.objects[key] = self.describe(config)
        return key

    def describe(self, config: Config) -> dict[str, Any]:
        spec = class_spec(type(config))
        entry: dict[str, Any] = {"class": _class_path(type(config)), "id": config.__identifier__}
        script = self.script_of(type(config))
        if script:
            entry["script"] = script
        if spec.is_task:
            entry["task"] = True
        fields: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        omitted = {f.name for f, _, included in _identity_fields(config) if not included}
        for name, field_spec in spec.fields.items():
            if field_spec.kind in (FieldKind.GENERATED, FieldKind.CONSTANT):
                continue
            if name not in config.__dict__:
                continue
            target = defaults if name in omitted else fields
            target[name] = self.value(config.__dict__[name])
        entry["fields"] = fields
        if defaults:
            entry["defaults"] = defaults
        tags = config.__dict__.get("_xpm_tags")
        if tags:
            entry["tags"] = dict(tags)
        producer = config.__dict__.get("_xpm_producer")
        if producer is not None and producer is not config:
            entry["producer"] = self.key(producer)
        owner = config.__dict__.get("_xpm_owner")
        if owner is not None:  # the directory of its generated paths: out/<field>/... of a task
            entry["owner"] = [self.key(owner[0]), owner[1]]
        return entry

    def script_of(self, cls: type) -> str | None:
        """The script defining ``cls`` when it is a class of ``__main__``, else None."""
        module = cls.__module__
        if module == "__main__":
            return self.script
        return _module_script(module) if module.startswith(_MAIN_ALIAS) else None

    def value(self, value: Any) -> Any:
        if isinstance(value, Config):
            return {"$ref": self.key(value)}
        if isinstance(value, TaskPath):
            return {"$taskpath": self.key(value.owner), "name": value.name}
        if isinstance(value, enum.Enum):
            found = {"$enum": _class_path(type(value)), "member": value.name}
            script = self.script_of(type(value))
            return {**found, "script": script} if script else found
        if isinstance(value, PurePath):
            return {"$path": os.fspath(value)}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return {"$tuple": [self.value(v) for v in value]}
        if isinstance(value, (set, frozenset)):
            return {"$set": [self.value(v) for v in value]}
        if isinstance(value, dict):
            return {"$dict": {k: self.value(v) for k, v in value.items()}}
        return self.identity_value(value)


def identity_json(value: Any) -> Any:
    """The JSON form a (checked) field value takes in a params.json identity section."""
    return _Writer().identity_value(value)


def _identity_fields(config: Config) -> list[tuple[FieldSpec, Any, bool]]:
    spec = class_spec(type(config))
    out = []
    for field_spec in spec.identity_fields:
        value = config.__dict__[field_spec.name]
        included = True
        if field_spec.kind is FieldKind.PARAM and field_spec.has_default:
            encoded = identifier.encode_value(value, digests.digest_input)
            included = encoded != field_spec.default_encoding()
        out.append((field_spec, value, included))
    return out


def _module_script(name: str) -> str | None:
    path = getattr(sys.modules.get(name), "__file__", None)
    return os.path.abspath(path) if path else None


def _main_script() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return os.path.abspath(path) if path else None


def params_of(config: Config) -> dict[str, Any]:
    """The params.json document of ``config`` (identifies and so seals it)."""
    ident = config.__identifier__
    writer = _Writer()
    identity = writer.identity(config)
    if identifier.from_params(identity) != ident:
        # an input file changed between the identification and now: never write a params.json
        # whose identity section disagrees with its identifier
        raise InputPathError(
            f"{type(config).__qualname__}: an input file changed while the config was being"
            " identified; build the config again once its inputs are stable"
        )
    return {
        "format": _FORMAT,
        "version": PARAMS_VERSION,
        "identifier": ident,
        "identity": identity,
        "values": {"root": writer.key(config), "objects": writer.objects},
    }


def to_json_bytes(document: dict[str, Any]) -> bytes:
    """Stable JSON bytes (sorted keys, UTF-8) of a params document."""
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8")


def read_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a params.json (a file, or a directory holding one).

    Raises NotFound when absent, FormatVersionError when not ours (malformed, nested too deep,
    not a regular file: :mod:`xpmstore.system.jsonio`) or from a newer version.
    """
    target = Path(path)
    if target.is_dir():
        target = target / "params.json"
    try:
        document = jsonio.read(target)
    except FileNotFoundError:
        raise NotFound(f"{target}: no params.json here") from None
    except MalformedFileError as exc:  # (its message names the file)
        raise FormatVersionError(str(exc)) from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise FormatVersionError(f"{target}: not an xpmstore params.json")
    version = document.get("version")
    if not isinstance(version, int) or version > PARAMS_VERSION:
        raise FormatVersionError(
            f"{target}: params.json version {version!r} is newer than this xpmstore reads"
            f" ({PARAMS_VERSION}); upgrade xpmstore"
        )
    return document


_PARAMS_JSON = "_xpm_params_json"


def params_json(config: Config) -> bytes:
    """The params.json bytes of ``config``, remembered on it until :func:`refresh_values` uses
    them (a new task's directory is prepared, then claimed: one computation for both)."""
    data = to_json_bytes(params_of(config))
    config.__dict__[_PARAMS_JSON] = data
    return data


def refresh_values(directory: Path, config: Config) -> bool:
    """Make ``directory/params.json`` carry ``config``'s values section (its Meta fields, tags,
    paths as given): what a job about to run reads, so that a re-run sees today's values.

    The identity section on disk stays as it is when it gives back ``config``'s identifier; a
    missing, unreadable or foreign file is replaced whole.  Written atomically, and only when
    something changed; returns whether it wrote.  Call it under the job's claim lock (no job
    may be reading the file while it changes).
    """
    from ..system.atomic import write_atomic

    path = directory / "params.json"
    data = config.__dict__.pop(_PARAMS_JSON, None) or to_json_bytes(params_of(config))
    try:
        old_bytes = jsonio.read_regular(path)
    except (FileNotFoundError, MalformedFileError):  # (not a file: replaced whole)
        old_bytes = b""
    if old_bytes == data:
        return False
    fresh = json.loads(data)
    try:
        old = jsonio.loads(old_bytes, str(path))
    except MalformedFileError:
        old = None
    identity = old.get("identity") if isinstance(old, dict) else None
    if identity is not None and identity != fresh["identity"]:
        try:  # an identity written otherwise (an older xpmstore) but valid: it stays
            kept = identifier.from_params(identity) == fresh["identifier"]
        except (ValueError, TypeError, RecursionError):
            kept = False
        if kept:
            data = to_json_bytes({**fresh, "identity": identity})
            if data == old_bytes:
                return False
    write_atomic(path, data, durable=False)
    return True


def from_params_file(path: str | os.PathLike[str]) -> str:
    """The identifier recomputed from a params.json's identity section (no user code).

    Raises what :func:`read_params` raises, UnsupportedValueError for a malformed identity.
    """
    return identifier.from_params(read_params(path).get("identity"))  # type: ignore[arg-type]


def changed_defaults(cls: type, recorded: Any) -> list[tuple[str, Any, Any]]:
    """(field, recorded default, today's default) of each default of ``cls`` that differs from
    the one ``recorded`` (a params.json's ``defaults`` section: field → value as written) —
    a result reused as is was made with the old one.  Pure."""
    if not isinstance(recorded, dict):
        return []
    spec = class_spec(cls)
    changed = []
    for name, was in recorded.items():
        field_spec = spec.fields.get(name)
        if field_spec is None or not field_spec.has_default:
            continue
        current = _Writer().value(field_spec.make_default())
        if current != was:
            changed.append((name, was, current))
    return changed


# --- load ----------------------------------------------------------------------------------------


def _import_class(path: str, script: str | None) -> type:
    module_name, _, qualname = path.partition(":")
    try:
        if module_name == "__main__":
            module = _main_module(script)
        else:
            module = importlib.import_module(module_name)
        found: Any = module
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ClassNotFoundError(
            f"class {path} recorded in params.json cannot be imported ({exc}); run from the"
            " folder the experiment ran from, or restore or install the code that defines it"
        ) from None
    except Exception as exc:  # the code that defines it fails while it is imported
        raise ClassNotFoundError(
            f"class {path} recorded in params.json cannot be imported: its module raised"
            f" {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(found, type):
        raise ClassNotFoundError(f"{path} recorded in params.json is no longer a class")
    return found


def _main_module(script: str | None) -> Any:
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main is not None and (not script or (main_file and os.path.abspath(main_file) == script)):
        return main
    aliases = [name for name in sys.modules if name.startswith(_MAIN_ALIAS)]
    for name in aliases:  # a script already imported (by the runner, or an earlier load)
        if not script or _module_script(name) == script:
            return sys.modules[name]
    if not script:
        raise ImportError("no script recorded for a class of __main__")
    alias = f"{_MAIN_ALIAS}{len(aliases)}" if aliases else _MAIN_ALIAS
    spec = importlib.util.spec_from_file_location(alias, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[alias]  # a script that failed half-way is not kept as imported
        raise
    return module


class _Reader:
    def __init__(self, objects: dict[str, Any]):
        self.objects = objects
        self.built: dict[str, Config] = {}
        self.owners: list[tuple[Config, str, str]] = []
        self.building: set[str] = set()

    def build_root(self, key: str) -> Config:
        """Build the object ``key`` and everything it references, then bind owners."""
        root = self.build(key)
        for config, owner_key, prefix in self.owners:
            if "_xpm_owner" not in config.__dict__:
                config.__dict__["_xpm_owner"] = (self.build(owner_key), prefix)
        return root

    def build(self, key: str) -> Config:
        found = self.built.get(key)
        if found is not None:
            return found
        if key in self.building:
            raise FormatVersionError(f"params.json: object {key!r} refers to itself")
        self.building.add(key)
        entry = self.objects[key]
        cls = _import_class(entry["class"], entry.get("script"))
        if not (isinstance(cls, type) and issubclass(cls, Config)):
            raise ClassNotFoundError(f"{entry['class']} is no longer a Config")
        kwargs = {name: self.value(v) for name, v in entry.get("fields", {}).items()}
        spec = class_spec(cls)
        for name in list(kwargs):
            if name not in spec.fields:
                warnings.warn(f"{entry['class']}.{name}: field no longer exists; ignored",
                              stacklevel=3)
                del kwargs[name]
        config = cls(**kwargs)
        self._check_defaults(cls, entry)
        for name, value in entry.get("tags", {}).items():
            config.tag(name, value)
        if "producer" in entry:
            config.__dict__["_xpm_producer"] = self.build(entry["producer"])
        if "owner" in entry:  # applied once every object exists (the owner holds this one)
            self.owners.append((config, entry["owner"][0], entry["owner"][1]))
        self.built[key] = config
        return config

    def _check_defaults(self, cls: type, entry: dict[str, Any]) -> None:
        for name, recorded, current in changed_defaults(cls, entry.get("defaults", {})):
            warnings.warn(
                f"{entry['class']}.{name}: the default changed since this result was made"
                f" (was {recorded!r}, now {current!r}); the result is reused as is — bump a"
                " Constant to invalidate",
                stacklevel=3,
            )

    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "$ref" in value:
            return self.build(value["$ref"])
        if "$taskpath" in value:
            return TaskPath(self.build(value["$taskpath"]), value["name"])
        if "$path" in value:
            return Path(value["$path"])
        if "$enum" in value:
            path = value["$enum"]
            if ":" not in path:
                raise ClassNotFoundError(f"enum {path} has no module recorded")
            enum_class: Any = _import_class(path, value.get("script"))
            return enum_class[value["member"]]
        if "$tuple" in value:
            return tuple(self.value(v) for v in value["$tuple"])
        if "$set" in value:  # elements come back hashable (a set of sets is one of frozensets)
            return frozenset(freeze_any(self.value(v)) for v in value["$set"])
        if "$dict" in value:
            return {k: self.value(v) for k, v in value["$dict"].items()}
        if "$float" in value:
            return float(value["$float"])
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        raise FormatVersionError(f"params.json value {value!r} has no known tag")


def load(path: str | os.PathLike[str], *, stacklevel: int = 2) -> Config:
    """Rebuild the config recorded in a params.json or a task directory holding one (by
    identifier: :func:`xpmstore.store.lookup.load`, which ``xpmstore.load`` is).

    The result has the same class, values, tags and ``dep`` marks, hence the same identifier.
    Raises NotFound, FormatVersionError, or ClassNotFoundError naming the class.  A result whose
    default changed since gives one warning; so does a class whose identity changed (at
    ``stacklevel``: the caller's line).
    """
    target = os.fspath(path)
    document = read_params(target)
    try:
        values = document["values"]
        config = _Reader(values["objects"]).build_root(values["root"])
    except XpmstoreError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, RecursionError) as exc:
        raise FormatVersionError(f"{target}: params.json's values section is damaged"
                                 f" ({type(exc).__name__}: {exc}); it cannot be loaded") from None
    recorded = document.get("identifier")
    if isinstance(recorded, str) and config.__identifier__ != recorded:
        warnings.warn(
            f"{type(config).__qualname__}: the class changed since {path} was written"
            f" (identifier now {config.__identifier__[:12]}, recorded {recorded[:12]})",
            stacklevel=stacklevel,
        )
    return config
