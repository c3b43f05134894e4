"""``Config`` and ``Task``: typed, keyword-only, sealed once identified; their identifiers.

A config class declares its fields with :mod:`xpmstore.core.fields`; this module turns the
declarations into a :class:`ClassSpec` once per class (types compiled into checkers, defaults
checked, the identity header encoded), builds instances, seals them, and computes
``__identifier__`` through the pure encoder of :mod:`xpmstore.core.identifier`.

Instances are not thread-safe while being built; once sealed they are immutable and may be shared
by threads.  Nothing here touches the disk except reading input files to digest them (through
:func:`xpmstore.core.digests.digest_input`).
"""

from __future__ import annotations

import os
import re
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    ConfigTypeError,
    ConfigValueError,
    ConstantFieldError,
    InputPathError,
    Mismatch,
    MissingFieldError,
    SealedConfigError,
    TagConflictError,
    UnboundPathError,
    UnknownFieldError,
    UnsupportedType,
    UnsupportedValueError,
    XpmstoreError,
)
from . import digests, identifier, typecheck
from .active import active
from .fields import _MISSING, FieldDefault, FieldKind, PathGenerator
from .typecheck import FrozenDict, FrozenList, compile_type

__all__ = [
    "ClassSpec",
    "Config",
    "Dep",
    "FieldSpec",
    "Task",
    "TaskPath",
    "class_spec",
    "dependencies",
    "identity_name",
    "iter_configs",
    "tags_of",
]

_IDENTITY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


@dataclass
class FieldSpec:
    """One declared field of a config class."""

    name: str
    kind: FieldKind
    annotation: Any
    checker: Callable[[Any], Any]
    default: Any = _MISSING
    factory: Callable[[], Any] | None = None
    pathgen: str | None = None
    name_bytes: bytes = b""
    _default_encoding: bytes | None = None
    skippable: bool = False
    """A Param with a default: left out of the identity when its encoding equals the default's."""

    @property
    def has_default(self) -> bool:
        """Whether the field has a default value or factory."""
        return self.default is not _MISSING or self.factory is not None

    @property
    def in_identity(self) -> bool:
        """Whether the field enters the identifier (Param, Constant)."""
        return self.kind is FieldKind.PARAM or self.kind is FieldKind.CONSTANT

    def make_default(self) -> Any:
        """A fresh default value (the factory's, checked and frozen)."""
        if self.factory is None:
            return self.default
        return self.checker(self.factory())

    def default_encoding(self) -> bytes | None:
        """The encoding of the default (computed once, but every time for a default that holds
        a path, whose content may change); None without a default or when the default is an
        input path that does not exist (then no given value can equal it)."""
        if self._default_encoding is not None or not self.has_default:
            return self._default_encoding
        default = self.make_default()
        try:
            encoded = identifier.encode_value(default, digests.digest_input)
        except InputPathError:
            return None
        if not _holds_path(default):
            self._default_encoding = encoded
        return encoded


def _holds_path(value: Any) -> bool:
    return any(isinstance(item, os.PathLike) for item in iter_values(value))


@dataclass
class ClassSpec:
    """What xpmstore knows of a config class, computed once per class."""

    cls: type
    identity_name: str
    fields: dict[str, FieldSpec]
    identity_fields: list[FieldSpec]
    defaulted: list[FieldSpec]
    required: list[str]
    required_meta: bool
    pathgens: list[tuple[str, str]]
    header: bytes
    is_task: bool
    identity_plan: tuple[tuple[str, bytes, FieldSpec | None], ...] = ()
    """(name, encoded name, the field when its default may be left out) of each identity
    field, in encoding order: what :func:`_identify` walks."""
    identities: dict[tuple[Any, ...], bytes] = dataclass_field(default_factory=dict)
    """The raw identifiers of configs of this class already identified in this process, by
    :func:`_plain_key` of their values (see :func:`_identify`)."""

    def __post_init__(self) -> None:
        self.identity_plan = tuple((f.name, f.name_bytes, f if f.skippable else None)
                                   for f in self.identity_fields)


def identity_name(cls: type) -> str:
    """The name under which ``cls`` enters identifiers: ``__xpmid__`` or ``module.QualName``."""
    explicit = cls.__dict__.get("__xpmid__")
    if explicit is not None:
        return str(explicit)
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_declaration(cls: type) -> None:
    explicit = cls.__dict__.get("__xpmid__")
    if explicit is not None:
        if not isinstance(explicit, str) or not _IDENTITY_NAME.fullmatch(explicit):
            raise ConfigValueError(
                f"{cls.__qualname__}.__xpmid__ = {explicit!r}: expected a name matching"
                " [A-Za-z_][A-Za-z0-9_.]*"
            )
        return
    if cls.__module__ == "__main__":
        raise ConfigValueError(
            f"{cls.__qualname__} is defined in __main__: set __xpmid__ = \"<stable name>\" on it,"
            " since job processes import the script under another name"
        )
    if not _IDENTITY_NAME.fullmatch(f"{cls.__module__}.{cls.__qualname__}"):
        raise ConfigValueError(
            f"{cls.__qualname__} is defined inside a function: define it at module level or set"
            " __xpmid__ on it"
        )


def _field_kind(hint: Any) -> tuple[FieldKind, Any, str | None] | None:
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    base, *metadata = typing.get_args(hint)
    for mark in metadata:
        if isinstance(mark, PathGenerator):
            return FieldKind.GENERATED, base, mark.name
    for mark in reversed(metadata):
        if isinstance(mark, FieldKind):
            return mark, base, None
    return None


_RESERVED = frozenset({"tag", "submit", "execute", "task_outputs"})


def _build_field(cls: type, name: str, hint: Any) -> FieldSpec | None:
    found = _field_kind(hint)
    if found is None:
        return None
    kind, base, pathgen = found
    where = f"{cls.__qualname__}.{name}"
    if name.startswith("_") or name in _RESERVED:
        raise ConfigValueError(f"{where}: this name is reserved; rename the field")
    try:
        checker = compile_type(base)
    except UnsupportedType as exc:
        raise ConfigTypeError(f"{where}: {exc}") from None
    spec = FieldSpec(name, kind, base, checker, pathgen=pathgen,
                     name_bytes=identifier.field_name_bytes(name))
    raw = _MISSING
    for klass in cls.__mro__:
        if name in klass.__dict__:
            raw = klass.__dict__[name]
            break
    if kind is FieldKind.GENERATED:
        if not (isinstance(base, type) and issubclass(base, os.PathLike)):
            raise ConfigTypeError(f"{where}: a pathgenerator field must be declared as Path")
        if raw is not _MISSING:
            raise ConstantFieldError(f"{where}: a generated path cannot have a default")
        return spec
    if isinstance(raw, FieldDefault):
        if raw.default_factory is not None:
            spec.factory = raw.default_factory
            try:
                spec.make_default()
            except Mismatch as exc:
                raise _type_error(cls, name, exc) from None
            return spec
        raw = raw.default
    if raw is _MISSING:
        if kind is FieldKind.CONSTANT:
            raise ConfigValueError(f"{where}: a Constant needs a value")
        return spec
    if isinstance(raw, (list, dict, set)):
        raise ConfigValueError(
            f"{where}: a mutable default is shared by every instance;"
            f" use field(default_factory=...)"
        )
    try:
        spec.default = checker(raw)
    except Mismatch as exc:
        raise _type_error(cls, name, exc, "default: ") from None
    return spec


class _Unresolved(ConfigTypeError):
    """An annotation names a class that does not exist yet (resolved again on first use)."""


def _resolve_hints(cls: type) -> dict[str, Any]:
    localns = cls.__dict__.get("_xpm_localns")
    try:
        return typing.get_type_hints(cls, localns=localns, include_extras=True)
    except NameError as exc:
        raise _Unresolved(
            f"{cls.__qualname__}: cannot resolve a field annotation ({exc});"
            " define the referenced class before its first use"
        ) from None


def class_spec(cls: type) -> ClassSpec:
    """The :class:`ClassSpec` of a config class (built on first use, then cached on the class).

    Raises ConfigTypeError/ConfigValueError for a wrong declaration, naming class and field.
    """
    spec = cls.__dict__.get("_xpm_spec")
    if spec is not None:
        return spec
    hints = _resolve_hints(cls)
    fields: dict[str, FieldSpec] = {}
    for name, hint in hints.items():
        built = _build_field(cls, name, hint)
        if built is not None:
            fields[name] = built
    identity = sorted((f for f in fields.values() if f.in_identity), key=lambda f: f.name)
    for field_spec in identity:
        field_spec.skippable = field_spec.kind is FieldKind.PARAM and field_spec.has_default
    pathgens = [(f.name, f.pathgen) for f in fields.values() if f.pathgen is not None]
    name = identity_name(cls)
    spec = ClassSpec(
        cls=cls,
        identity_name=name,
        fields=fields,
        identity_fields=identity,
        defaulted=[f for f in fields.values() if f.has_default],
        required=[f.name for f in fields.values()
                  if not f.has_default and f.kind is not FieldKind.GENERATED],
        required_meta=any(not f.has_default and f.kind is FieldKind.META
                          for f in fields.values()),
        pathgens=[(n, str(p)) for n, p in pathgens],
        header=identifier.object_header(name, (str(p) for _, p in pathgens)),
        is_task=_is_task_class(cls),
    )
    type.__setattr__(cls, "_xpm_spec", spec)
    return spec


def _is_task_class(cls: type) -> bool:
    task = globals().get("Task")
    return task is None or issubclass(cls, task)  # None: Task itself is being defined


def _type_error(cls: type, name: str, exc: Mismatch, lead: str = "") -> ConfigTypeError:
    where = f"{cls.__qualname__}.{name}{exc.where}"
    kind = UnsupportedValueError if "cannot be encoded" in exc.message else ConfigTypeError
    return kind(f"{where}: {lead}{exc.message}")


class TaskPath(os.PathLike):
    """A generated path: ``relpath`` inside the task directory of the task that owns ``owner``.

    ``os.fspath()`` works once the task is bound to a workspace (at submit, in a Store lookup,
    inside ``execute``) and raises UnboundPathError before.  Path methods (``exists()``,
    ``write_text()``, ``/``...) are forwarded to the bound path.
    """

    __slots__ = ("name", "owner")

    def __init__(self, owner: Config, name: str):
        self.owner = owner
        self.name = name

    def task_and_relpath(self) -> tuple[Task, str]:
        """The task whose directory holds this path, and the path relative to it."""
        owner = self.owner
        if isinstance(owner, Task):
            return owner, self.name
        binding = owner.__dict__.get("_xpm_owner")
        if binding is None:
            raise UnboundPathError(
                f"{type(owner).__qualname__} generated path {self.name!r}: its config is not"
                " inside any task, so it has no directory"
            )
        task, prefix = binding
        return task, f"{prefix}/{self.name}"

    def __xpm_encode__(self, digest: identifier.Digest) -> bytes:
        task, rel = self.task_and_relpath()
        return identifier.taskfile_bytes(task.__identifier__, rel)

    def __fspath__(self) -> str:
        task, rel = self.task_and_relpath()
        taskdir = task.__dict__.get("_xpm_taskdir")
        if taskdir is None:
            raise UnboundPathError(
                f"{type(task).__qualname__} generated path {rel!r}: the task is not bound to a"
                " workspace yet (submit it, or look it up with a Store)"
            )
        return os.path.join(taskdir, rel)

    @property
    def path(self) -> Path:
        """The bound path as a :class:`pathlib.Path`."""
        return Path(self.__fspath__())

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.path, name)

    def __str__(self) -> str:
        try:
            return self.__fspath__()
        except UnboundPathError:
            return repr(self)

    def __repr__(self) -> str:
        return f"TaskPath({type(self.owner).__qualname__}, {self.name!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TaskPath):
            return other.owner is self.owner and other.name == self.name
        return NotImplemented

    def __hash__(self) -> int:
        return hash((id(self.owner), self.name))


class Config:
    """A typed configuration: keyword-only, type-checked, sealed once identified.

    Declare fields with ``Param[T]``, ``Meta[T]``, ``Constant[T] = v`` and
    ``Annotated[Path, pathgenerator("name")]``.  Raises ConfigTypeError / ConfigValueError
    (TypeError / ValueError) naming the class and the field for every wrong construction.
    """

    __xpmid__: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_declaration(cls)
        frame = sys._getframe(1)
        if frame.f_code.co_name != "<module>":
            type.__setattr__(cls, "_xpm_localns", dict(frame.f_locals))
        try:
            class_spec(cls)
        except _Unresolved:
            pass  # a forward reference: resolved on first use

    def __init__(self, *args: Any, **kwargs: Any):
        cls = type(self)
        if args:
            raise ConfigTypeError(
                f"{cls.__qualname__}: configs take keyword arguments only"
                f" (got {len(args)} positional)"
            )
        spec = class_spec(cls)
        values = self.__dict__
        fields = spec.fields
        for name, value in kwargs.items():
            field_spec = fields.get(name)
            if field_spec is None:
                raise UnknownFieldError(
                    f"{cls.__qualname__}: no field named {name!r}"
                    f" (fields: {', '.join(fields) or 'none'})"
                )
            if field_spec.kind is FieldKind.CONSTANT or field_spec.kind is FieldKind.GENERATED:
                raise ConstantFieldError(
                    f"{cls.__qualname__}.{name}: a {field_spec.kind.value} field cannot be set"
                )
            try:
                values[name] = field_spec.checker(value)
            except Mismatch as exc:
                raise _type_error(cls, name, exc) from None
        for field_spec in spec.defaulted:
            if field_spec.name not in values:
                values[field_spec.name] = field_spec.make_default()
        for name, relpath in spec.pathgens:
            values[name] = TaskPath(self, relpath)
        if spec.is_task:
            _claim_subconfigs(self)  # type: ignore[arg-type]

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        cls = type(self)
        field_spec = class_spec(cls).fields.get(name)
        if field_spec is None:
            raise UnknownFieldError(
                f"{cls.__qualname__}: no field named {name!r}; attributes that are not fields"
                " must start with '_'"
            )
        if self.__dict__.get("_xpm_sealed"):
            raise SealedConfigError(
                f"{cls.__qualname__}.{name}: the config is sealed (identified or submitted);"
                " build a new one instead"
            )
        if field_spec.kind is FieldKind.CONSTANT or field_spec.kind is FieldKind.GENERATED:
            raise ConstantFieldError(
                f"{cls.__qualname__}.{name}: a {field_spec.kind.value} field cannot be set"
            )
        try:
            self.__dict__[name] = field_spec.checker(value)
        except Mismatch as exc:
            raise _type_error(cls, name, exc) from None
        if isinstance(self, Task):
            _claim_subconfigs(self)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name in class_spec(type(self)).fields:
            raise AttributeError(f"{type(self).__qualname__}.{name} has no value yet")
        raise AttributeError(f"{type(self).__qualname__} has no attribute {name!r}")

    def __repr__(self) -> str:
        spec = class_spec(type(self))
        shown = ", ".join(
            f"{n}={self.__dict__[n]!r}" for n, f in spec.fields.items()
            if f.pathgen is None and n in self.__dict__
        )
        return f"{type(self).__qualname__}({shown})"

    # --- identity ------------------------------------------------------------------------------

    @property
    def __identifier__(self) -> str:
        """The 64-hex identifier; computing it seals the config (and its nested configs).

        Raises MissingFieldError for a required field without value, UnsupportedValueError for a
        value that cannot be encoded, InputPathError for a missing input path.
        """
        found = self.__dict__.get("_xpm_id")
        if found is None:
            found = _identify(self).hex()
            self.__dict__["_xpm_id"] = found
        return found

    def __xpm_encode__(self, digest: identifier.Digest) -> bytes:
        raw = self.__dict__.get("_xpm_raw")
        if raw is None:
            raw = _identify(self)
        return identifier.ref_bytes(raw)

    # --- tags ----------------------------------------------------------------------------------

    def tag(self, name: str, value: str | int | float | bool) -> Config:
        """Tag this config (not identity; propagates to configs that hold it); returns self.

        Raises ConfigTypeError for a value that is not str/int/float/bool, TagConflictError when
        the config tree already holds another value for ``name``.
        """
        cls = type(self).__qualname__
        if not isinstance(name, str) or not name:
            raise ConfigTypeError(f"{cls}.tag(): the tag name must be a non-empty str")
        plain = typecheck.plain_scalar(value)  # np.int64(3) is the tag 3
        if plain is None:
            raise ConfigTypeError(
                f"{cls}.tag({name!r}): tag values are str, int, float or bool, got"
                f" {type(value).__qualname__}"
            )
        value = plain
        current = tags_of(self)
        if name in current and not _same_tag(current[name], value):
            raise TagConflictError(
                f"{cls}.tag({name!r}): the tree already has {name}={current[name]!r};"
                f" cannot also set {name}={value!r}"
            )
        own = self.__dict__.setdefault("_xpm_tags", {})
        own[name] = value
        return self

    @property
    def __maintaskdir__(self) -> Path:
        """Inside a running job: the directory of the task this sub-configuration belongs to."""
        binding = self.__dict__.get("_xpm_owner")
        task = self if isinstance(self, Task) else (binding[0] if binding else None)
        if task is None or task.__dict__.get("_xpm_taskdir") is None:
            raise UnboundPathError(f"{type(self).__qualname__}: not inside a bound task")
        return Path(task.__dict__["_xpm_taskdir"])


def _same_tag(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (a != a and b != b))  # NaN is NaN


def _missing(config: Config, spec: ClassSpec) -> MissingFieldError | None:
    for name in spec.required:
        if name not in config.__dict__:
            return MissingFieldError(
                f"{type(config).__qualname__}.{name}: required field has no value"
            )
    return None


_int_bytes = identifier._int_bytes
_str_bytes = identifier._str_bytes
_float_bytes = identifier._float_bytes
_TRUE, _FALSE = identifier._TRUE, identifier._FALSE
_REF = identifier.ref_bytes(b"")


_IDENTITIES_MAX = 1 << 14
"""Identities a class remembers (forgotten all at once past this)."""


def _plain_key(values: dict[str, Any], spec: ClassSpec) -> tuple[Any, ...] | None:
    """A key that determines the encoding of a config's identity fields, when they all hold
    plain values: an int, a str or None stands for itself (no two of those kinds are equal), a
    bool, a float and a nested config for their encodings (bytes, which equal none of the
    former; ``0.0`` and ``-0.0`` differ there).  None when a field holds anything else (a
    container, a path, an enum, a subclass of int or str...) or has no value."""
    key = []
    for name, _, _ in spec.identity_plan:
        value = values.get(name, _MISSING)
        kind = type(value)
        if kind is int or kind is str or value is None:
            key.append(value)
        elif kind is float:
            key.append(_float_bytes(value))
        elif kind is bool:
            key.append(_TRUE if value else _FALSE)
        elif isinstance(value, Config):
            nested = value.__dict__.get("_xpm_raw")
            key.append(_REF + (nested if nested is not None else _identify(value)))
        else:
            return None
    return tuple(key)


def _identify(config: Config) -> bytes:
    """Encode and hash ``config`` (the hot path: kept tight), then seal it.

    A config whose identity fields hold plain values (:func:`_plain_key`) and that is no task's
    output takes its identifier from its class's memo when a config of the same values was
    identified before in this process: the identifier is a function of those values."""
    values = config.__dict__
    spec = type(config).__dict__.get("_xpm_spec") or class_spec(type(config))
    if spec.required_meta:
        missing = _missing(config, spec)
        if missing is not None:
            raise missing
    key = None if "_xpm_producer" in values else _plain_key(values, spec)
    if key is not None:
        raw = spec.identities.get(key)
        if raw is not None:
            values["_xpm_raw"] = raw
            values["_xpm_sealed"] = True
            return raw
    raw = _encode(config, values, spec)
    if key is not None:
        if len(spec.identities) >= _IDENTITIES_MAX:
            spec.identities.clear()
        spec.identities[key] = raw
    values["_xpm_raw"] = raw
    values["_xpm_sealed"] = True
    return raw


def _encode(config: Config, values: dict[str, Any], spec: ClassSpec) -> bytes:
    """The raw identifier of ``config``: its identity fields encoded and hashed."""
    encode = identifier.encode_value
    digest = digests.digest_input
    parts: list[bytes] = []
    append = parts.append
    name = "?"
    try:
        for name, name_bytes, skippable in spec.identity_plan:
            value = values[name]
            kind = type(value)  # the common kinds inline: the same bytes as encode_value
            if kind is int:
                encoded = _int_bytes(value)
            elif kind is str:
                encoded = _str_bytes(value)
            elif kind is float:
                encoded = _float_bytes(value)
            elif kind is bool:
                encoded = _TRUE if value else _FALSE
            elif isinstance(value, Config):  # by reference (Config.__xpm_encode__)
                nested = value.__dict__.get("_xpm_raw")
                encoded = _REF + (nested if nested is not None else _identify(value))
            else:
                encoded = encode(value, digest)
            if skippable is not None and encoded == skippable.default_encoding():
                continue
            append(name_bytes + encoded)
    except KeyError:
        missing = _missing(config, spec)
        if missing is None:
            raise
        raise missing from None
    except (UnsupportedValueError, InputPathError) as exc:
        raise type(exc)(f"{type(config).__qualname__}.{name}: {exc}") from None
    producer = values.get("_xpm_producer")
    if producer is not None and producer is not config:
        raw_producer = bytes.fromhex(producer.__identifier__)
        return identifier.hash_object(identifier.object_bytes(spec.header, parts, raw_producer))
    return identifier.hash_fields(spec.header, parts)


def iter_values(value: Any) -> Iterator[Any]:
    """The leaves and configs directly inside a field value (through containers)."""
    if isinstance(value, (list, tuple, FrozenList)):
        for item in value:
            yield from iter_values(item)
    elif isinstance(value, (dict, FrozenDict)):
        for item in value.values():
            yield from iter_values(item)
    elif isinstance(value, (set, frozenset)):
        for item in value:
            yield from iter_values(item)
    else:
        yield value


def iter_configs(config: Config, *, params_only: bool = False) -> Iterator[tuple[str, Config]]:
    """(field path, config) for every config held by ``config``'s fields, not entering tasks."""
    spec = class_spec(type(config))
    for name, field_spec in spec.fields.items():
        if field_spec.pathgen is not None or name not in config.__dict__:
            continue
        if params_only and not field_spec.in_identity:
            continue
        yield from _config_paths(config.__dict__[name], name)


def _config_paths(value: Any, path: str) -> Iterator[tuple[str, Config]]:
    """Configs inside a field value with their folder: ``field``, ``field/<index>`` in a list or
    tuple, ``field/<key>`` in a dict (a set has no stable order: its items are numbered in the
    order of their identifiers' computation-free repr, so avoid sets of configs with generated
    paths)."""
    if isinstance(value, Config):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _config_paths(item, f"{path}/{index}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _config_paths(item, f"{path}/{key}")
    elif isinstance(value, (set, frozenset)):
        for index, item in enumerate(sorted(value, key=repr)):
            yield from _config_paths(item, f"{path}/{index}")


def _claim_subconfigs(task: Task) -> None:
    """Give the nested configs of ``task`` their directory ``out/<field>/…`` (first task wins)."""
    stack: list[tuple[str, Config]] = [(f"out/{p}", c) for p, c in iter_configs(task)]
    while stack:
        prefix, config = stack.pop()
        if isinstance(config, Task) or config.__dict__.get("_xpm_producer") is not None:
            continue
        if "_xpm_owner" in config.__dict__:
            continue
        config.__dict__["_xpm_owner"] = (task, prefix)
        stack.extend((f"{prefix}/{p}", c) for p, c in iter_configs(config))


def tags_of(config: Config) -> dict[str, Any]:
    """The tags of a config tree (its own and those of every config and task it holds).

    Raises TagConflictError naming both values when one name has two values in the tree.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    seen: set[int] = set()
    stack = [config]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for name, value in current.__dict__.get("_xpm_tags", {}).items():
            if name in merged and not _same_tag(merged[name], value):
                raise TagConflictError(
                    f"tag {name!r} has two values in one config tree: {merged[name]!r}"
                    f" (on {origin[name]}) and {value!r} (on {type(current).__qualname__})"
                )
            merged[name] = value
            origin[name] = type(current).__qualname__
        stack.extend(c for _, c in iter_configs(current))
        producer = current.__dict__.get("_xpm_producer")
        if producer is not None:
            stack.append(producer)
    return merged


def dependencies(config: Config) -> list[Task]:
    """The tasks that must run before ``config``'s task: every Task, ``dep``-marked output or
    generated path of a task held by any field (Param or Meta), without entering those tasks.

    Memoized on sealed configs (their fields no longer change)."""
    memo = config.__dict__.get("_xpm_deps")
    if memo is not None:
        return list(memo)
    found: dict[int, Task] = {}
    seen: set[int] = set()
    stack: list[Any] = [config]
    root = config
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        spec = class_spec(type(current))
        for name, field_spec in spec.fields.items():
            if field_spec.pathgen is not None or name not in current.__dict__:
                continue
            for item in iter_values(current.__dict__[name]):
                if isinstance(item, Task):
                    if item is not root:
                        found[id(item)] = item
                elif isinstance(item, Config):
                    producer = item.__dict__.get("_xpm_producer")
                    if producer is not None and producer is not root:
                        found[id(producer)] = producer
                    stack.append(item)
                elif isinstance(item, TaskPath):
                    task, _ = item.task_and_relpath()
                    if task is not root:
                        found[id(task)] = task
    if config.__dict__.get("_xpm_sealed"):
        config.__dict__["_xpm_deps"] = tuple(found.values())
    return list(found.values())


class Dep:
    """The ``dep`` given to ``task_outputs``: ``dep(x)`` marks ``x`` as an output of the task."""

    __slots__ = ("task",)

    def __init__(self, task: Task):
        self.task = task

    def __call__(self, config: Any) -> Any:
        """Return ``config`` marked as an output of the task (a marked copy; the task itself)."""
        if config is self.task or (isinstance(config, Task)):
            return config
        if not isinstance(config, Config):
            raise ConfigTypeError(
                f"{type(self.task).__qualname__}.task_outputs: dep() takes a Config, got"
                f" {type(config).__qualname__}"
            )
        return mark_output(config, self.task)


def mark_output(config: Config, task: Task) -> Config:
    """A copy of ``config`` marked as an output of ``task`` (same values, tags and owner)."""
    copy = object.__new__(type(config))
    private = {"_xpm_id", "_xpm_raw", "_xpm_sealed", "_xpm_deps"}
    copy.__dict__.update((k, v) for k, v in config.__dict__.items() if k not in private)
    copy.__dict__["_xpm_producer"] = task
    for name, relpath in class_spec(type(config)).pathgens:
        copy.__dict__[name] = TaskPath(config, relpath)
    return copy


class Task(Config):
    """A config that runs: ``execute()`` in its own directory; ``submit()`` in an experiment.

    During ``execute()``: ``self.__taskdir__``, ``self.__tags__``; sub-configs have
    ``__maintaskdir__``.
    """

    def execute(self) -> None:
        """Run the task (cwd is ``self.__taskdir__``). Override it."""
        raise NotImplementedError(f"{type(self).__qualname__} does not define execute()")

    def task_outputs(self, dep: Callable[[Any], Any]) -> Any:
        """What ``submit()`` returns; by default ``dep(self)``. Mark outputs with ``dep``."""
        return dep(self)

    def __xpm_outputs__(self) -> Any:
        """``task_outputs`` evaluated with this task's ``dep``."""
        return self.task_outputs(Dep(self))

    def submit(self, launcher: Any = None, hooks: Any = ()) -> Any:
        """Submit the task to the active experiment; returns what ``task_outputs`` returns."""
        experiment = active()
        if experiment is None:
            raise XpmstoreError(
                f"{type(self).__qualname__}.submit(): no active experiment; submit inside"
                " `with experiment(workspace, name):`"
            )
        return experiment.submit(self, launcher=launcher, hooks=hooks)

    @property
    def __taskdir__(self) -> Path:
        """The task directory; UnboundPathError before the task is bound to a workspace."""
        taskdir = self.__dict__.get("_xpm_taskdir")
        if taskdir is None:
            raise UnboundPathError(f"{type(self).__qualname__}: not bound to a workspace yet")
        return Path(taskdir)

    @property
    def __tags__(self) -> dict[str, Any]:
        """The running submission's tags (outside a job: the tags of the config tree)."""
        running = self.__dict__.get("_xpm_run_tags")
        return dict(running) if running is not None else tags_of(self)

    def _xpm_bind(self, taskdir: str | os.PathLike[str]) -> None:
        """Bind the task to its directory (generated paths resolve under it)."""
        self.__dict__["_xpm_taskdir"] = os.fspath(taskdir)


typecheck.CONFIG_TYPE = Config
typecheck.TASKPATH_TYPE = TaskPath
