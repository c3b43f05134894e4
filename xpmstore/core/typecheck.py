"""Type checks of field values, compiled once per field, and the immutable containers.

Types are checked, not guessed (docs/concepts.md): ``int`` refuses bool and float; ``float`` stores
``float(x)`` for an int; ``bool`` takes only bool; an Enum takes only its members; a Config type
takes that class or a subclass.  Numbers of other libraries (numpy's ``np.int64(3)``,
``np.float32(0.1)``) are taken as the Python number they equal, duck-typed: an integer through
``__index__`` (or ``numbers.Integral``), a real through ``numbers.Real`` when ``float()`` keeps its
value exactly; a boolean scalar (a ``dtype`` of kind ``"b"``) stays refused, as bool is.
Containers are copied into immutable forms that keep their type
(:class:`FrozenList` for a list, ``tuple``, :class:`FrozenDict` for a dict, ``frozenset`` for a
set).  Pure; thread-safe.
"""

from __future__ import annotations

import enum
import math
import numbers
import operator
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any, NoReturn

from ..errors import FrozenValueError, Mismatch, UnsupportedType

__all__ = ["Checker", "FrozenDict", "FrozenList", "Mismatch", "UnsupportedType", "compile_type",
           "freeze_any", "plain_scalar"]

Checker = Callable[[Any], Any]

# Set by xpmstore.core.config once its classes exist (avoids an import cycle).
CONFIG_TYPE: type = type(None)
TASKPATH_TYPE: type = type(None)


def _refuse(value: Any, expected: str) -> NoReturn:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise Mismatch(f"expected {expected}, got {type(value).__qualname__} {shown}{_hint(value)}")


def _hint(value: Any) -> str:
    """What to do with a value of another library that is not taken as it is."""
    module = type(value).__module__.partition(".")[0]
    if module in ("builtins", "pathlib", "xpmstore") or isinstance(value, enum.Enum):
        return ""
    if getattr(value, "ndim", 0):
        return " (an array: give Python values, e.g. x.tolist(), or a path to a file)"
    if isinstance(value, numbers.Number) or hasattr(value, "__index__") \
            or hasattr(value, "__float__"):
        return (" (a number of another type: convert it with int(x) or float(x) if that keeps"
                " its value)")
    return f" (a {module} value: convert it to a Python value first)"


def _is_boolean(value: Any) -> bool:
    """Whether ``value`` is a boolean scalar of some library (numpy's ``np.bool_``)."""
    return getattr(getattr(value, "dtype", None), "kind", None) == "b"


def _foreign_int(value: Any) -> int | None:
    """The Python int that a foreign integer (``np.int64(3)``) equals, else None."""
    if isinstance(value, (bool, float, str, bytes)) or _is_boolean(value):
        return None
    if not (isinstance(value, numbers.Integral) or hasattr(type(value), "__index__")):
        return None
    try:
        result = operator.index(value)
    except (TypeError, ValueError):
        return None
    return None if isinstance(result, bool) else int(result)


def _foreign_float(value: Any) -> float | None:
    """The Python float that a foreign real (``np.float32(0.1)``) equals exactly, else None."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or _is_boolean(value):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if result == value or (math.isnan(result) and value != value):
        return result
    return None  # float() would round it (a Fraction, a long double): not the same number


def _blocked(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise FrozenValueError(f"{type(self).__name__} is immutable: a config's values cannot"
                           " change")


class FrozenList(list):
    """A list that refuses changes; encodes and serializes as a list."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _blocked
    append = extend = insert = pop = remove = clear = sort = reverse = _blocked

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self


class FrozenDict(dict):
    """A dict that refuses changes; encodes and serializes as a dict."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _blocked
    clear = pop = popitem = setdefault = update = _blocked

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self


def plain_scalar(value: Any) -> str | int | float | bool | None:
    """``value`` as a plain str, int, float or bool (a subclass as its base, a number of
    another library as the Python number it equals), or None when it is none of these."""
    if isinstance(value, (str, bool)):
        return str(value) if isinstance(value, str) else bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    number = _foreign_int(value)
    return _foreign_float(value) if number is None else number


def _check_str(value: Any) -> str:
    if not isinstance(value, str):
        _refuse(value, "str")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Mismatch(f"string {value[:40]!r} holds a lone surrogate") from None
    return str(value)


def _check_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        _refuse(value, "int")
    if isinstance(value, int):
        return int(value)
    found = _foreign_int(value)
    if found is None:
        _refuse(value, "int")
    return found


def _check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        _refuse(value, "bool")
    return value


def _check_float_exact(value: Any) -> float:
    if isinstance(value, float):
        return float(value)
    found = _foreign_float(value) if _foreign_int(value) is None else None
    if found is None:
        _refuse(value, "float")
    return found


def _check_float(value: Any) -> float:
    if isinstance(value, float):
        return float(value)
    whole = value if isinstance(value, int) and not isinstance(value, bool) \
        else _foreign_int(value)
    if whole is not None:
        try:
            return float(whole)
        except OverflowError:
            _refuse(value, "float (this int is too large for a float)")
    found = _foreign_float(value)
    if found is None:
        _refuse(value, "float")
    return found


def _check_bytes(value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        _refuse(value, "bytes")
    return bytes(value)


def _check_none(value: Any) -> None:
    if value is not None:
        _refuse(value, "None")


def _as_path(value: Any) -> Any:
    if isinstance(value, TASKPATH_TYPE):
        return value
    if isinstance(value, (str, PurePath, os.PathLike)):
        text = os.fspath(value)
        if not isinstance(text, str) or not text:
            _refuse(value, "a path")
        return Path(os.path.abspath(text))
    _refuse(value, "Path")


def _freeze_list(value: list[Any], item: Checker) -> FrozenList:
    out = []
    for index, element in enumerate(value):
        try:
            out.append(item(element))
        except Mismatch as exc:
            raise exc.inside(f"[{index}]") from None
    return FrozenList(out)


def _freeze_tuple(value: tuple[Any, ...], items: list[Checker]) -> tuple[Any, ...]:
    out = []
    for index, (element, check) in enumerate(zip(value, items, strict=True)):
        try:
            out.append(check(element))
        except Mismatch as exc:
            raise exc.inside(f"[{index}]") from None
    return tuple(out)


def _freeze_dict(value: dict[Any, Any], item: Checker) -> FrozenDict:
    out = {}
    for key, element in value.items():
        if not isinstance(key, str):
            raise Mismatch(f"dict keys must be str, got {type(key).__qualname__} {key!r}")
        try:
            out[_check_str(key)] = item(element)
        except Mismatch as exc:
            raise exc.inside(f"[{key!r}]") from None
    return FrozenDict(out)


def _freeze_set(value: Any, item: Checker) -> frozenset[Any]:
    try:
        return frozenset(item(element) for element in value)
    except Mismatch as exc:
        raise exc.inside("{…}") from None


def freeze_any(value: Any) -> Any:
    """Check that ``value`` can be encoded, and return its immutable copy (for ``Any`` fields)."""
    kind = type(value)
    if kind in (int, str, float, bool) or value is None:
        if kind is str:
            return _check_str(value)
        return value
    if isinstance(value, (CONFIG_TYPE, TASKPATH_TYPE, enum.Enum, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return _check_str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, PurePath):
        return _as_path(value)
    if isinstance(value, list):
        return _freeze_list(value, freeze_any)
    if isinstance(value, tuple):
        return _freeze_tuple(value, [freeze_any] * len(value))
    if isinstance(value, dict):
        return _freeze_dict(value, freeze_any)
    if isinstance(value, (set, frozenset)):
        return _freeze_set(value, freeze_any)
    number: int | float | None = _foreign_int(value)
    if number is None:
        number = _foreign_float(value)
    if number is not None:
        return number
    raise Mismatch(
        f"a {kind.__qualname__} cannot be encoded into an identifier (supported: None, bool, int,"
        f" float, str, bytes, Enum, Path, list, tuple, dict, set, Config){_hint(value)}"
    )


def _union(checks: list[Checker], exact: list[Checker], names: str) -> Checker:
    def check(value: Any) -> Any:
        for attempt in exact:
            try:
                return attempt(value)
            except Mismatch:
                pass
        for attempt in checks:
            try:
                return attempt(value)
            except Mismatch:
                pass
        _refuse(value, names)

    return check


def _name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    return getattr(tp, "__qualname__", None) or repr(tp).replace("typing.", "")


def compile_type(tp: Any, *, exact: bool = False) -> Checker:
    """The checker of a declared field type; raises UnsupportedType for a type we cannot check.

    ``exact`` refuses conversions (int to float), used to pick the right branch of a union.
    """
    if tp is Any or tp is object:
        return freeze_any
    if tp is None or tp is type(None):
        return _check_none
    if tp is bool:
        return _check_bool
    if tp is int:
        return _check_int
    if tp is float:
        return _check_float_exact if exact else _check_float
    if tp is str:
        return _check_str
    if tp is bytes:
        return _check_bytes
    if isinstance(tp, type):
        return _compile_class(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return compile_type(args[0], exact=exact)
    if origin in (typing.Union, types.UnionType):
        strict = [compile_type(a, exact=True) for a in args]
        loose = [compile_type(a) for a in args]
        return _union(loose, strict, " or ".join(_name(a) for a in args))
    if origin is typing.Literal:
        return _literal(args)
    if origin in (list, tuple, dict, set, frozenset):
        return _compile_container(origin, args)
    raise UnsupportedType(f"type {_name(tp)} is not supported")


def _literal(allowed: tuple[Any, ...]) -> Checker:
    keys = {(type(v), v) for v in allowed}

    def check(value: Any) -> Any:
        if (type(value), value) not in keys:
            _refuse(value, f"one of {list(allowed)!r}")
        return value

    return check


def _compile_class(tp: type) -> Checker:
    if issubclass(tp, enum.Enum):
        def check_enum(value: Any) -> Any:
            if not isinstance(value, tp):
                _refuse(value, f"a member of {tp.__qualname__}")
            return value
        return check_enum
    if issubclass(tp, CONFIG_TYPE):
        def check_config(value: Any) -> Any:
            if not isinstance(value, tp):
                _refuse(value, f"{tp.__qualname__} (or a subclass)")
            return value
        return check_config
    if issubclass(tp, PurePath) or tp is os.PathLike:
        return _as_path
    if tp in (list, tuple, dict, set, frozenset):
        return _compile_container(tp, ())
    raise UnsupportedType(f"type {tp.__qualname__} is not supported")


def _compile_container(origin: type, args: tuple[Any, ...]) -> Checker:
    if origin is list:
        item = compile_type(args[0]) if args else freeze_any

        def check_list(value: Any) -> Any:
            if not isinstance(value, list):
                _refuse(value, "list")
            return _freeze_list(value, item)
        return check_list
    if origin is tuple:
        return _compile_tuple(args)
    if origin is dict:
        if args and args[0] is not str:
            raise UnsupportedType("dict keys must be str")
        value_check = compile_type(args[1]) if args else freeze_any

        def check_dict(value: Any) -> Any:
            if not isinstance(value, dict):
                _refuse(value, "dict")
            return _freeze_dict(value, value_check)
        return check_dict
    element = compile_type(args[0]) if args else freeze_any

    def check_set(value: Any) -> Any:
        if not isinstance(value, (set, frozenset)):
            _refuse(value, "set")
        return _freeze_set(value, element)
    return check_set


def _compile_tuple(args: tuple[Any, ...]) -> Checker:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        item = compile_type(args[0]) if args else freeze_any

        def check_var(value: Any) -> Any:
            if not isinstance(value, tuple):
                _refuse(value, "tuple")
            return _freeze_tuple(value, [item] * len(value))
        return check_var
    if args == ((),):
        items: list[Checker] = []
    else:
        items = [compile_type(a) for a in args]

    def check_fixed(value: Any) -> Any:
        if not isinstance(value, tuple) or len(value) != len(items):
            _refuse(value, f"tuple of {len(items)} items")
        return _freeze_tuple(value, items)
    return check_fixed
