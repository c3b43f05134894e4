"""git index files written by hand (the format of git's Documentation/gitformat-index.txt), for
the tests of xpmstore.system.gitindex: versions 2, 3 and 4, any mode, extended flags and
extensions; the stat data and object names are filler (the reader does not use them)."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import NamedTuple


class Entry(NamedTuple):
    """One entry: its path, mode, and extended flags (None: none, the extended bit clear)."""

    path: bytes
    mode: int = 0o100644
    extended: int | None = None


def varint(value: int) -> bytes:
    """git's variable-width number (as OFS_DELTA offsets: each continuation adds one)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        value -= 1
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _common_prefix(one: bytes, other: bytes) -> int:
    """How many first bytes ``one`` and ``other`` share (bytes, not path components)."""
    size = 0
    while size < min(len(one), len(other)) and one[size] == other[size]:
        size += 1
    return size


def index_bytes(entries: Sequence[Entry], version: int = 2, hash_size: int = 20,
                extensions: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """An index file of ``version`` holding ``entries`` then ``extensions`` (signature,
    data), with its trailing checksum."""
    out = bytearray(struct.pack(">4sII", b"DIRC", version, len(entries)))
    previous = b""
    for entry in entries:
        start = len(out)
        out += struct.pack(">10I", 1, 2, 3, 4, 5, 6, entry.mode, 7, 8, 9)
        out += b"\x11" * hash_size
        flags = min(len(entry.path), 0xFFF) | (0x4000 if entry.extended is not None else 0)
        out += struct.pack(">H", flags)
        if entry.extended is not None:
            out += struct.pack(">H", entry.extended)
        if version == 4:
            common = _common_prefix(previous, entry.path)
            out += varint(len(previous) - common) + entry.path[common:] + b"\0"
        else:
            out += entry.path + b"\0"
            out += b"\0" * (-(len(out) - start) % 8)
        previous = entry.path
    for signature, data in extensions:
        out += signature + struct.pack(">I", len(data)) + data
    digest = hashlib.sha1 if hash_size == 20 else hashlib.sha256
    return bytes(out) + digest(out).digest()
