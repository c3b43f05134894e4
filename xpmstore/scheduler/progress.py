"""Progress of an experiment: a live line on a terminal, plain log lines otherwise.

Counts done (ran here), reused, waited (ran by another process while this run waited), queued
(claimed ahead of a free worker), running and failed jobs, names the running ones, and prints a
one-line summary at the end.  Thread-safe (the scheduler thread and the submitting thread both
report).  Also the one-line reports of the threads nothing may stop: :func:`say` and
:func:`describe_error`.
"""

from __future__ import annotations

import errno
import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress", "describe_error", "say"]


def say(line: str) -> None:
    """Print one line to stderr from a thread that nothing may stop (the scheduler's, a
    launcher's): a broken stderr (a closed pipe, a full disk) loses the line, never the run."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def describe_error(exc: BaseException) -> str:
    """One line naming what went wrong in ``exc``, for a job's failure reason or a warning:
    ``disk full: …`` for a full disk or an exhausted quota (with the file when known), else
    ``TypeName: message``."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"disk full: {exc.strerror or exc}{where}"
    text = " ".join(str(exc).splitlines())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Progress:
    """Reports job events to ``stream`` (stderr by default)."""

    def __init__(self, name: str, stream: TextIO | None = None, live: bool | None = None):
        self.name = name
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.counts = {"done": 0, "reused": 0, "waited": 0, "failed": 0, "blocked": 0}
        self.running: dict[str, str] = {}
        self.queued: set[str] = set()
        self.started = time.time()
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._broken = False

    def _emit(self, text: str) -> None:
        """Write to the stream; once it is broken (a closed pipe, a full disk), stay quiet:
        progress must never stop the experiment."""
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._broken = True

    def _line(self, text: str) -> None:
        if self.live:
            self._emit("\r\033[K" + text + "\n")
            self._draw(force=True)
        else:
            self._emit(f"[{self.name}] {text}\n")

    def _draw(self, force: bool = False) -> None:
        if not self.live:
            return
        now = time.time()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        names = ", ".join(sorted(self.running.values())[:3])
        more = f" +{len(self.running) - 3}" if len(self.running) > 3 else ""
        queued = f", {len(self.queued)} queued" if self.queued else ""
        self._emit(
            f"\r\033[K{self.name}: {self.counts['done']} done, {self.counts['reused']} reused,"
            + (f" {self.counts['waited']} waited," if self.counts["waited"] else "")
            + f" {len(self.running)} running{queued}, {self.counts['failed']} failed"
            + (f"  [{names}{more}]" if names else "")
        )

    def queued_job(self, identifier: str, name: str) -> None:
        """A job was claimed ahead of a free worker: it starts when one frees."""
        with self._lock:
            self.queued.add(identifier)
            if not self.live:
                self._line(f"queued   {name} {identifier[:12]}")
            self._draw()

    def started_job(self, identifier: str, name: str, doing: str = "running") -> None:
        """A job's process started (``doing``: "running"), or its pull from the remote
        ("pulling")."""
        with self._lock:
            self.queued.discard(identifier)
            self.running[identifier] = name
            if not self.live:
                self._line(f"{doing:<8} {name} {identifier[:12]}")
            self._draw()

    def finished_job(self, identifier: str, name: str, outcome: str, detail: str = "") -> None:
        """A job ended: ``outcome`` is done (it ran here), reused, waited (another process ran
        it), failed or blocked."""
        with self._lock:
            self.running.pop(identifier, None)
            self.queued.discard(identifier)
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if outcome in ("failed", "blocked"):
                self._line(f"{outcome:<8} {name} {identifier[:12]} {detail}".rstrip())
            elif not self.live and outcome in ("done", "waited"):
                self._line(f"{outcome:<8} {name} {identifier[:12]}")
            self._draw()

    def summary(self) -> str:
        """The one-line summary (also printed by :meth:`close`)."""
        c = self.counts
        return (f"{self.name}: {c['done']} done, {c['reused']} reused,"
                + (f" {c['waited']} waited," if c["waited"] else "")
                + f" {c['failed']} failed"
                + (f", {c['blocked']} blocked" if c["blocked"] else "")
                + f" in {time.time() - self.started:.1f}s")

    def close(self) -> None:
        """Print the summary line."""
        with self._lock:
            self._emit(("\r\033[K" if self.live else "") + self.summary() + "\n")
