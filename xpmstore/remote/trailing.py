"""The blake3 of a file being written, computed by a thread that trails the writer.

A pull copies a blob into its local file by pieces (:meth:`xpmstore.remote.backends.Backend.
copy_into`); after each piece, :meth:`TrailingHash.written` hands the piece's region to a thread
that maps it from the local file — pages of the page cache, just written: no copy — and hashes
it while the next piece is copied (16 MiB at a time).  What is checked is therefore exactly what
will be published (the local file's bytes), and checking a big file costs little more than
copying it: the hash runs beside the copy instead of after it (benchmarks/README.md,
"remote").  Small files (below 16 MiB) are hashed at the end, inline, without a thread.

The file must not shrink while a region of it is mapped (that would raise SIGBUS): it is the
caller's own temporary file, and the caller empties it, if it must, only after :meth:`close`.
"""

from __future__ import annotations

import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from blake3 import blake3

__all__ = ["TrailingHash"]

_SMALL = 1 << 16  # regions below this are read, not mapped
_REGION = 16 << 20  # handed to the thread (mapped, hashed) at a time: a copy's piece


class TrailingHash:
    """The blake3 of the file at ``path`` as a writer fills it from its start (see the module
    doc).  Use it as a context manager; one writer, one thread of its own at most."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        self._hasher = blake3()
        self._hashed = 0  # bytes hashed (a prefix of the file)
        self._reported = 0  # bytes the writer reported written
        self._submitted = 0  # bytes handed to the thread
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def written(self, offset: int, size: int) -> None:
        """The writer wrote ``size`` bytes at ``offset`` (right after the previous piece): hash
        them in the background (once 16 MiB are waiting)."""
        if offset != self._reported:
            raise ValueError(f"written({offset}, {size}): expected offset {self._reported}")
        self._reported += size
        if self._reported - self._submitted < _REGION:  # (read now: tests make it small)
            return  # more to come first (a small file: all hashed inline at the end)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, "xpmstore-verify")
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._hash_to, self._reported)
        self._submitted = self._reported

    def _hash_to(self, end: int) -> None:
        if end - self._hashed < _SMALL:
            while self._hashed < end:
                data = os.pread(self._fd, end - self._hashed, self._hashed)
                if not data:
                    return  # shorter than reported: the size check rejects it
                self._hasher.update(data)
                self._hashed += len(data)
            return
        start = self._hashed - self._hashed % mmap.ALLOCATIONGRANULARITY
        region = mmap.mmap(self._fd, end - start, offset=start, access=mmap.ACCESS_READ)
        try:
            with memoryview(region) as view:
                self._hasher.update(view[self._hashed - start:])
        finally:
            region.close()
        self._hashed = end

    def hexdigest(self, size: int) -> str:
        """The hex blake3 of the file's first ``size`` bytes (its size once written)."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        self._hash_to(size)
        return self._hasher.hexdigest()

    def close(self) -> None:
        """Release the thread and the file."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        os.close(self._fd)

    def __enter__(self) -> TrailingHash:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
