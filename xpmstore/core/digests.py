"""Content digests of input files and directories, with their memo.

A Path in a Param enters its config's identifier by content (docs/identifiers.md):

* a regular file: ``0x01`` then blake3 of its bytes;
* a directory: ``0x02`` then blake3 of the sorted list of (UTF-8 relative name, executable bit,
  blake3) of the regular files below it, following symlinks;
* a path inside a task directory or cache entry of any workspace
  (``…/jobs/<name>/<64 hex>/<rel>`` or ``…/cache/<name>/<64 hex>/<rel>`` whose object folder holds
  ``.xpm/``): ``(identifier, rel)``.

Digests are memoized by (dev, inode, size, mtime_ns, ctime_ns): in-process always, and in a
persistent memo (the index) when one is installed with :func:`set_persistent_memo`.  A memo
recorded within 2 s of the file's mtime is not trusted (the file may still be changing within the
file system's timestamp granularity).  Thread-safe for readers; the memo dict is only grown.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
import warnings
from pathlib import PurePath
from typing import Protocol

from blake3 import blake3

from ..errors import InputPathError

__all__ = [
    "DIGEST_DIRECTORY",
    "DIGEST_FILE",
    "PersistentMemo",
    "digest_input",
    "hash_file",
    "keep_pool_out",
    "object_path_parts",
    "set_persistent_memo",
]

DIGEST_FILE = 0x01
DIGEST_DIRECTORY = 0x02

_TRUST_AFTER_NS = 2_000_000_000
_MMAP_THRESHOLD = 1 << 20
_OWN_POOL_SIZE = 64 << 20
"""From this size, a forked child that cannot use blake3's global pool hashes on a pool of its
own (made and ended with the hash); below, on one thread, faster than making a pool."""
_WARN_FILES = 100_000
_WARN_BYTES = 100 << 30

MemoKey = tuple[int, int, int, int, int]


class PersistentMemo(Protocol):
    """A memo that outlives the process (the index implements it)."""

    def get_digest(self, key: MemoKey) -> bytes | None:
        """The digest recorded for ``key``, or None."""

    def put_digest(self, key: MemoKey, digest: bytes) -> None:
        """Record ``digest`` for ``key`` (may be batched)."""

    def flush_digests(self) -> None:
        """Write what :meth:`put_digest` batched."""


_memo: dict[MemoKey, bytes] = {}
_persistent: PersistentMemo | None = None

_OBJECT_PATH = re.compile(r"^(.*)/(jobs|cache)/([^/]+)/([0-9a-f]{64})(?:/(.*))?$")


def set_persistent_memo(memo: PersistentMemo | None) -> None:
    """Install (or remove, with None) the persistent digest memo consulted after the process's."""
    global _persistent
    _persistent = memo


def _memo_key(st: os.stat_result) -> MemoKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_pool_pid = 0
"""The process that started blake3's global pool of threads (rayon's, started by its first hash
on all cores; 0: none).  A process forked from it inherits the pool's state but not its threads: a
hash there on that pool would wait for them forever, so it hashes without it."""
_pool_kept_out = 0
"""The process that keeps the global pool out (:func:`keep_pool_out`; 0: none)."""


def keep_pool_out() -> None:
    """Hash without blake3's global pool in this process (not in those it forks): no hash then
    starts a thread here.  For a process that forks others, such as the zygote."""
    global _pool_kept_out
    _pool_kept_out = os.getpid()


def _threads(size: int) -> int:
    """The ``max_threads`` of a blake3 hash of ``size`` bytes: all cores, on the global pool
    unless this process keeps it out or was forked after it started (see ``_pool_pid``)."""
    global _pool_pid
    pid = os.getpid()
    if _pool_pid == 0 and _pool_kept_out != pid:
        _pool_pid = pid
    if _pool_pid == pid:
        return int(blake3.AUTO)
    return 1 if size < _OWN_POOL_SIZE else os.cpu_count() or 1


def hash_file(path: str | os.PathLike[str], size: int | None = None) -> bytes:
    """The raw blake3 of a regular file: mmap and all cores for big files, one read for small."""
    if size is None:
        size = os.stat(path).st_size
    if size >= _MMAP_THRESHOLD:
        return blake3(max_threads=_threads(size)).update_mmap(path).digest()
    with open(path, "rb") as handle:
        return blake3(handle.read()).digest()


def object_path_parts(path: str) -> tuple[str, str] | None:
    """``(identifier, rel)`` when ``path`` (absolute) lies in a workspace object, else None."""
    match = _OBJECT_PATH.match(path)
    if match is None:
        return None
    root = f"{match.group(1)}/{match.group(2)}/{match.group(3)}/{match.group(4)}"
    if not os.path.isdir(os.path.join(root, ".xpm")):
        return None
    return match.group(4), match.group(5) or ""


def _trusted(st: os.stat_result) -> bool:
    return time.time_ns() - st.st_mtime_ns > _TRUST_AFTER_NS


def _remember(key: MemoKey, st: os.stat_result, digest: bytes) -> None:
    if _trusted(st):
        _memo[key] = digest
        if _persistent is not None:
            _persistent.put_digest(key, digest)


def _recall(key: MemoKey, st: os.stat_result) -> bytes | None:
    found = _memo.get(key)
    if found is None and _persistent is not None and _trusted(st):
        found = _persistent.get_digest(key)
        if found is not None:
            _memo[key] = found
    return found


def _file_digest(path: str, st: os.stat_result) -> bytes:
    key = _memo_key(st)
    found = _recall(key, st)
    if found is not None:
        return found
    digest = bytes([DIGEST_FILE]) + hash_file(path, st.st_size)
    _remember(key, st, digest)
    return digest


class _Walk:
    def __init__(self, top: str):
        self.top = top
        self.files = 0
        self.bytes = 0
        self.warned = False

    def listing(self, directory: str, prefix: str, ancestors: frozenset[tuple[int, int]]) -> list:
        entries = []
        with os.scandir(directory) as it:
            names = sorted(entry.name for entry in it)
        for name in names:
            full = os.path.join(directory, name)
            try:
                st = os.stat(full)  # follows symlinks
            except FileNotFoundError as exc:
                raise InputPathError(f"input {full}: broken symbolic link") from exc
            rel = f"{prefix}{name}"
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                if ident in ancestors:
                    raise InputPathError(f"input {full}: symbolic links form a cycle")
                entries.extend(self.listing(full, rel + "/", ancestors | {ident}))
            elif stat.S_ISREG(st.st_mode):
                self.count(st.st_size)
                executable = b"\x01" if st.st_mode & 0o111 else b"\x00"
                entries.append((rel.encode("utf-8", "surrogateescape"), executable,
                                _file_digest(full, st)[1:]))
            else:
                raise InputPathError(f"input {full}: not a regular file or directory")
        return entries

    def count(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if not self.warned and (self.files > _WARN_FILES or self.bytes > _WARN_BYTES):
            self.warned = True
            warnings.warn(
                f"input {self.top} holds over 100k files or 100 GiB: hashing it on every change"
                " is slow; declare a versioned dataset Config instead",
                stacklevel=4,
            )


def _directory_digest(path: str, st: os.stat_result) -> bytes:
    walk = _Walk(path)
    entries = walk.listing(path, "", frozenset({(st.st_dev, st.st_ino)}))
    entries.sort()
    hasher = blake3()
    for name, executable, digest in entries:
        hasher.update(len(name).to_bytes(4, "big") + name + executable + digest)
    return bytes([DIGEST_DIRECTORY]) + hasher.digest()


def digest_input(path: PurePath) -> bytes | tuple[str, str]:
    """The identity of an input path: 33 digest bytes, or ``(identifier, rel)`` (see module doc).

    Raises InputPathError for a missing path or a special file. Safe across threads and processes.
    """
    text = os.path.abspath(os.fspath(path))
    inside = object_path_parts(text)
    if inside is not None:
        return inside
    try:
        st = os.stat(text)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise InputPathError(
            f"input path {text} does not exist (declare a path that is not an input as Meta[Path])"
        ) from exc
    except OSError as exc:
        raise InputPathError(f"input path {text} cannot be read: {exc.strerror}") from exc
    try:
        if stat.S_ISREG(st.st_mode):
            return _file_digest(text, st)
        if stat.S_ISDIR(st.st_mode):
            return _directory_digest(text, st)
    except InputPathError:
        raise
    except OSError as exc:
        raise InputPathError(
            f"input path {text} cannot be read: {exc.strerror} ({exc.filename or text})"
        ) from exc
    finally:
        if _persistent is not None:
            _persistent.flush_digests()
    raise InputPathError(f"input path {text} is not a regular file or directory")


def _clear_memo() -> None:
    """Forget the in-process memo (tests)."""
    _memo.clear()


if sys.platform == "win32":  # pragma: no cover
    raise ImportError("xpmstore supports Linux (and macOS best effort), not Windows")

