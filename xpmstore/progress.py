"""Progress of an experiment: a live line on a terminal, plain log lines otherwise.

Counts done, reused, running and failed jobs, names the running ones, and prints a one-line
summary at the end.  Thread-safe (the scheduler thread and the submitting thread both report).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Reports job events to ``stream`` (stderr by default)."""

    def __init__(self, name: str, stream: TextIO | None = None, live: bool | None = None):
        self.name = name
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.counts = {"done": 0, "reused": 0, "failed": 0, "blocked": 0}
        self.running: dict[str, str] = {}
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
        self._emit(
            f"\r\033[K{self.name}: {self.counts['done']} done, {self.counts['reused']} reused,"
            f" {len(self.running)} running, {self.counts['failed']} failed"
            + (f"  [{names}{more}]" if names else "")
        )

    def started_job(self, identifier: str, name: str) -> None:
        """A job's process started."""
        with self._lock:
            self.running[identifier] = name
            if not self.live:
                self._line(f"running  {name} {identifier[:12]}")
            self._draw()

    def finished_job(self, identifier: str, name: str, outcome: str, detail: str = "") -> None:
        """A job ended: ``outcome`` is done, reused, failed or blocked."""
        with self._lock:
            self.running.pop(identifier, None)
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if outcome in ("failed", "blocked"):
                self._line(f"{outcome:<8} {name} {identifier[:12]} {detail}".rstrip())
            elif not self.live and outcome == "done":
                self._line(f"done     {name} {identifier[:12]}")
            self._draw()

    def summary(self) -> str:
        """The one-line summary (also printed by :meth:`close`)."""
        c = self.counts
        return (f"{self.name}: {c['done']} done, {c['reused']} reused, {c['failed']} failed"
                + (f", {c['blocked']} blocked" if c["blocked"] else "")
                + f" in {time.time() - self.started:.1f}s")

    def close(self) -> None:
        """Print the summary line."""
        with self._lock:
            self._emit(("\r\033[K" if self.live else "") + self.summary() + "\n")
