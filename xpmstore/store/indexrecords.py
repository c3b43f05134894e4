"""The bytes of the index's records: checked values, JSON records and their secondary keys.

Every value of the ``objects`` and ``digests`` databases starts with the CRC-32 of its key and
the rest (4 bytes, big-endian): a byte changed anywhere in a record, or a record under another
key, is seen by the first read, which drops it (the index then recomputes it from its
directory).  Pure functions.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from blake3 import blake3

from ..core.identifier import check_identifier
from ..errors import InvalidIdentifierError

__all__ = [
    "decode_record",
    "encode_record",
    "raw_identifier",
    "record_dependencies",
    "seal",
    "secondary_keys",
    "summary",
    "unseal",
    "without_identity",
]

_CHECK = struct.Struct(">I")
_CHECK_SIZE = _CHECK.size


def seal(key: bytes, body: bytes) -> bytes:
    """``body`` as stored under ``key``: its check, then itself."""
    return _CHECK.pack(zlib.crc32(body, zlib.crc32(key))) + body


def unseal(key: bytes, value: bytes, _crc: Any = zlib.crc32,
           _pack: Any = _CHECK.pack) -> bytes | None:
    """The body of a value stored under ``key``, or None when its check fails (damage)."""
    body = value[_CHECK_SIZE:]
    return body if value[:_CHECK_SIZE] == _pack(_crc(body, _crc(key))) else None


_IDENTITY_KEY = b',"identity":{'

_decode = json.JSONDecoder().decode  # a str straight to the C scanner (json.loads of bytes
                                     # first guesses their encoding, in Python)


def without_identity(body: bytes) -> str | None:
    """The JSON text of a record without its identity section (written last by
    :func:`encode_record`), or None when the record does not end with one."""
    cut = body.find(_IDENTITY_KEY)
    if cut > 0 and body.endswith(b"}}"):
        return (body[:cut] + b"}").decode()
    return None


def summary_text(body: bytes) -> tuple[dict[str, Any], str | None]:
    """The record without its identity section, and the JSON text parsed when that section was
    cut off (None when the record was parsed whole).  Raises ValueError on bytes that are not
    a record."""
    text = without_identity(body)
    if text is not None:
        try:
            found = _decode(text)
        except ValueError:
            found = None
        if isinstance(found, dict):
            return found, text
    found = json.loads(body)
    if not isinstance(found, dict):
        raise ValueError("an index record is a JSON object")
    return found, None


def summary(body: bytes) -> dict[str, Any]:
    """The record without its identity section (see :func:`summary_text`)."""
    return summary_text(body)[0]


_DEPENDENCIES = b',"dependencies":['
_QUOTE = 34


def record_dependencies(key: bytes, value: bytes) -> list[bytes] | None:
    """The raw identifiers a record stored as ``value`` under ``key`` depends on, or None when
    the value is damaged.  Reads the list from the JSON text (before the identity section,
    where no string can hold that key), parsing the record only when the text is not as
    :func:`encode_record` writes it."""
    body = unseal(key, value)
    if body is None:
        return None
    start = body.find(_DEPENDENCIES)
    if start >= 0:
        start += len(_DEPENDENCIES)
        inner = body[start:body.find(b"]", start)]
        if not inner:
            return []
        parts = inner.split(b",")
        if all(len(part) == 66 and part[0] == _QUOTE and part[65] == _QUOTE for part in parts):
            try:
                return [bytes.fromhex(part[1:65].decode()) for part in parts]
            except ValueError:
                pass
    try:
        found = summary(body)
    except ValueError:
        return None
    listed = found.get("dependencies") if isinstance(found, dict) else None
    raws = []
    for item in listed if isinstance(listed, list) else ():
        if isinstance(item, str) and len(item) == 64:
            try:
                raws.append(bytes.fromhex(item))
            except ValueError:
                continue
    return raws


def encode_record(record: dict[str, Any]) -> bytes:
    """The JSON of a record, its identity section last (so that summaries can cut it off)."""
    if record.get("identity") is not None:
        record = {**{k: v for k, v in record.items() if k != "identity"},
                  "identity": record["identity"]}
    return json.dumps(record, separators=(",", ":")).encode()


def decode_record(key: bytes, value: bytes, identity: bool = True) -> dict[str, Any] | None:
    """The record stored as ``value`` under ``key`` (without its identity section unless
    ``identity``), or None when the value is damaged: its check fails or it is not a JSON
    object."""
    body = unseal(key, value)
    if body is None:
        return None
    try:
        found = json.loads(body) if identity else summary(body)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too
        return None
    return found if isinstance(found, dict) else None


def raw_identifier(identifier: str) -> bytes:
    """The 32 bytes of a full identifier (InvalidIdentifierError otherwise)."""
    check_identifier(identifier)
    if len(identifier) != 64:
        raise InvalidIdentifierError(f"{identifier!r}: a full identifier has 64 hex characters")
    return bytes.fromhex(identifier)


_MAX_PREFIX = 511 - 32
"""LMDB keys are at most 511 bytes and a secondary key ends with a 32-byte identifier."""


def _bounded(prefix: bytes) -> bytes:
    """``prefix``, or when a key holding it would be too long for LMDB (a long tag value or
    identity name), 0xFF and its blake3: 0xFF never starts a UTF-8 name, so no clash."""
    if len(prefix) <= _MAX_PREFIX:
        return prefix
    return b"\xff" + blake3(prefix).digest() + b"\0"


def tag_prefix(name: str, value: Any) -> bytes:
    """The start of the ``tags`` keys of ``name=value``."""
    return _bounded(f"{name}\0{json.dumps(value)}\0".encode())


def name_prefix(name: str) -> bytes:
    """The start of the ``names`` keys of an identity name."""
    return _bounded(name.encode() + b"\0")


def secondary_keys(raw: bytes, record: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """(database, key) of every secondary key of a record: its name, tags, dependencies."""
    keys = [(b"names", name_prefix(record["name"]) + raw)]
    for name, value in (record.get("tags") or {}).items():
        keys.append((b"tags", tag_prefix(name, value) + raw))
    for dependency in record.get("dependencies") or ():
        keys.append((b"deps", bytes.fromhex(dependency) + raw))
    return keys
