"""Every lock of xpmstore, in one place.

* :func:`object_lock`: the exclusive lock of one object (a ``@cache`` miss, a pull), an
  ``flock`` that blocks in the kernel (or polls, with a timeout).  A lock held by a process that
  was killed is released by the kernel with the process, so it never goes stale on one host.
  (Not filelock's lock, the same ``flock`` underneath: its imports, which the zygote would carry,
  make every job's fork and exit costlier; benchmarks/README.md, "scheduler", has the figures.)
* :func:`gc_lock`: the workspace's shared/exclusive gc lock (``flock`` ``LOCK_SH``/``LOCK_EX``).
* :func:`path_lock`: a short exclusive lock on any file, blocking in the kernel (opening the
  index; the claim lock of a job).
* :func:`held_or_refused` / :func:`try_object_lock`: a lock taken without waiting (gc's and
  fsck's probes); :func:`hold_under`: a lock taken without waiting, under another (a job's run
  lock, under its claim lock), and held by a descriptor.
* :func:`lock_descriptor`: an ``flock`` on a descriptor the caller opened and keeps (a process's
  lease file, :mod:`xpmstore.store.leases`, held until the process ends; gc's probe of it).

A file system whose locks do not work is a clear :class:`LockUnavailableError` naming the mount,
never a silent fallback to a soft lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import LockTimeout, LockUnavailableError
from .mounts import mount_of

__all__ = ["HeldLock", "LockTimeout", "LockUnavailableError", "gc_lock", "held_or_refused",
           "hold_under", "lock_descriptor", "object_lock", "path_lock", "try_object_lock"]


def _unsupported(path: Path, exc: OSError) -> LockUnavailableError:
    return LockUnavailableError(
        f"cannot lock {path}: the file system mounted at {mount_of(path)[0]} does not support"
        f" locks ({exc.strerror}); put the workspace on a file system with working locks"
    )


_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


@contextlib.contextmanager
def object_lock(path: Path, timeout: float = -1) -> Iterator[None]:
    """Hold the exclusive lock file ``path`` (created if needed); ``timeout`` < 0 waits forever
    (in the kernel: the next waiter wakes as soon as the holder lets go).

    Raises LockTimeout after ``timeout`` seconds, LockUnavailableError on a file system without
    locks.  Safe across processes and threads (each call opens its own descriptor).
    """
    with _flock(path, fcntl.LOCK_EX, blocking=timeout < 0, timeout=max(timeout, 0)) as acquired:
        if not acquired:
            raise LockTimeout(f"lock {path} is held by another process")
        yield


@contextlib.contextmanager
def try_object_lock(path: Path) -> Iterator[bool]:
    """Take the lock ``path`` without waiting; yields whether it was acquired.

    Only the acquisition is guarded: an exception of the ``with`` body (a LockTimeout of another
    lock included) propagates unchanged.
    """
    with _flock(path, fcntl.LOCK_EX, blocking=False) as acquired:  # the same flock, cheaper
        yield acquired


_POLL_FIRST = 0.001  # a lock waited for with a timeout is polled: first after 1 ms...
_POLL_MAX = 0.05  # ...doubling up to every 50 ms (filelock's interval)


@contextlib.contextmanager
def _flock(path: Path, operation: int, blocking: bool, timeout: float = 0) -> Iterator[bool]:
    """``flock`` the file ``path`` (created, with its folder, if needed).  Without ``blocking``,
    retries for ``timeout`` seconds; yields whether it was acquired."""
    fd = _open_lock(path)
    try:
        if not _acquire(fd, path, operation, blocking, timeout):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, operation: int, blocking: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pause = _POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, operation | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno in _NO_LOCKS:
                raise _unsupported(path, exc) from None
            raise
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, _POLL_MAX)


def gc_lock(
    path: Path, *, exclusive: bool, blocking: bool = True
) -> contextlib.AbstractContextManager[bool]:
    """The gc lock: shared for submits (record and check reuse), exclusive for gc.

    Yields whether it was acquired (always True when ``blocking``).
    """
    return _flock(path, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, blocking)


def path_lock(path: Path) -> contextlib.AbstractContextManager[bool]:
    """A short exclusive lock on ``path`` (opening the index, claiming a job).

    A kernel-blocking ``flock``: the next waiter wakes the moment the holder lets go, where a
    polling lock would sleep up to its poll interval (filelock's: 50 ms) — the claim lock is
    taken by every scheduler for every job, and held for milliseconds.
    """
    return _flock(path, fcntl.LOCK_EX, True)


@contextlib.contextmanager
def held_or_refused(path: Path) -> Iterator[None]:
    """Take the exclusive lock ``path`` without waiting, or raise LockTimeout (a job's run lock:
    a job whose run lock another process holds must not run)."""
    with _flock(path, fcntl.LOCK_EX, blocking=False) as acquired:
        if not acquired:
            raise LockTimeout(f"lock {path} is held by another process")
        yield


class HeldLock:
    """A lock held by an open descriptor until :meth:`close` (or the holder's death)."""

    def __init__(self, fd: int):
        self._fd: int | None = fd

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # the lock goes with the descriptor


def hold_under(outer: Path, inner: Path) -> HeldLock:
    """Take the exclusive lock ``inner`` without waiting, while holding ``outer`` (waited for,
    in the kernel, and let go at once); raises LockTimeout when another process holds
    ``inner``, LockUnavailableError on a file system without locks.  ``outer`` and ``inner``
    are created when missing.  (A job's run lock, taken under its claim lock: the same as
    ``path_lock(outer)`` around ``held_or_refused(inner)``, in a few system calls.)"""
    outer_fd = _open_lock(outer)
    try:
        _acquire(outer_fd, outer, fcntl.LOCK_EX, True, 0)
        fd = _open_lock(inner)
        try:
            if not _acquire(fd, inner, fcntl.LOCK_EX, False, 0):
                raise LockTimeout(f"lock {inner} is held by another process")
        except BaseException:
            os.close(fd)
            raise
        return HeldLock(fd)
    finally:
        os.close(outer_fd)  # lets the outer lock go


def lock_descriptor(fd: int, path: Path, *, exclusive: bool, blocking: bool) -> bool:
    """``flock`` the open descriptor ``fd`` (of the file ``path``, named in errors): exclusive
    or shared, waiting in the kernel or not; returns whether it was acquired.  The lock goes
    when every descriptor of that open file is closed (or the process dies).  Raises
    LockUnavailableError on a file system without locks."""
    return _acquire(fd, path, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, blocking, 0)


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # its folder is missing (the first lock of a workspace)
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
