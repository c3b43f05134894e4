"""Progress of a push or pull on the command line: a live line on a terminal, nothing otherwise
(the commands print one plain line per object anyway).

Counts objects and bytes; :meth:`TransferProgress.advance` is called from the transfer threads
as bytes go (a chunk downloaded, a blob uploaded).  Redraws at most ten times a second.
Thread-safe.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["TransferProgress"]

_PERIOD = 0.1


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"  # pragma: no cover


class TransferProgress:
    """The live line of a push or pull (``verb``) on ``stream`` (stderr by default)."""

    def __init__(self, verb: str, stream: TextIO | None = None, live: bool | None = None):
        self.verb = verb
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.objects = 0
        self.total_objects = 0
        self.bytes = 0
        self.total_bytes = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._drawn = 0.0

    def expect(self, objects: int = 0, nbytes: int = 0) -> None:
        """Add ``objects`` and ``nbytes`` to what is to be transferred."""
        with self._lock:
            self.total_objects += objects
            self.total_bytes += nbytes
        self._draw()

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more were transferred."""
        with self._lock:
            self.bytes += nbytes
        self._draw()

    def finished(self) -> None:
        """One more object is done (transferred, present or failed)."""
        with self._lock:
            self.objects += 1
        self._draw(force=True)

    def line(self) -> str:
        """The text of the live line."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        total = f"/{_size(self.total_bytes)}" if self.total_bytes else ""
        objects = f"{self.objects}/{self.total_objects}" if self.total_objects else \
            str(self.objects)
        return (f"{self.verb}: {objects} objects, {_size(self.bytes)}{total},"
                f" {_size(self.bytes / elapsed)}/s")

    def _draw(self, force: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._drawn < _PERIOD:
                return
            self._drawn = now
            self.stream.write("\r\033[K" + self.line())
            self.stream.flush()

    def echo(self, text: str, stream: TextIO | None = None) -> None:
        """Print a plain line of ``text`` to ``stream`` (stdout by default) without mixing it
        with the live line."""
        out = stream or sys.stdout
        with self._lock:
            if self.live:
                self.stream.write("\r\033[K")
                self.stream.flush()
            out.write(text + "\n")
            out.flush()
            self._drawn = 0.0
        self._draw()

    def close(self) -> None:
        """Erase the live line."""
        if self.live:
            with self._lock:
                self.stream.write("\r\033[K")
                self.stream.flush()
