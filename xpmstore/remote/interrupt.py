"""Stopping the transfers in flight when their caller is interrupted (Ctrl-C).

A push or a pull transfers on worker threads, while Ctrl-C raises KeyboardInterrupt in the main
thread alone.  A thread pool that is shut down waits for its running calls: an upload in flight
would go on to its end (seconds for a big file) and be published after the user asked to stop.
Instead, :func:`run_all` sets an :class:`Interrupt` as soon as the caller is interrupted (or a
call fails), drops the calls not started, and waits only for those in flight, which check the
interrupt between two chunks (:meth:`Interrupt.check` raises TransferInterrupted): a write
stops within a chunk and publishes nothing — the directory remote removes its temporary file,
and an S3 PUT whose body stops (:class:`InterruptibleReader`) is never stored.  An interrupt
made with a parent is set when its parent is: the files of one object stop together when one
of them fails, without stopping the other objects.  Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import BinaryIO, TypeVar

from ..errors import TransferInterrupted

__all__ = ["Interrupt", "InterruptibleReader", "check", "run_all"]

T = TypeVar("T")

_WAKE = 0.1
"""Seconds between the waking-ups of a caller waiting for its transfers: a Ctrl-C that the
kernel handed to a worker thread (one that was running, or all of them after a SIGSTOP) raises
KeyboardInterrupt in the main thread only when it runs again."""


class Interrupt:
    """A flag the transfers of one push or pull check between chunks; set once (or when
    ``parent`` is), never cleared."""

    def __init__(self, parent: Interrupt | None = None):
        self._event = threading.Event()
        self._parent = parent

    def set(self) -> None:
        """Ask every transfer that checks this flag to stop (not those of its parent)."""
        self._event.set()

    def is_set(self) -> bool:
        """Whether the transfers were asked to stop (here or by the parent)."""
        return self._event.is_set() or (self._parent is not None and self._parent.is_set())

    def check(self) -> None:
        """Raise TransferInterrupted when the transfers were asked to stop."""
        if self.is_set():
            raise TransferInterrupted("interrupted")


def check(interrupt: Interrupt | None) -> None:
    """:meth:`Interrupt.check` when there is an interrupt to check."""
    if interrupt is not None:
        interrupt.check()


class InterruptibleReader:
    """A binary file whose every read checks ``interrupt`` first: the body of an S3 upload
    (botocore reads it in chunks — to checksum it, to sign it, to send it — and a read that
    raises ends the request without the server storing anything)."""

    def __init__(self, raw: BinaryIO, interrupt: Interrupt):
        self._raw = raw
        self._interrupt = interrupt

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes (all that is left when negative); raises TransferInterrupted
        once the interrupt is set."""
        self._interrupt.check()
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` (as :meth:`io.IOBase.seek`)."""
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        """The current position."""
        return self._raw.tell()

    def seekable(self) -> bool:
        """True: botocore rewinds the body between its passes."""
        return True

    def readable(self) -> bool:
        """True."""
        return True


def run_all(call: Callable[[T], object], items: Iterable[T], threads: int,
            interrupt: Interrupt) -> None:
    """Call ``call(item)`` for every item on a pool of ``threads`` threads; returns when every
    call ended.

    When a call fails or the caller is interrupted (KeyboardInterrupt, raised in the main
    thread while it waits), ``interrupt`` is set, the calls not started are dropped, and only
    those in flight are waited for — they stop at their next check (see the module doc); then
    the KeyboardInterrupt, or the first error that is not the TransferInterrupted of a call
    stopped that way, is raised.  ``interrupt`` is the callers' to give: one its calls check,
    made for this run when a failure must not stop more than its siblings.
    """
    pool = ThreadPoolExecutor(threads)
    futures: list[Future[object]] = []
    try:
        futures = [pool.submit(call, item) for item in items]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, _WAKE, FIRST_EXCEPTION)
            if any(future.exception() is not None for future in done):
                interrupt.set()
                break
    except BaseException:
        interrupt.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    errors = [f.exception() for f in futures if not f.cancelled()]
    failed = [e for e in errors if e is not None]
    if failed:
        raise next((e for e in failed if not isinstance(e, TransferInterrupted)), failed[0])
