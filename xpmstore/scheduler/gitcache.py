"""The run record's git state, cached: a checkout unchanged since git last told its state
starts no ``git`` (docs/scheduler.md, "Run records").

Before git would start, a *key* is computed: a blake3 digest of what git's answer depends on —
the work tree's path, the ``GIT_*`` variables, ``.git`` and ``commondir``, ``HEAD`` and its
branch's ref file (else the ``stat`` of ``packed-refs``), the configuration and attributes
files git reads, the index's bytes, the ``lstat`` of every tracked file and of each folder's
``.gitattributes``.  The same key as the one cached: the cached state is the record's; else git
is asked and its answer cached under the key, computed before git started.

No cache (git is asked, as without this module) where the key could miss a change or costs more
than git: a racy file (changed within :data:`RACY_WINDOW`: a file's times advance by clock
ticks), a submodule, an index :mod:`xpmstore.system.gitindex` does not understand entirely,
more than :data:`MAX_TRACKED` tracked files, a network file system, a key slower than
:data:`BUDGET`, a variable or configuration that sends git to other files (``GIT_DIR``,
``include``…), replace refs, grafts, a reftable.

Every file read is input: damaged or hostile, it costs only the cache (reads bounded, never
through a symlink).  Safe across threads and processes (the last writer wins).
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blake3 import blake3

from ..store.workspace import is_network_fs
from ..system.gitindex import GitIndexError, parse_header, parse_index
from ..system.keyedcache import read_keyed, write_keyed

__all__ = ["BUDGET", "MAX_TRACKED", "RACY_WINDOW", "GitLookup", "find_work_tree", "look"]

MAX_TRACKED = 1000
"""Above this many tracked files no cache is kept: ``lstat`` ing them from Python, before the
run starts, costs as much as git's answer (its start, and the end's wait for it) somewhere
between 1,000 and 2,000 on this project's test machine (docs/scale.md)."""

BUDGET = 0.02
"""Seconds a snapshot may take (that of MAX_TRACKED files takes about 5 ms): a slower one (a
slow or remote file system) is dropped and git asked."""

RACY_WINDOW = 2.0
"""Seconds within which a file's change makes a snapshot uncacheable (see the module doc)."""

_CACHE_BYTES = 4096
"""A cache file holds a key and a commit: about 150 bytes."""
_SMALL_BYTES = 65536
"""``HEAD``, a ref, ``.git``, a configuration or attributes file: larger is not cached."""
_INDEX_BYTES = 8 << 20
"""An index of MAX_TRACKED entries holds well under a megabyte (4 KiB paths and extensions
included: a few); a larger one is not read."""
_CHECK_EVERY = 16
"""Files ``lstat`` ed between two looks at the clock."""

_ELSEWHERE = frozenset((
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CEILING_DIRECTORIES", "GIT_CONFIG",
    "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_GRAFT_FILE", "GIT_REPLACE_REF_BASE",
    "GIT_ATTR_SOURCE", "GIT_SHALLOW_FILE",
))
"""Variables that make git read files the snapshot does not look at: no cache."""
_HEAD_REF = b"ref: refs/heads/"
_HASH_SIZES = {b"sha1": 20, b"sha256": 32}
_STAT_FIELDS = 6
_MISSING = (0,) * _STAT_FIELDS


class _Uncacheable(Exception):
    """Raised inside a snapshot: this checkout's state is not cached (git is asked)."""


class GitLookup:
    """A run's look at the cache: ``answer``, the git state cached for the checkout as it is
    now (None on a miss: git is asked), and where git's answer is to be cached (``path``: None
    when it must not be).  (A plain class: a dataclass costs every experiment, in a repository
    or not, half a millisecond of import.)"""

    __slots__ = ("answer", "key", "path")

    def __init__(self, answer: dict[str, Any] | None, path: Path | None, key: str):
        self.answer = answer
        self.path = path
        self.key = key

    def remember(self, answer: Mapping[str, object]) -> None:
        """Cache git's ``answer`` under this lookup's key (nothing when the snapshot was not
        cacheable; never raises OSError: a workspace that refuses it costs only the cache)."""
        if self.path is not None:
            write_keyed(self.path, self.key, {"git": dict(answer)})


def find_work_tree(start: str | None = None) -> str | None:
    """The nearest folder from ``start`` (the working directory) up that holds a ``.git``, or
    None (a few ``lstat`` s)."""
    try:
        folder = start if start is not None else os.getcwd()
    except OSError:
        return None
    while True:
        if os.path.lexists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def look(folder: Path, work_tree: str) -> GitLookup:
    """The cache's answer for ``work_tree`` (as :func:`find_work_tree` found it from the
    working directory), kept in ``folder`` (``.xpmstore/gitstate/``).  Never raises OSError or
    ValueError: whatever the checkout or the cache file holds, the worst is a miss."""
    path = folder / f"{_digest(socket.gethostname(), work_tree)[:32]}.json"
    if is_network_fs(work_tree)[0]:  # each lstat a round trip: git's, in the background, wins
        return GitLookup(None, None, "")
    try:
        key = _snapshot(work_tree, time.time_ns(), time.monotonic() + BUDGET)
    except (_Uncacheable, GitIndexError, OSError, ValueError, struct.error):
        return GitLookup(None, None, "")
    document = read_keyed(path, key, _CACHE_BYTES)
    answer = document.get("git") if document is not None else None
    return GitLookup(answer if isinstance(answer, dict) else None, path, key)


def _digest(*parts: str) -> str:
    return blake3("\0".join(parts).encode()).hexdigest()


def _snapshot(work_tree: str, now_ns: int, deadline: float) -> str:
    """The key of ``work_tree``'s state (see the module doc).  Raises _Uncacheable (or
    OSError, GitIndexError) when it is not to be cached."""
    key = _Key()
    key.add(b"xpmstore gitstate 1", os.fsencode(work_tree))
    for name in sorted(os.environ):
        if name.startswith("GIT_"):
            if name in _ELSEWHERE:
                raise _Uncacheable(name)
            key.add(os.fsencode(name), os.fsencode(os.environ[name]))
    cwd = os.getcwd()
    dot_git = os.path.join(work_tree, ".git")
    if os.path.commonpath([cwd, dot_git]) == dot_git:
        raise _Uncacheable("inside .git")  # git tells no work tree's state from there
    git_dir = _git_dir(work_tree, key)
    common = _common_dir(git_dir, key)
    for unusual in ("reftable", "refs/replace", "info/grafts"):
        if os.path.lexists(os.path.join(common, unusual)):
            raise _Uncacheable(unusual)
    if os.path.lexists(os.path.join(work_tree, ".gitmodules")):
        raise _Uncacheable(".gitmodules")
    hash_size = _configuration(git_dir, common, key)
    racy_after = now_ns - int(RACY_WINDOW * 1e9)
    _head(git_dir, common, key, racy_after)
    index = _read(os.path.join(git_dir, "index"), _INDEX_BYTES, header_first=True)
    if index is None:
        raise _Uncacheable("no index")
    key.add(index)
    parsed = parse_index(index, hash_size, MAX_TRACKED)
    if parsed.gitlinks:
        raise _Uncacheable("a submodule")
    key.add(_stats(work_tree, parsed.paths, racy_after, deadline))
    return key.hexdigest()


class _Key:
    """A blake3 digest of length-prefixed parts (no two lists of parts share one)."""

    def __init__(self) -> None:
        self._hash = blake3()

    def add(self, *parts: bytes) -> None:
        for part in parts:
            self._hash.update(len(part).to_bytes(8, "little"))
            self._hash.update(part)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _read(path: str, limit: int, header_first: bool = False) -> bytes | None:
    """The bytes of the regular file ``path`` (never through a symlink, a fifo never waited
    on); None when it is absent.  Raises _Uncacheable when it is something else or larger than
    ``limit`` (``header_first``: an index of more than MAX_TRACKED entries, told by its
    header)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise _Uncacheable(path)
        if header_first:
            _, count = parse_header(os.pread(fd, 12, 0))
            if count > MAX_TRACKED:
                raise _Uncacheable(f"{count} tracked files")
        data = os.pread(fd, info.st_size + 1, 0)
    finally:
        os.close(fd)
    if len(data) > info.st_size:
        raise _Uncacheable(f"{path} grows")
    return data


def _git_dir(work_tree: str, key: _Key) -> str:
    """The git directory of ``work_tree``: its ``.git`` folder, or the one a worktree's
    ``.git`` file names (``gitdir: PATH``)."""
    dot_git = os.path.join(work_tree, ".git")
    info = os.lstat(dot_git)
    if stat.S_ISDIR(info.st_mode):
        key.add(b"folder")
        return dot_git
    content = _read(dot_git, _SMALL_BYTES)
    if content is None or not content.startswith(b"gitdir: "):
        raise _Uncacheable(".git")
    key.add(content)
    target = os.fsdecode(content.removeprefix(b"gitdir: ").rstrip(b"\n"))
    if not target or "\n" in target:
        raise _Uncacheable(".git")
    return os.path.join(work_tree, target)  # (an absolute target stays as it is)


def _common_dir(git_dir: str, key: _Key) -> str:
    """The folder of the refs, objects and configuration shared by the worktrees: the one
    ``commondir`` names (a worktree's), else ``git_dir``."""
    content = _read(os.path.join(git_dir, "commondir"), _SMALL_BYTES)
    key.add(content if content is not None else b"no commondir")
    if content is None:
        return git_dir
    target = os.fsdecode(content.rstrip(b"\n"))
    if not target or "\n" in target:
        raise _Uncacheable("commondir")
    return os.path.join(git_dir, target)


def _configuration(git_dir: str, common: str, key: _Key) -> int:
    """Add the configuration and attributes files git reads to ``key``; returns the size of
    the repository's object names (20: SHA-1, 32: SHA-256)."""
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    repository = [os.path.join(common, "config"), os.path.join(git_dir, "config.worktree")]
    others = [os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig"),
              "/etc/gitconfig"]
    hash_size = 20
    for path in repository + others:
        content = _read(path, _SMALL_BYTES)
        key.add(os.fsencode(path), content if content is not None else b"\xff")
        size = _read_configuration(content) if content is not None else None
        if size is not None and path in repository:  # (the user's cannot set it)
            hash_size = size
    for path in (os.path.join(common, "info", "attributes"),
                 os.path.join(xdg, "git", "attributes"), "/etc/gitattributes"):
        content = _read(path, _SMALL_BYTES)
        key.add(os.fsencode(path), content if content is not None else b"\xff")
    return hash_size


def _read_configuration(content: bytes) -> int | None:
    """The object names' size a configuration file sets (``extensions.objectFormat``), or
    None.  Raises _Uncacheable when it makes git read files the key does not hold
    (``include``, ``core.worktree``, ``core.attributesFile``) or names an unknown object
    format (pure)."""
    hash_size = None
    for line in content.lower().splitlines():
        text = line.strip()
        if text.startswith(b"["):
            if text.startswith(b"[include"):  # [include] and [includeIf "..."]
                raise _Uncacheable("a configuration file includes another")
            text = text.partition(b"]")[2].strip()  # ([section] key = value on one line)
        name, _, value = text.partition(b"=")
        name = name.strip()
        if name in (b"worktree", b"attributesfile"):
            raise _Uncacheable(f"a configuration file sets {name.decode()}")
        if name == b"objectformat":
            hash_size = _HASH_SIZES.get(value.strip().strip(b'"'))
            if hash_size is None:
                raise _Uncacheable(f"object format {value.strip()!r}")
    return hash_size


def _head(git_dir: str, common: str, key: _Key, racy_after: int) -> None:
    """Add what ``HEAD`` resolves from to ``key``: its bytes (a commit when detached), and,
    when it names a branch, the branch's ref file, or the ``stat`` of ``packed-refs`` where a
    packed branch is."""
    head = _read(os.path.join(git_dir, "HEAD"), _SMALL_BYTES)
    if head is None:
        raise _Uncacheable("no HEAD")
    key.add(head)
    if not head.startswith(b"ref:"):
        return  # detached: HEAD holds the commit
    name = head.removeprefix(b"ref: ").removesuffix(b"\n")
    if not head.startswith(_HEAD_REF) or len(name.split()) != 1 or b"\0" in name \
            or any(part in (b"", b".", b"..") for part in name.split(b"/")):
        raise _Uncacheable("HEAD names another kind of ref")
    ref = _read(os.path.join(common, os.fsdecode(name)), _SMALL_BYTES)
    if ref is not None and ref.startswith(b"ref:"):
        raise _Uncacheable("a symbolic ref")
    key.add(ref if ref is not None else b"packed")
    packed = _lstat(os.path.join(common, "packed-refs"))
    if max(packed[4:]) >= racy_after:
        raise _Uncacheable("packed-refs changed just now")
    key.add(repr(packed).encode())


def _lstat(path: str) -> tuple[int, ...]:
    """The fields of ``path``'s ``lstat`` the snapshot holds; zeros when it is absent."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return _MISSING
    return (info.st_mode, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns,
            info.st_ctime_ns)


def _stats(work_tree: str, paths: list[bytes], racy_after: int, deadline: float) -> bytes:
    """The ``lstat`` of each of ``paths`` and of the ``.gitattributes`` of each folder
    holding one, relative to ``work_tree`` (zeros where absent), as bytes.  Raises
    _Uncacheable when one changed after ``racy_after`` (ns) or past ``deadline``."""
    folders = {b""}
    for path in paths:
        folder = path.rpartition(b"/")[0]
        while folder not in folders:
            folders.add(folder)
            folder = folder.rpartition(b"/")[0]
    names = paths + sorted(f + b"/.gitattributes" if f else b".gitattributes" for f in folders)
    fields: list[int] = []
    extend = fields.extend
    lstat = os.lstat
    root = os.open(work_tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for start in range(0, len(names), _CHECK_EVERY):
            for name in names[start:start + _CHECK_EVERY]:
                try:
                    info = lstat(name, dir_fd=root)
                except (FileNotFoundError, NotADirectoryError):
                    extend(_MISSING)
                    continue
                extend((info.st_mode, info.st_dev, info.st_ino, info.st_size,
                        info.st_mtime_ns, info.st_ctime_ns))
            if time.monotonic() > deadline:
                raise _Uncacheable("the snapshot is slow")
    finally:
        os.close(root)
    if max(fields[4::_STAT_FIELDS], default=0) >= racy_after \
            or max(fields[5::_STAT_FIELDS], default=0) >= racy_after:
        raise _Uncacheable("a file changed just now")
    return struct.pack(f"<{len(fields)}q", *fields)  # (struct.error past 64 bits)
