"""Atomic publication: a file appears whole or not at all, and survives a crash once published.

Every step is here, once, with the reason it exists:

1. write to a temporary name in the *same directory* (so the final rename cannot cross file
   systems), opened ``O_CREAT|O_EXCL|O_NOFOLLOW`` (never follow an attacker's or a leftover
   symlink, never share a temporary file with a concurrent writer);
2. ``fsync`` the file (its bytes are on disk before its name is);
3. set the permissions on the open descriptor;
4. ``os.replace`` onto the final name (atomic on POSIX: readers see the old file or the new one);
5. ``fsync`` the directory (the rename itself is durable; dulwich and diskcache skip this).

A crash before step 4 leaves only a temporary ``.<name>.tmp-*`` file, which readers ignore and
cleanups remove.  Safe across threads and processes.

:func:`write_atomic_many` publishes one document under several names of a folder (a job's launch
record and its state): written once, hard-linked under each further temporary name, then each
renamed in order.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

__all__ = ["TEMP_MARK", "fsync_dir", "write_atomic", "write_atomic_many"]

TEMP_MARK = ".tmp-"
"""Temporary names look like ``.<name>.tmp-<pid>-<random>``; anything holding it is garbage."""


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (renames, creations) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644,
                 durable: bool = True) -> None:
    """Publish ``data`` at ``path`` atomically (see the module doc for each step).

    ``durable=False`` skips both fsyncs (for caches that can be recomputed).  Raises OSError
    (ENOSPC on a full disk...) and leaves no partial file at ``path``.
    """
    final = os.fspath(path)
    temp = _write_temp(final, data, mode, durable)
    try:
        os.replace(temp, final)
    except BaseException:
        _remove(temp)
        raise
    if durable:
        fsync_dir(os.path.dirname(final) or ".")


def _temp_name(final: str) -> str:
    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}")


def _write_temp(final: str, data: bytes, mode: int, durable: bool) -> str:
    """Steps 1-3: a new temporary file beside ``final`` holding ``data``; returns its name."""
    temp = _temp_name(final)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    except BaseException:
        _remove(temp)
        raise
    return temp


def _remove(temp: str) -> None:
    try:
        os.unlink(temp)
    except FileNotFoundError:
        pass


_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK,
             errno.EXDEV}


def write_atomic_many(paths: Sequence[str | os.PathLike[str]], data: bytes,
                      mode: int = 0o644) -> None:
    """Publish ``data`` at each of ``paths`` (in one folder), atomically each and in order,
    without fsync: one temporary file, a hard link to it under a temporary name per further
    path, then each renamed onto its final name.  The published files share one inode, so
    they must only ever be replaced (as every writer here does), never written in place.
    Where the file system refuses hard links, each further path is written on its own."""
    finals = [os.fspath(p) for p in paths]
    temps = [_write_temp(finals[0], data, mode, durable=False)]
    try:
        for final in finals[1:]:
            link = _temp_name(final)
            try:
                os.link(temps[0], link)
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
                break
            temps.append(link)
        for index, temp in enumerate(temps):
            os.replace(temp, finals[index])
    except BaseException:
        for temp in temps:
            _remove(temp)  # those renamed already are gone from their temporary names
        raise
    for final in finals[len(temps):]:
        write_atomic(final, data, mode, durable=False)
