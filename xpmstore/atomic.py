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
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TEMP_MARK", "fsync_dir", "write_atomic"]

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
    final = Path(path)
    temp = final.parent / f".{final.name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}"
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
        os.replace(temp, final)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(final.parent)
