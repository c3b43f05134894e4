"""Leases: the ``@cache`` entries a live process uses, which gc never deletes (docs/cli.md).

The first time a process uses an entry (a hit or a miss), :func:`lease` appends the entry's
identifier to the process's lease file ``.xpmstore/leases/<host>-<pid>-<ns>.lease``, which the
process created and holds with an exclusive ``flock`` for as long as it lives: the kernel lets
the lock go when the process ends, ``kill -9`` included, so a lease never outlives its holder.
Every later use of the entry in the process is a look-up in memory, with no system call.

gc reads, under its exclusive gc lock, the lease files whose lock is held (:func:`in_use`):
their entries are roots.  A lease file whose lock it can take belongs to a process that is gone;
:func:`sweep` deletes it.  A lease is written under the shared gc lock, and a lease file is
created, locked and only then renamed into place, so gc sees every entry leased before it
marks, and never a lease file whose lock is not held yet; the caller checks ``.xpm/done`` after
:func:`lease`, so an entry a gc deleted just before is a plain miss.

A forked child does not inherit its parent's leases: its own first use leases the entry again,
in a file of its own.  A lease file goes when its process exits normally (``atexit``), when a
job ends (:func:`release`, called by the runner), or else at the next gc.  A workspace the
process may not write (read-only, another user's) is used without a lease.

Safe across threads (one mutex) and processes (the gc lock and the files' locks).
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.identifier import is_full_identifier
from ..system.locks import gc_lock, lock_descriptor
from .workspace import Workspace

__all__ = ["generation", "holder", "in_use", "lease", "release", "sweep"]

_SUFFIX = ".lease"
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_.-]")

generation = 0
"""Changes whenever this process's leases are dropped (a fork, :func:`release`): a caller that
remembers "leased" next to an entry compares it with this, and calls :func:`lease` again when it
differs."""


@dataclass
class _Lease:
    fd: int  # -1: the workspace cannot be written, nothing is leased
    path: Path | None
    identifiers: set[str] = field(default_factory=set)


_held: dict[Path, _Lease] = {}  # workspace root → this process's lease file there
_mutex = threading.Lock()
_exit_hook = False


def _folder(workspace: Workspace) -> Path:
    return workspace.private / "leases"


def lease(workspace: Workspace, identifier: str) -> None:
    """Lease the entry ``identifier`` of ``workspace`` until this process ends (see the module
    doc); a no-op when it is leased already.  Waits while a gc holds the gc lock.

    Raises LockUnavailableError on a file system without locks.
    """
    held = _held.get(workspace.root)
    if held is not None and identifier in held.identifiers:
        return
    with _mutex, gc_lock(workspace.gc_lock_path, exclusive=False):
        held = _held.get(workspace.root)
        if held is None:
            held = _held[workspace.root] = _create(workspace)
        if identifier not in held.identifiers:
            if held.fd >= 0:
                os.write(held.fd, (identifier + "\n").encode())
            held.identifiers.add(identifier)


def _create(workspace: Workspace) -> _Lease:
    """This process's lease file in ``workspace``: created under a temporary name, locked,
    then renamed into place (so nobody sees it unlocked)."""
    global _exit_hook
    folder = _folder(workspace)
    host = _NOT_A_NAME.sub("_", socket.gethostname()) or "host"
    name = f"{host}-{os.getpid()}-{time.time_ns()}"
    temporary = folder / f".{name}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if not _is_folder(folder):  # missing, or damaged (a file, a link): made again
            _unlink(folder)
            folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, flags, 0o644)
    except OSError as exc:
        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            return _Lease(-1, None)  # a workspace we may only read: used without a lease
        raise
    try:
        lock_descriptor(fd, temporary, exclusive=True, blocking=True)
        path = folder / f"{name}{_SUFFIX}"
        os.rename(temporary, path)
    except BaseException:
        os.close(fd)
        _unlink(temporary)
        raise
    if not _exit_hook:
        atexit.register(release)
        _exit_hook = True
    return _Lease(fd, path)


def release() -> None:
    """Drop every lease of this process (its files deleted, their locks let go); the next use
    of an entry leases it again.  Called when a job ends and at exit."""
    global generation
    with _mutex:
        generation += 1
        for held in _held.values():
            if held.path is not None:
                _unlink(held.path)  # deleted while still locked: gc never sees it stale
            if held.fd >= 0:
                os.close(held.fd)
        _held.clear()


def _forget_after_fork() -> None:
    """In a forked child: the parent's leases are not the child's.  Their descriptors are
    closed without unlocking (the parent's lock is the same lock: it must stay)."""
    global _mutex, generation
    _mutex = threading.Lock()  # another thread of the parent may have held it
    generation += 1
    for held in _held.values():
        if held.fd >= 0:
            os.close(held.fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _is_folder(folder: Path) -> bool:
    """Whether ``folder`` is a real directory (a symbolic link is not: it may lead out of the
    workspace)."""
    try:
        return stat.S_ISDIR(os.lstat(folder).st_mode)
    except FileNotFoundError:
        return False


def _names(folder: Path) -> list[str]:
    if not _is_folder(folder):
        return []
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _open_regular(path: Path) -> int | None:
    """A read descriptor of the regular file ``path`` (never following a link, never blocking
    on a FIFO), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _read(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def in_use(workspace: Workspace) -> dict[str, str]:
    """The entries leased by live processes: identifier → the name of a lease file holding it
    (``<host>-<pid>-<ns>``).  Reads only; lines that are not identifiers are ignored.  Exact
    under the exclusive gc lock (no lease is written meanwhile)."""
    found: dict[str, str] = {}
    folder = _folder(workspace)
    for name in sorted(_names(folder)):
        if name.startswith(".") or not name.endswith(_SUFFIX):
            continue
        fd = _open_regular(folder / name)
        if fd is None:
            continue
        try:
            if lock_descriptor(fd, folder / name, exclusive=False, blocking=False):
                continue  # nobody holds it: its process is gone
            holder = name.removesuffix(_SUFFIX)
            for line in _read(fd).decode("latin-1").split("\n"):
                if is_full_identifier(line):
                    found.setdefault(line, holder)
        finally:
            os.close(fd)
    return found


def holder(name: str) -> str:
    """The process a lease file name (``<host>-<pid>-<ns>``, as :func:`in_use` gives it) names:
    ``"process 1234 on host"``."""
    host, _, rest = name.rpartition("-")[0].rpartition("-")
    return f"process {rest} on {host}" if host and rest.isdigit() else f"the process of {name}"


def sweep(workspace: Workspace) -> int:
    """Delete the lease files of processes that are gone (and temporary files a killed process
    left); returns how many.  Call it under the exclusive gc lock, so that no lease file is
    being created."""
    folder = _folder(workspace)
    removed = 0
    for name in _names(folder):
        path = folder / name
        fd = _open_regular(path)
        if fd is None:
            if path.is_symlink():  # never ours: a lease file is a regular file
                removed += _unlink(path)
            continue
        try:
            if lock_descriptor(fd, path, exclusive=True, blocking=False):
                removed += _unlink(path)
        finally:
            os.close(fd)
    return removed


def _unlink(path: Path) -> int:
    try:
        os.unlink(path)
        return 1
    except (FileNotFoundError, IsADirectoryError):
        return 0
