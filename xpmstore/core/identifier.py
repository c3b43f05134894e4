"""Identifiers: the canonical byte encoding of values and configs, and its blake3.

This module is pure: it never touches the file system.  Input paths reach it through a
``digest(path)`` callable that returns either the 33-byte content digest of the file or directory
(see :mod:`xpmstore.core.digests`) or ``(identifier, relative path)`` for a path inside a task
directory or cache entry of a workspace.

The encoding is stated byte by byte in ``docs/identifiers.md``; ``tests/property`` checks that it
is injective and ``tests/unit/test_golden.py`` pins it.  Never change an existing byte: add a new
scheme instead.

Two encoders produce the same bytes:

* :func:`encode_value` / :func:`object_bytes` from live Python values (the hot path), and
* :func:`from_params` from the JSON ``identity`` section of a params.json, with no import of user
  code.
"""

from __future__ import annotations

import base64
import enum
import math
import os
import re
import struct
from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import Any, TypeGuard

from blake3 import blake3

from ..errors import AmbiguousPrefixError, InvalidIdentifierError, NotFound, UnsupportedValueError
from .typecheck import FrozenList

__all__ = [
    "SCHEME",
    "Digest",
    "cache_identifier",
    "check_full_identifier",
    "check_identifier",
    "encode_value",
    "enum_identity_name",
    "from_params",
    "hash_object",
    "is_full_identifier",
    "object_bytes",
    "unique_match",
]

SCHEME = 1
"""The version of the encoding; the first byte hashed."""

_SCHEME_BYTE = bytes([SCHEME])

# Type tags: one byte each, never reused.
T_NONE = 0x00
T_FALSE = 0x01
T_TRUE = 0x02
T_INT = 0x03
T_FLOAT = 0x04
T_STR = 0x05
T_BYTES = 0x06
T_LIST = 0x07
T_TUPLE = 0x08
T_SET = 0x09
T_DICT = 0x0A
T_ENUM = 0x0B
T_DIGEST = 0x0C
T_TASKFILE = 0x0E
T_REF = 0x10
T_OUTPUT = 0x11
T_OBJECT = 0x20
T_CACHE = 0x30

_NONE = bytes([T_NONE])
_FALSE = bytes([T_FALSE])
_TRUE = bytes([T_TRUE])
_CANONICAL_NAN = bytes([T_FLOAT]) + bytes.fromhex("7ff8000000000000")
_u32 = struct.Struct(">I").pack

Digest = Callable[[PurePath], "bytes | tuple[str, str]"]
"""``digest(path)``: 33 bytes (kind byte, blake3) or ``(identifier, relative posix path)``."""

_HEX_ID = re.compile(r"[0-9a-f]{1,64}")


def check_identifier(text: object) -> str:
    """Return ``text`` if it is 1–64 lowercase hex characters, else raise InvalidIdentifierError.

    Called before any path is built from user input; pure, thread-safe.
    """
    if not isinstance(text, str) or _HEX_ID.fullmatch(text) is None:
        shown = repr(text)[:80]
        raise InvalidIdentifierError(
            f"{shown} is not an identifier: expected 1 to 64 lowercase hexadecimal characters"
        )
    return text


_FULL_ID = re.compile(r"[0-9a-f]{64}")


def is_full_identifier(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a full identifier: a str of 64 lowercase hex characters.  Pure."""
    return isinstance(value, str) and _FULL_ID.fullmatch(value) is not None


def check_full_identifier(text: object) -> str:
    """Return ``text`` if it is a full identifier (64 lowercase hex characters), else raise
    InvalidIdentifierError (a prefix or anything else).  Pure."""
    if not is_full_identifier(text):
        check_identifier(text)
        raise InvalidIdentifierError(f"{text!r} is not a full identifier: expected 64 lowercase"
                                     " hexadecimal characters")
    return str(text)


def unique_match(text: str, matches: Iterable[str], what: str = "object",
                 where: str = "") -> str:
    """The one identifier of ``matches`` (those found for ``text``, an identifier or a prefix):
    the rule and the wording of every lookup by prefix.  ``what`` names the things searched
    (``"object"``, ``"pin"``), ``where`` where they were searched (``" in /ws"``).

    Raises NotFound (none) and AmbiguousPrefixError (several; ``candidates`` lists them sorted).
    Pure.
    """
    found = sorted(set(matches))
    if not found:
        shown = text if len(text) == 64 else f"starts with {text}"
        raise NotFound(f"no {what} {shown}{where}")
    if len(found) > 1:
        listed = ", ".join(i[:16] for i in found[:10]) + (", ..." if len(found) > 10 else "")
        raise AmbiguousPrefixError(f"prefix {text} matches {len(found)} {what}s{where}"
                                   f" ({listed}); give more characters", candidates=found)
    return found[0]


_tag_len = struct.Struct(">BI").pack
_tag_f64 = struct.Struct(">Bd").pack


def _str_bytes(text: str) -> bytes:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsupportedValueError(
            f"string {text[:40]!r} holds a lone surrogate and cannot be encoded"
        ) from exc
    return _tag_len(T_STR, len(raw)) + raw


def _int_bytes_uncached(number: int) -> bytes:
    raw = number.to_bytes((number.bit_length() + 8) // 8, "big", signed=True)
    return _tag_len(T_INT, len(raw)) + raw


_SMALL_INTS = {n: _int_bytes_uncached(n) for n in range(-256, 4096)}


def _int_bytes(number: int) -> bytes:
    found = _SMALL_INTS.get(number)
    return found if found is not None else _int_bytes_uncached(number)


def _float_bytes(number: float) -> bytes:
    if number != number:  # every NaN is one NaN
        return _CANONICAL_NAN
    return _tag_f64(T_FLOAT, number)


def enum_identity_name(cls: type) -> str:
    """The name under which an Enum class enters identifiers: ``__xpmid__`` or module.QualName."""
    explicit = cls.__dict__.get("__xpmid__")
    if isinstance(explicit, str):
        return explicit
    return f"{cls.__module__}.{cls.__qualname__}"


def _sequence(tag: int, items: Iterable[Any], count: int, digest: Digest) -> bytes:
    parts = [bytes([tag]), _u32(count)]
    parts.extend(encode_value(item, digest) for item in items)
    return b"".join(parts)


def _unordered(tag: int, items: Iterable[bytes], count: int) -> bytes:
    return bytes([tag]) + _u32(count) + b"".join(sorted(items))


def _dict_bytes(mapping: dict[str, Any], digest: Digest) -> bytes:
    pairs = []
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise UnsupportedValueError(f"dict key {key!r} is not a str")
        pairs.append(_str_bytes(key) + encode_value(value, digest))
    # keys are distinct, so sorting the pairs sorts by key encoding
    return _unordered(T_DICT, pairs, len(pairs))


def _path_bytes(path: PurePath, digest: Digest) -> bytes:
    result = digest(path)
    if isinstance(result, tuple):
        return taskfile_bytes(result[0], result[1])
    return bytes([T_DIGEST]) + result


def taskfile_bytes(identifier: str, relpath: str) -> bytes:
    """The encoding of the file ``relpath`` inside the object (task or cache) ``identifier``."""
    return bytes([T_TASKFILE]) + bytes.fromhex(identifier) + _str_bytes(relpath)


def ref_bytes(raw_identifier: bytes) -> bytes:
    """The encoding of a nested config or task: a reference by its 32-byte identifier."""
    return bytes([T_REF]) + raw_identifier


def _encode_other(value: Any, digest: Digest) -> bytes:
    encode = getattr(value, "__xpm_encode__", None)
    if encode is not None:
        return encode(digest)
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, enum.Enum):
        name = _str_bytes(enum_identity_name(type(value)))
        return bytes([T_ENUM]) + name + _str_bytes(value.name)
    if isinstance(value, int):
        return _int_bytes(int(value))
    if isinstance(value, float):
        return _float_bytes(float(value))
    if isinstance(value, str):
        return _str_bytes(str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return bytes([T_BYTES]) + _u32(len(raw)) + raw
    if isinstance(value, PurePath):
        return _path_bytes(value, digest)
    if isinstance(value, list):
        return _sequence(T_LIST, value, len(value), digest)
    if isinstance(value, tuple):
        return _sequence(T_TUPLE, value, len(value), digest)
    if isinstance(value, (set, frozenset)):
        return _unordered(T_SET, (encode_value(v, digest) for v in value), len(value))
    if isinstance(value, dict):
        return _dict_bytes(value, digest)
    if isinstance(value, os.PathLike):
        return _path_bytes(PurePath(os.fspath(value)), digest)
    raise UnsupportedValueError(
        f"a value of type {type(value).__qualname__} cannot enter an identifier"
    )


def encode_value(value: Any, digest: Digest) -> bytes:
    """The canonical, type-tagged, length-prefixed encoding of ``value``.

    Raises UnsupportedValueError for a value that cannot be encoded (never drops it).
    """
    kind = type(value)
    if kind is int:
        return _int_bytes(value)
    if kind is str:
        return _str_bytes(value)
    if kind is float:
        return _float_bytes(value)
    if kind is bool:
        return _TRUE if value else _FALSE
    if value is None:
        return _NONE
    if kind is list or kind is FrozenList:
        return b"".join([_tag_len(T_LIST, len(value)), *[encode_value(v, digest) for v in value]])
    return _encode_other(value, digest)


def object_header(name: str, pathgens: Iterable[str]) -> bytes:
    """The fixed prefix of a config's encoding: its identity name and pathgenerator names."""
    names = sorted(pathgens)
    return b"".join(
        [bytes([T_OBJECT]), _str_bytes(name), _u32(len(names)), *(_str_bytes(n) for n in names)]
    )


def field_name_bytes(name: str) -> bytes:
    """The encoding of a field name (a str)."""
    return _str_bytes(name)


def object_bytes(header: bytes, fields: list[bytes], producer: bytes | None = None) -> bytes:
    """A config's encoding from its header and its (name + value) field encodings, name-sorted.

    ``producer`` is the raw identifier of the task whose output (``dep`` mark) this config is.
    """
    if producer is not None:
        return b"".join([bytes([T_OUTPUT]), producer, header, _u32(len(fields)), *fields])
    return b"".join([header, _u32(len(fields)), *fields])


def hash_fields(header: bytes, fields: list[bytes]) -> bytes:
    """``hash_object(object_bytes(header, fields))`` in one join (the hot path)."""
    return blake3(b"".join([_SCHEME_BYTE, header, _u32(len(fields)), *fields])).digest()


def hash_object(encoded: bytes) -> bytes:
    """The raw 32-byte identifier of an encoded config."""
    return blake3(_SCHEME_BYTE + encoded).digest()


def cache_identifier(config_identifier: str, name: str) -> str:
    """The identifier of the ``@cache`` entry ``name`` of the config ``config_identifier``."""
    check_identifier(config_identifier)
    encoded = bytes([T_CACHE]) + bytes.fromhex(config_identifier) + _str_bytes(name)
    return blake3(_SCHEME_BYTE + encoded).hexdigest()


# --- the same bytes from a params.json identity section ------------------------------------------


def _json_value(value: Any) -> bytes:
    kind = type(value)
    if value is None:
        return _NONE
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is int:
        return _int_bytes(value)
    if kind is float:
        return _float_bytes(value)
    if kind is str:
        return _str_bytes(value)
    if kind is list:
        return b"".join([bytes([T_LIST]), _u32(len(value)), *(_json_value(v) for v in value)])
    if kind is dict and len(value) >= 1:
        return _json_tagged(value)
    raise UnsupportedValueError(f"identity value {value!r} is not valid")


_FLOAT_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _json_tagged(value: dict[str, Any]) -> bytes:
    if "$float" in value:
        return _float_bytes(_FLOAT_WORDS[value["$float"]])
    if "$bytes" in value:
        raw = base64.b64decode(value["$bytes"], validate=True)
        return bytes([T_BYTES]) + _u32(len(raw)) + raw
    if "$tuple" in value:
        items = value["$tuple"]
        return b"".join([bytes([T_TUPLE]), _u32(len(items)), *(_json_value(v) for v in items)])
    if "$set" in value:
        items = value["$set"]
        return _unordered(T_SET, (_json_value(v) for v in items), len(items))
    if "$dict" in value:
        mapping = value["$dict"]
        pairs = [_str_bytes(k) + _json_value(v) for k, v in mapping.items()]
        return _unordered(T_DICT, pairs, len(pairs))
    if "$enum" in value:
        return bytes([T_ENUM]) + _str_bytes(value["$enum"]) + _str_bytes(value["member"])
    if "$digest" in value:
        digest = bytes.fromhex(value["$digest"])
        if len(digest) != 33 or digest[0] not in (1, 2):
            raise UnsupportedValueError(f"identity digest {value['$digest']!r} is malformed")
        return bytes([T_DIGEST]) + digest
    if "$file" in value:
        return taskfile_bytes(_full_identifier(value["$file"]), value["rel"])
    if "$task" in value:
        return ref_bytes(bytes.fromhex(_full_identifier(value["$task"])))
    if "$config" in value:
        return ref_bytes(_identity_digest(value["$config"]))
    raise UnsupportedValueError(f"identity value {value!r} has no known tag")


def identity_value_bytes(value: Any) -> bytes:
    """The encoding of one value of a params.json identity section (see :func:`from_params`)."""
    return _json_value(value)


def _full_identifier(text: Any) -> str:
    if not is_full_identifier(text):
        check_identifier(text)  # InvalidIdentifierError for what is no identifier at all
        raise UnsupportedValueError(f"identity reference {text!r} is not a full identifier")
    return str(text)


def _identity_digest(identity: dict[str, Any]) -> bytes:
    header = object_header(identity["name"], identity.get("pathgens", []))
    fields = [_str_bytes(name) + _json_value(v) for name, v in sorted(identity["fields"].items())]
    producer = identity.get("output")
    raw_producer = bytes.fromhex(_full_identifier(producer)) if producer else None
    return hash_object(object_bytes(header, fields, raw_producer))


def from_params(identity: dict[str, Any]) -> str:
    """Recompute an identifier from the ``identity`` section of a params.json.

    Imports no user code. Raises UnsupportedValueError (a TypeError) on a malformed section.
    """
    try:
        return _identity_digest(identity).hex()
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, UnsupportedValueError):
            raise
        raise UnsupportedValueError(f"malformed identity section: {exc}") from exc
