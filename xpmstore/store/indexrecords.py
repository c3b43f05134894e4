"""The index's records: their fields (:class:`IndexRecord`) and their bytes, one codec.

A record is stored under its raw identifier as :func:`encode_value` writes it and read back by
:func:`decode_record`; nothing else knows the bytes.  The value starts with the CRC-32 of its key
and the rest (4 bytes, big-endian): a byte changed anywhere in a record, or a record under
another key, is seen by the first read, which drops it (the index then recomputes it from its
directory).  The JSON writes the identity section last, so that readers that need no identity
(listings, gc) cut it off unparsed: :func:`decode_summary`, and :func:`task_listing_members`,
which gives a task's fields as JSON text without parsing them.  Pure functions.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import zlib
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, overload

from blake3 import blake3

from ..core.identifier import check_full_identifier

if TYPE_CHECKING:
    from pathlib import Path

    from .manifest import Manifest
    from .workspace import Workspace

__all__ = [
    "IndexRecord",
    "RecordSummary",
    "checked_body",
    "decode_record",
    "decode_summary",
    "encode_record",
    "encode_value",
    "index_record",
    "raw_identifier",
    "record_dependencies",
    "seal",
    "secondary_keys",
    "task_listing_members",
    "unseal",
]


class RecordSummary(TypedDict):
    """An index record without its identity section: what listings, gc and lookups read."""

    kind: str
    """``"task"`` or ``"cache"``."""
    name: str
    """The identity name of its class."""
    path: str
    """Its directory, relative to the workspace."""
    created: float
    last_access: float
    size: int
    """Bytes of the files its done manifest lists."""
    tags: dict[str, Any]
    dependencies: list[str]
    """Identifiers of the tasks it was made from."""
    config: NotRequired[str | None]
    """A cache entry's: the identifier of its config."""
    method: NotRequired[str | None]
    """A cache entry's: the qualified name of its method."""
    file: NotRequired[str | None]
    """A cache entry's: the name of its file."""


class IndexRecord(RecordSummary):
    """The record of a done object in the index (:func:`index_record` makes one)."""

    identity: dict[str, Any] | None
    """A task's identity section (params.json's), None for a cache entry."""


def index_record(workspace: Workspace, directory: Path, manifest: Manifest,
                 identity: dict[str, Any] | None,
                 dependencies: list[str] | None = None) -> IndexRecord:
    """The index record of a done object (pure but for the relative path).  ``dependencies``:
    the ones its params.json gives (:mod:`xpmstore.store.edges`), which win over the manifest's."""
    extra = manifest.extra
    record: IndexRecord = {
        "kind": manifest.kind,
        "name": manifest.name,
        "path": os.path.relpath(directory, workspace.root),
        "created": manifest.created,
        "last_access": manifest.created,
        "size": manifest.size,
        "tags": extra.get("tags", {}),
        "dependencies": manifest.dependencies if dependencies is None else dependencies,
        "identity": identity,
    }
    if manifest.kind == "cache":
        record["config"] = extra.get("config")
        record["method"] = extra.get("method")
        record["file"] = extra.get("file")
    return record


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


def checked_body(key: bytes, value: bytes) -> bytes | None:
    """The JSON bytes of the record stored as ``value`` under ``key``, or None when its check
    fails or they are not UTF-8 (damage): what bulk readers parse with :func:`decode_summary`
    and :func:`task_listing_members`."""
    body = unseal(key, value)
    if body is None:
        return None
    try:
        body.decode()
    except UnicodeDecodeError:
        return None
    return body


def encode_record(record: IndexRecord) -> bytes:
    """The JSON of a record, its identity section last (so that summaries can cut it off)."""
    if record.get("identity") is not None:
        ordered = {**{k: v for k, v in record.items() if k != "identity"},
                   "identity": record["identity"]}
        return json.dumps(ordered, separators=(",", ":")).encode()
    return json.dumps(record, separators=(",", ":")).encode()


def encode_value(key: bytes, record: IndexRecord) -> bytes:
    """What the index stores under ``key`` for ``record``: its check and its JSON (the inverse of
    :func:`decode_record`)."""
    return seal(key, encode_record(record))


_IDENTITY_KEY = b',"identity":{'

_decode = json.JSONDecoder().decode  # a str straight to the C scanner (json.loads of bytes
                                     # first guesses their encoding, in Python)


def _without_identity(body: bytes) -> str | None:
    """The JSON text of a record without its identity section (written last by
    :func:`encode_record`), or None when the record does not end with one."""
    cut = body.find(_IDENTITY_KEY)
    if cut > 0 and body.endswith(b"}}"):
        return (body[:cut] + b"}").decode()
    return None


def decode_summary(body: bytes) -> RecordSummary:
    """The record of the JSON bytes ``body`` without its identity section, parsed without it
    when it comes last (as :func:`encode_record` writes it); a record of another shape is
    parsed whole (and keeps its identity).  Raises ValueError on bytes that are not a record."""
    text = _without_identity(body)
    if text is not None:
        try:
            found = _decode(text)
        except ValueError:
            found = None
        if isinstance(found, dict):
            return found  # type: ignore[return-value]  # written by encode_record
    found = json.loads(body)
    if not isinstance(found, dict):
        raise ValueError("an index record is a JSON object")
    return found  # type: ignore[return-value]


@overload
def decode_record(key: bytes, value: bytes, identity: Literal[True] = ...) -> IndexRecord | None:
    ...


@overload
def decode_record(key: bytes, value: bytes, identity: bool) -> RecordSummary | None:
    ...


def decode_record(key: bytes, value: bytes, identity: bool = True) -> RecordSummary | None:
    """The record stored as ``value`` under ``key`` (a :class:`RecordSummary`, without its
    identity section, unless ``identity``), or None when the value is damaged: its check fails
    or it is not a JSON object.  The inverse of :func:`encode_value`."""
    body = unseal(key, value)
    if body is None:
        return None
    try:
        found = json.loads(body) if identity else decode_summary(body)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError too
        return None
    return found if isinstance(found, dict) else None  # type: ignore[return-value]


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
        found = decode_summary(body)
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


_TASK_START = '{"kind":"task","name":'
_PATH_KEY = ',"path":"'
_CREATED_KEY = ',"created":'


def task_listing_members(body: bytes, root: str) -> tuple[float, str] | None:
    """(created, JSON members) of the task record of the JSON bytes ``body``, read without
    parsing it: its fields but the identity section, as ``"kind":…,"dependencies":[…]`` (no
    braces), its path made absolute by putting ``root`` (which ends with ``/``) before it.  None
    for anything else (a cache entry, a record of another shape): parse those with
    :func:`decode_summary`.  A listing splices these instead of decoding and encoding each
    record."""
    text = _without_identity(body)
    if text is None or not text.startswith(_TASK_START) or '"config":' in text:
        return None
    start = text.find(_CREATED_KEY)  # the first: kind, name and path come before it
    if start < 0:
        return None
    start += len(_CREATED_KEY)
    try:
        created = float(text[start:text.find(",", start)])
    except ValueError:
        return None
    return created, text.replace(_PATH_KEY, _rooted_path_key(root), 1)[1:-1]


@functools.lru_cache(maxsize=8)
def _rooted_path_key(root: str) -> str:
    """``,"path":"<root>`` with ``root`` as JSON, its closing quote left out."""
    return _PATH_KEY[:-1] + json.dumps(root)[:-1]


def raw_identifier(identifier: str) -> bytes:
    """The 32 bytes of a full identifier (InvalidIdentifierError otherwise)."""
    return bytes.fromhex(check_full_identifier(identifier))


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


def secondary_keys(raw: bytes, record: RecordSummary) -> list[tuple[bytes, bytes]]:
    """(database, key) of every secondary key of a record: its name, tags, dependencies."""
    keys = [(b"names", name_prefix(record["name"]) + raw)]
    for name, value in (record.get("tags") or {}).items():
        keys.append((b"tags", tag_prefix(name, value) + raw))
    for dependency in record.get("dependencies") or ():
        keys.append((b"deps", bytes.fromhex(dependency) + raw))
    return keys
