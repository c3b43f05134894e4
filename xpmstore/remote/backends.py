"""The two kinds of remote storage behind one small key/value interface (docs/remote.md).

A :class:`Backend` stores opaque bytes under ``/``-separated keys.  Writes are *create only*: a
key that exists is never overwritten (two writers of one key write equal or equally valid bytes,
so correctness never relies on the condition being honoured) — except by a write asked to
``replace`` (``xpmstore push --verify`` repairing a damaged key), which swaps the bytes
atomically: a reader sees the old bytes or the new ones, never a mix.  A file's upload checks
its :class:`~xpmstore.remote.interrupt.Interrupt` between chunks: interrupted, it publishes
nothing.

* :class:`DirectoryBackend` (``file:///shared/xpmstore``): a write goes to a temporary file in the
  key's folder, is fsynced, then ``os.link``-ed to its final name (``EEXIST`` is fine; a
  replacing write renames it over the old one) — a reader never sees a partial file.  Its root
  directory is never created by a write: a missing root (a share that is not mounted) or one
  that is not a directory makes the remote unreachable (RemoteUnavailableError), and a root
  that refuses writes (read-only, no permission, full) unwritable (RemoteUnwritableError);
  :meth:`Backend.init` (``xpmstore remote init``) creates it on purpose.
* :class:`~xpmstore.remote.s3.S3Backend` (``s3://bucket/prefix``, any S3-compatible server
  through ``endpoint_url``; :mod:`.s3`): HEAD, then PUT, with ``If-None-Match: *`` when the
  server honours it (412 is fine).

Both are safe across threads and processes.  :func:`xpmstore.remote.layout.open_backend` opens
the one a URL names.
"""

from __future__ import annotations

import errno
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..errors import RemoteError, RemoteUnavailableError, RemoteUnwritableError
from ..system.atomic import TEMP_MARK, fsync_dir
from .interrupt import Interrupt, check

__all__ = ["Backend", "DirectoryBackend"]

_UNWRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENOSPC,
                         errno.EDQUOT})
"""Errors of a write that every later write would meet too: the remote is unwritable."""

_CHUNK = 1 << 20
COPY_CHUNK = 16 << 20
""":meth:`DirectoryBackend.copy_into` copies (and reports) this much at a time."""


class Backend(ABC):
    """Create-only storage of bytes under keys; every method may raise RemoteError (and its
    RemoteUnavailableError when the storage cannot be reached)."""

    url: str

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    @abstractmethod
    def put_file(self, key: str, path: Path, *, replace: bool = False,
                 interrupt: Interrupt | None = None) -> bool:
        """Store the file at ``path`` under ``key`` unless it exists (``replace``: whatever is
        there, swapped atomically); True when written.  Raises TransferInterrupted, having
        published nothing, when ``interrupt`` is set before the last chunk is stored."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, replace: bool = False) -> bool:
        """Store ``data`` under ``key`` unless it exists (``replace``: whatever is there,
        swapped atomically); True when written."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when absent."""

    @abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """A binary stream of the bytes under ``key`` (close it); raises RemoteError when
        absent."""

    def copy_into(self, key: str, out: IO[bytes], limit: int,
                  written: Callable[[int, int], None] | None = None) -> bool:
        """Copy at most ``limit`` bytes of ``key`` into the empty file ``out`` by a fast path
        (the kernel's, for a directory), calling ``written(offset, size)`` after each piece is
        in ``out``; False when this backend has none or it failed (``out`` may then hold part
        of the bytes: empty it, then stream :meth:`open_read` instead).  Raises RemoteError
        when ``key`` is absent."""
        return False

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The keys that start with ``prefix`` (a folder ending in ``/``)."""

    def count_upto(self, prefix: str, limit: int) -> int:
        """How many keys start with ``prefix``, counting no further than ``limit`` (one listing
        page on S3: cheap however full the folder is)."""
        return min(len(self.list(prefix)), limit)

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (absent is fine)."""

    @abstractmethod
    def mtime(self, key: str) -> float | None:
        """When ``key`` was written (seconds since the epoch), or None when absent."""

    @abstractmethod
    def scan(self, prefix: str) -> dict[str, tuple[float, int]]:
        """Every key under ``prefix`` (a folder ending in ``/``) → (mtime, size): one listing."""

    @abstractmethod
    def refresh(self, key: str, path: Path, interrupt: Interrupt | None = None) -> None:
        """Make ``key`` new again (its mtime now), ``path`` holding the very same bytes: what a
        push that deduplicates against an old blob does, so that remote gc spares it.  An
        upload it makes checks ``interrupt`` as :meth:`put_file` does."""

    @abstractmethod
    def init(self) -> str:
        """Make the storage ready on purpose (``xpmstore remote init``): create the directory,
        or the bucket; returns one line saying what was done.  Raises RemoteError."""


class DirectoryBackend(Backend):
    """A remote in a directory of a shared file system (see the module doc)."""

    def __init__(self, root: Path, url: str = ""):
        self.root = Path(root)
        self.url = url or f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def _check_root(self) -> None:
        """Raise RemoteUnavailableError unless the root is a directory (called when a key is
        not found, so that a missing share never reads as an empty remote)."""
        try:
            mode = os.stat(self.root).st_mode
        except FileNotFoundError:
            raise RemoteUnavailableError(
                f"{self.url}: the remote directory {self.root} does not exist (a share not"
                " mounted?); create it on purpose with `xpmstore remote init`") from None
        except OSError as exc:
            raise RemoteUnavailableError(f"{self.url}: {self.root}: {exc.strerror}") from None
        if not stat.S_ISDIR(mode):
            raise RemoteUnavailableError(f"{self.url}: {self.root} is not a directory")

    def _unwritable(self, exc: OSError, what: Path) -> RemoteError:
        if exc.errno in _UNWRITABLE:
            return RemoteUnwritableError(f"{self.url}: cannot write {what}: {exc.strerror}"
                                         " (the remote is not writable)")
        return RemoteError(f"{self.url}: cannot write {what}: {exc.strerror}")

    def exists(self, key: str) -> bool:
        if self._path(key).exists():
            return True
        self._check_root()
        return False

    def mtime(self, key: str) -> float | None:
        try:
            return self._path(key).stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            self._check_root()
            return None

    def _folders(self, key: str) -> None:
        """Create the folders of ``key`` below the root — never the root itself."""
        folder = self.root
        for part in key.split("/")[:-1]:
            folder = folder / part
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except OSError as exc:
                self._check_root()  # a root gone missing is unreachable, not unwritable
                raise self._unwritable(exc, folder) from None

    def _publish(self, key: str, write: Any, replace: bool = False,
                 interrupt: Interrupt | None = None) -> bool:
        final = self._path(key)
        if self.exists(key) and not replace:  # (and the root is a directory)
            return False
        self._folders(key)
        temp = final.parent / f".{final.name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise self._unwritable(exc, temp) from None
        try:
            try:
                with os.fdopen(fd, "wb") as handle:
                    write(handle)
                    handle.flush()
                    os.fsync(handle.fileno())  # bytes on disk before the name is
            except OSError as exc:
                if exc.errno in _UNWRITABLE:  # a full disk: every later write would fail too
                    raise self._unwritable(exc, final) from None
                raise
            check(interrupt)  # interrupted during the last chunk or the fsync: not published
            if replace:  # atomic: a reader has the old file open, or opens the new one
                os.replace(temp, final)
            else:
                try:
                    os.link(temp, final)  # atomic and create-only: a reader sees all or nothing
                except FileExistsError:
                    return False  # another writer published the same key first: fine
            fsync_dir(final.parent)
            return True
        finally:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass

    def put_file(self, key: str, path: Path, *, replace: bool = False,
                 interrupt: Interrupt | None = None) -> bool:
        def copy(handle: IO[bytes]) -> None:
            with open(path, "rb") as source:
                while chunk := source.read(_CHUNK):
                    check(interrupt)  # a Ctrl-C stops the copy here: the temp file goes
                    handle.write(chunk)

        return self._publish(key, copy, replace, interrupt)

    def put_bytes(self, key: str, data: bytes, *, replace: bool = False) -> bool:
        return self._publish(key, lambda handle: handle.write(data), replace)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            self._check_root()
            return None

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError):
            self._check_root()
            raise RemoteError(f"{self.url}: {key} is missing") from None

    def copy_into(self, key: str, out: IO[bytes], limit: int,
                  written: Callable[[int, int], None] | None = None) -> bool:
        with self.open_read(key) as source:
            src, dst, done = source.fileno(), out.fileno(), 0
            try:
                while done < limit:
                    copied = os.copy_file_range(src, dst, min(limit - done, COPY_CHUNK))
                    if copied == 0:
                        break
                    if written is not None:
                        written(done, copied)
                    done += copied
            except OSError:  # no copy_file_range across these file systems: stream instead
                return False
        return True

    def list(self, prefix: str) -> list[str]:
        self._check_root()
        top = self._path(prefix)
        out: list[str] = []
        for current, _dirs, files in os.walk(top):
            rel = os.path.relpath(current, self.root)
            out.extend(f"{rel}/{name}" for name in files if TEMP_MARK not in name)
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def scan(self, prefix: str) -> dict[str, tuple[float, int]]:
        out: dict[str, tuple[float, int]] = {}
        for key in self.list(prefix):
            try:
                info = self._path(key).stat()
            except FileNotFoundError:
                continue  # deleted meanwhile
            out[key] = (info.st_mtime, info.st_size)
        return out

    def refresh(self, key: str, path: Path, interrupt: Interrupt | None = None) -> None:
        try:
            os.utime(self._path(key))
        except FileNotFoundError:  # deleted meanwhile: write it again
            self.put_file(key, path, interrupt=interrupt)
        except OSError as exc:
            raise self._unwritable(exc, self._path(key)) from None

    def init(self) -> str:
        existed = self.root.is_dir()
        try:
            for folder in (self.root, self.root / "cas", self.root / "objects"):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RemoteError(f"{self.url}: cannot create {self.root}: {exc.strerror or exc}") \
                from None
        return f"{self.url}: {'ready (it existed)' if existed else 'created'}"

