"""Which files of an object the server may show, and opening them without leaving the object.

Only two kinds of files are ever served: the files listed by the object's done manifest, and
its logs (``stdout``, ``stderr``, and those of earlier attempts under ``.xpm/attempts/<n>/``).
A requested path must be one of these names *exactly* (no normalisation: ``a/../b``, an
absolute path, a NUL or a name that is not listed is refused), and it is opened component by
component relative to the object's directory with ``O_NOFOLLOW``, so that a symbolic link
placed in the directory after the manifest was written cannot lead outside it.  Links listed by
the manifest are shown with their target, never followed.  Reads only; safe across threads.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from ..errors import PathRefusedError, XpmstoreError
from ..store.taskdirs import read_manifest
from ..store.taskstate import ATTEMPTS, attempt_dir, attempt_numbers

__all__ = ["LOG_STREAMS", "file_listing", "is_listed", "log_names", "open_listed", "read_chunk"]

LOG_STREAMS = ("stdout", "stderr")

_ATTEMPT_LOG = re.compile(re.escape(ATTEMPTS) + r"/([1-9][0-9]{0,8})/(stdout|stderr)")


def file_listing(directory: Path) -> dict[str, Any]:
    """The files and links of a done object's manifest (``files``: path, size, executable;
    ``links``: path, target), sorted by path; empty lists when it is not done or its manifest
    cannot be read (``damaged`` then says why)."""
    try:
        manifest = read_manifest(directory)
    except (XpmstoreError, OSError, ValueError) as exc:
        return {"files": [], "links": [], "damaged": str(exc)}
    if manifest is None:
        return {"files": [], "links": []}
    return {
        "files": [{"path": f.path, "size": f.size, "executable": f.executable}
                  for f in sorted(manifest.files, key=lambda f: f.path)],
        "links": [{"path": link.path, "target": link.target}
                  for link in sorted(manifest.links, key=lambda link: link.path)],
    }


def log_names(directory: Path) -> list[str]:
    """The object's logs that exist: ``stdout``, ``stderr``, then those of earlier attempts
    (``.xpm/attempts/<n>/stdout``), oldest attempt first."""
    found = [name for name in LOG_STREAMS if (directory / name).is_file()]
    for number in attempt_numbers(directory):
        found.extend(f"{ATTEMPTS}/{number}/{name}" for name in LOG_STREAMS
                     if (attempt_dir(directory, number) / name).is_file())
    return found


def is_listed(directory: Path, path: str) -> bool:
    """Whether ``path`` is exactly a log name or a file listed by the done manifest."""
    if "\x00" in path:
        return False
    if path in LOG_STREAMS or _ATTEMPT_LOG.fullmatch(path):
        return True
    try:
        manifest = read_manifest(directory)
    except (XpmstoreError, OSError, ValueError):
        return False
    return manifest is not None and any(entry.path == path for entry in manifest.files)


def _refused(path: str, why: str) -> PathRefusedError:
    return PathRefusedError(f"{path!r}: {why}")


def open_listed(directory: Path, path: str) -> int:
    """A read-only descriptor of the listed file or log ``path`` of the object at
    ``directory`` (the caller closes it).

    Raises PathRefusedError for a path that is not listed, or whose components are not plain
    directories and a regular file inside the object; FileNotFoundError for a log that is
    not there (yet).
    """
    if not is_listed(directory, path):
        raise _refused(path, "not a file of this object's manifest, nor one of its logs")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise _refused(path, "not a plain relative path")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    current = os.open(directory, flags | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                step = os.open(part, flags | os.O_DIRECTORY, dir_fd=current)
            except FileNotFoundError:
                raise
            except OSError:  # a link (ELOOP) or a file (ENOTDIR) where a folder should be
                raise _refused(path, "a component is not a directory of the object") from None
            os.close(current)
            current = step
        try:
            handle = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=current)
        except FileNotFoundError:
            raise
        except OSError:  # a link (ELOOP)
            raise _refused(path, "not a regular file of the object (a link?)") from None
    finally:
        os.close(current)
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise _refused(path, "not a regular file")
    return handle


def read_chunk(handle: int, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to ``limit`` bytes of an open file from ``offset``, and the file's size now."""
    size = os.fstat(handle).st_size
    if offset >= size:
        return b"", size
    return os.pread(handle, min(limit, size - offset), offset), size
