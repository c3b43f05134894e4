"""git's index file (``.git/index``, format versions 2, 3 and 4): the paths it tracks.

Only what the run record's git cache needs (:mod:`xpmstore.scheduler.gitcache`): each entry's
path, and which entries are gitlinks (submodules).  The format is git's
``Documentation/gitformat-index.txt``: a header (``DIRC``, the version, the number of
entries), the entries (stat data, mode, object name, flags, path: padded to 8 bytes in versions
2 and 3, prefix-compressed against the previous path in version 4), extensions, a trailing
checksum (not verified: the caller treats the file as a whole by its ``stat``).

Pure and bounded: :func:`parse_index` reads only the bytes it is given, each entry in constant
work plus its path's length, and raises :class:`~xpmstore.errors.GitIndexError` (a
``ValueError``) for anything it does not understand entirely — a truncated or damaged file, an
unknown version, mode or flag, a path that is absolute, holds ``.``, ``..`` or ``.git``
components, or a required extension (a split index's ``link``, a sparse index's ``sdir``).
Thread-safe.
"""

from __future__ import annotations

import struct

from ..errors import GitIndexError

__all__ = ["HEADER_SIZE", "GitIndex", "GitIndexError", "parse_header", "parse_index"]

HEADER_SIZE = 12
"""``DIRC``, the version and the number of entries, 4 bytes each."""

_SIGNATURE = b"DIRC"
_STAT_SIZE = 40
"""ctime, mtime (seconds and nanoseconds), dev, ino, mode, uid, gid, size: 4 bytes each."""
_MODE_OFFSET = 24
_REGULAR, _EXECUTABLE, _SYMLINK, _GITLINK = 0o100644, 0o100755, 0o120000, 0o160000
_MODES = frozenset((_REGULAR, _EXECUTABLE, _SYMLINK, _GITLINK))
_KNOWN_EXTENDED_FLAGS = 0x6000
"""skip-worktree and intent-to-add; every other bit of the extended flags is unknown."""
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_HEADER = struct.Struct(">4sII")


class GitIndex:
    """What :func:`parse_index` read: the format ``version``, every entry's ``paths`` in the
    file's order (relative to the work tree, ``/``-separated bytes; a path in conflict appears
    once per stage), the ``gitlinks`` among them, and the ``extensions``' signatures.  (A
    plain class: a dataclass costs every experiment half a millisecond of import.)"""

    __slots__ = ("extensions", "gitlinks", "paths", "version")

    def __init__(self, version: int, paths: list[bytes], gitlinks: list[bytes],
                 extensions: list[bytes]):
        self.version = version
        self.paths = paths
        self.gitlinks = gitlinks
        self.extensions = extensions


def parse_header(data: bytes) -> tuple[int, int]:
    """The version and the number of entries told by the index's first :data:`HEADER_SIZE`
    bytes.  Raises GitIndexError when they are not an index header of version 2, 3 or 4."""
    if len(data) < HEADER_SIZE:
        raise GitIndexError(f"a git index starts with {HEADER_SIZE} bytes; {len(data)} given")
    signature, version, count = _HEADER.unpack_from(data)
    if signature != _SIGNATURE:
        raise GitIndexError(f"not a git index (it starts with {signature!r})")
    if version not in (2, 3, 4):
        raise GitIndexError(f"git index version {version} (2, 3 and 4 are read)")
    return version, count


def parse_index(data: bytes, hash_size: int = 20, max_entries: int = 1 << 20) -> GitIndex:
    """The paths of the index file ``data``, whose object names are ``hash_size`` bytes long
    (20: SHA-1, 32: SHA-256).  Raises GitIndexError when it holds more than ``max_entries``
    entries or anything this reader does not understand entirely (see the module doc)."""
    version, count = parse_header(data)
    if count > max_entries:
        raise GitIndexError(f"the git index holds {count:,} entries (at most {max_entries:,}"
                            " are read)")
    end = len(data) - hash_size  # the trailing checksum
    fixed = _STAT_SIZE + hash_size + 2  # stat data, object name, flags
    unpack = struct.Struct(f">{_MODE_OFFSET}xI{fixed - _MODE_OFFSET - 6}xH").unpack_from
    find = data.find
    modes = _MODES  # (locals: this loop runs once per tracked file)
    paths: list[bytes] = []
    gitlinks: list[bytes] = []
    path = b""
    position = HEADER_SIZE
    for _ in range(count):
        if position + fixed > end:
            raise GitIndexError(f"the git index ends inside entry {len(paths) + 1} of {count}")
        mode, flags = unpack(data, position)
        name_start = position + fixed
        if flags & 0x4000:  # extended flags follow
            name_start = _extended(data, name_start, end, version)
        length = flags & 0x0FFF  # the path's length, 0xFFF when longer
        if version == 4:
            previous = path
            strip, name_start = _varint(data, name_start, end)
            if strip > len(previous):
                raise GitIndexError("an entry of the git index strips more than its"
                                    " predecessor's path")
            name_end = find(b"\0", name_start, end)
            if name_end < 0:
                raise GitIndexError("a path of the git index has no end")
            path = previous[:len(previous) - strip] + data[name_start:name_end]
            position = name_end + 1
        else:
            name_end = name_start + length if length < 0x0FFF else find(b"\0", name_start, end)
            if not 0 <= name_end < end or data[name_end]:
                raise GitIndexError("a path of the git index does not end where its flags say")
            path = data[name_start:name_end]
            # 1 to 8 NULs pad the entry to a multiple of 8 bytes, counted from its start.
            position += (name_end - position + 8) & ~7
            if position > end:
                raise GitIndexError("the git index ends inside an entry's padding")
        if length != (len(path) if len(path) < 0x0FFF else 0x0FFF):
            raise GitIndexError("an entry of the git index has a path of another length than"
                                " its flags say")
        paths.append(path)
        if mode != 0o100644:
            if mode not in modes:
                raise GitIndexError(f"an entry of mode {mode:o} in the git index")
            if mode == _GITLINK:
                gitlinks.append(path)
    _check_paths(paths)
    return GitIndex(version, paths, gitlinks, _extensions(data, position, end))


def _extended(data: bytes, position: int, end: int, version: int) -> int:
    """The position after an entry's extended flags at ``position``.  Raises GitIndexError in
    a version 2 index (which has none), past ``end``, or for a flag other than skip-worktree
    and intent-to-add."""
    if version == 2:
        raise GitIndexError("an extended entry in a version 2 git index")
    if position + 2 > end:
        raise GitIndexError("the git index ends inside an entry's flags")
    if _U16.unpack_from(data, position)[0] & ~_KNOWN_EXTENDED_FLAGS:
        raise GitIndexError("an entry of the git index has unknown flags")
    return position + 2


def _varint(data: bytes, position: int, end: int) -> tuple[int, int]:
    """The number git encodes as OFS_DELTA offsets are (7 bits a byte, high bit: more; each
    continuation adds one), and the position after it.  Raises GitIndexError when it runs past
    ``end`` or past 64 bits."""
    value = -1
    while True:
        if position >= end:
            raise GitIndexError("the git index ends inside a number")
        byte = data[position]
        position += 1
        value = (value + 1) << 7 | (byte & 0x7F)
        if value >= 1 << 64:
            raise GitIndexError("a number of the git index is larger than 64 bits")
        if not byte & 0x80:
            return value, position


def _check_paths(paths: list[bytes]) -> None:
    """Raise GitIndexError unless every path is relative, holds no empty, ``.``, ``..`` or
    ``.git`` component and does not end with ``/`` (what git itself refuses): a few scans of
    them all, joined by NULs (which no path holds)."""
    if not paths:
        return
    joined = (b"\0" + b"\0".join(paths) + b"\0").replace(b"/", b"\0")
    if b"\0\0" in joined or b"\0.\0" in joined or b"\0..\0" in joined \
            or b"\0.git\0" in joined.lower():
        bad = next((p for p in paths if _refused(p)), b"")
        raise GitIndexError(f"the git index names the path {bad!r}, which git refuses")


def _refused(path: bytes) -> bool:
    """Whether ``path`` is one :func:`_check_paths` refuses."""
    parts = path.split(b"/")
    return any(part.lower() in (b"", b".", b"..", b".git") for part in parts)


def _extensions(data: bytes, position: int, end: int) -> list[bytes]:
    """The signatures of the extensions from ``position`` to ``end``.  Raises GitIndexError
    when one runs past ``end`` or is required (its signature does not start with ``A``-``Z``:
    git says a reader must understand it)."""
    signatures = []
    while position < end:
        if position + 8 > end:
            raise GitIndexError("the git index ends inside an extension's header")
        signature = data[position:position + 4]
        size = _U32.unpack_from(data, position + 4)[0]
        if not 0x41 <= signature[0] <= 0x5A:
            raise GitIndexError(f"the git index holds the extension {signature!r}, which"
                                " changes what its entries mean")
        position += 8 + size
        if position > end:
            raise GitIndexError(f"the git index's extension {signature!r} runs past its end")
        signatures.append(signature)
    if position != end:
        raise GitIndexError("the git index is shorter than its entries")
    return signatures
