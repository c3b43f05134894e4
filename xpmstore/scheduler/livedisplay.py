"""An experiment's live block on a terminal, drawn with ``rich``.

One compact block, redrawn in place four times a second by rich's own thread: the totals
(finished of all, done, reused, running, queued, failed, blocked, elapsed), then the running jobs
(oldest first, at most :data:`SHOWN`) each with its elapsed time, tags and a bar of the progress
its task reports (:mod:`xpmstore.store.taskprogress`).  Each failure is printed once, above the
block, as a permanent line naming its log; what the experiment's code prints goes above the block
too. When the experiment ends the block is erased and the one-line summary stays.

A job event only updates counters under a lock (the scheduler never waits for the terminal);
the drawing reads them.  Built only when the stream is a terminal and ``rich`` imports
(:func:`display_for`): off a terminal, :class:`xpmstore.scheduler.progress.Progress` prints one line
per state change, and nothing imports rich (a job's process, ``xpmstore get``, a ``@cache`` hit
never do).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..store.taskprogress import ProgressLevel, overall_fraction, progress_text, read_progress
from .progress import Progress

__all__ = ["SHOWN", "LiveDisplay", "display_for", "elapsed_text"]

SHOWN = 8
"""Running jobs shown in the block (the others are counted on one line)."""

_REFRESH = 4  # redraws a second
_PROGRESS_EVERY = 1.0  # seconds between two reads of one job's progress file

JobLookup = Callable[[str], Any]
"""The experiment's job of an identifier (an object with ``taskdir`` and ``tags``), or None."""


def elapsed_text(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def display_for(name: str, stream: TextIO | None = None, jobs: JobLookup | None = None,
                total: Callable[[], int] | None = None) -> Progress:
    """The progress display of an experiment: a :class:`LiveDisplay` when ``stream`` (stderr by
    default) is a terminal and rich can be imported, else plain lines (:class:`Progress`).
    ``jobs`` and ``total`` let the live block show each job's directory and tags, and how many
    jobs the experiment has."""
    stream = stream or sys.stderr
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if terminal and os.environ.get("TERM") != "dumb":
        try:
            return LiveDisplay(name, stream, jobs=jobs, total=total)
        except ImportError:
            pass  # rich is missing (an installation without its dependencies): plain lines
    return Progress(name, stream=stream, live=False)


class LiveDisplay(Progress):
    """The live block (see the module doc); the same events and summary as :class:`Progress`.

    Thread-safe: the scheduler's thread and the submitting thread report, rich's thread draws.
    Raises ImportError when rich is not installed.
    """

    def __init__(self, name: str, stream: TextIO, jobs: JobLookup | None = None,
                 total: Callable[[], int] | None = None):
        from rich.console import Console

        super().__init__(name, stream=stream, live=True)
        self._jobs = jobs
        self._total = total
        self._since: dict[str, float] = {}  # identifier -> when it started (monotonic)
        self._doing: dict[str, str] = {}  # identifier -> what a running job does, not a run
        self._read: dict[str, tuple[float, list[ProgressLevel] | None]] = {}
        self._begun = time.monotonic()
        self._console = Console(file=stream, highlight=False, markup=False, emoji=False)
        self._live: Any = None
        self._starting = threading.Lock()  # the block starts once, and never after close
        self._closed = False

    # --- events: counters under the lock, never the terminal's pace -------------------------
    # (rich draws under its own lock, and drawing takes ours: printing or starting under ours
    # could deadlock, so both happen after it is released)

    def queued_job(self, identifier: str, name: str) -> None:
        """A job was claimed ahead of a free worker."""
        with self._lock:
            self.queued.add(identifier)
        self._start()

    def started_job(self, identifier: str, name: str, doing: str = "running") -> None:
        """A job's process started (``doing``: "running"), or its pull ("pulling", shown in
        its row)."""
        with self._lock:
            self.queued.discard(identifier)
            self.running[identifier] = name
            self._since[identifier] = time.monotonic()
            if doing != "running":
                self._doing[identifier] = doing
        self._start()

    def finished_job(self, identifier: str, name: str, outcome: str, detail: str = "") -> None:
        """A job ended: done, reused, waited, failed or blocked; a failure prints its line."""
        with self._lock:
            self.running.pop(identifier, None)
            self.queued.discard(identifier)
            self._since.pop(identifier, None)
            self._doing.pop(identifier, None)
            self._read.pop(identifier, None)
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self._start()
        if outcome == "failed":
            log = self._log_path(identifier)
            self._line(f"failed   {name} {identifier[:12]} {detail}".rstrip()
                       + (f"  log: {log}" if log else ""))

    def _log_path(self, identifier: str) -> Path | None:
        job = self._job(identifier)
        taskdir = getattr(job, "taskdir", None)
        return taskdir / "stderr" if isinstance(taskdir, Path) else None

    def _job(self, identifier: str) -> Any:
        try:
            return self._jobs(identifier) if self._jobs is not None else None
        except Exception:  # the display never fails the experiment
            return None

    # --- the terminal ---------------------------------------------------------------------

    def _start(self) -> None:
        """Start drawing at the first event (a dry run, which has none, draws nothing)."""
        if self._live is not None or self._closed or self._broken:
            return
        from rich.live import Live

        with self._starting:
            if self._live is not None or self._closed:
                return
            try:
                live = Live(get_renderable=self._render, console=self._console,
                            refresh_per_second=_REFRESH, transient=True,
                            redirect_stdout=True, redirect_stderr=True)
                live.start()
                self._live = live
            except (OSError, ValueError):
                self._broken = True

    def _line(self, text: str) -> None:
        """A permanent line above the block."""
        if self._broken:
            return
        try:
            from rich.text import Text

            self._console.print(Text(text), soft_wrap=True)
        except (OSError, ValueError):
            self._broken = True

    def _draw(self, force: bool = False) -> None:
        """Nothing to do: rich's thread redraws the block at its own pace."""

    def close(self) -> None:
        """Erase the block and print the summary line."""
        with self._starting:
            self._closed = True
            live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()
            except (OSError, ValueError):
                self._broken = True
        self._emit(self.summary() + "\n")

    # --- drawing (rich's thread) ----------------------------------------------------------

    def _levels(self, identifier: str, now: float) -> list[ProgressLevel] | None:
        """The job's progress, read from its directory at most every _PROGRESS_EVERY s."""
        when, levels = self._read.get(identifier, (0.0, None))
        if now - when >= _PROGRESS_EVERY:
            taskdir = getattr(self._job(identifier), "taskdir", None)
            levels = read_progress(taskdir) if taskdir is not None else None
            self._read[identifier] = (now, levels)
        return levels

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        with self._lock:
            counts = dict(self.counts)
            running = sorted(self.running.items(), key=lambda item: self._since.get(item[0], now))
            since = dict(self._since)
            queued = len(self.queued)
        finished = sum(counts.values())
        total = self._count_all(finished + len(running) + queued)
        head = Table.grid(padding=(0, 1))
        head.add_column(no_wrap=True)
        head.add_column(no_wrap=True)
        head.add_column(no_wrap=True, overflow="ellipsis")
        parts = [f"{counts.get('done', 0)} done", f"{counts.get('reused', 0)} reused"]
        if counts.get("waited"):
            parts.append(f"{counts['waited']} waited")
        parts += [f"{len(running)} running", f"{queued} queued",
                  f"{counts.get('failed', 0)} failed"]
        if counts.get("blocked"):
            parts.append(f"{counts['blocked']} blocked")
        head.add_row(Text(self.name, style="bold"),
                     ProgressBar(total=max(total, 1), completed=finished, width=20),
                     Text(f"{finished}/{total}  " + " · ".join(parts)
                          + f"  {elapsed_text(now - self._begun)}"))
        grid = Table.grid(padding=(0, 1))
        for options in ({"no_wrap": True}, {"no_wrap": True}, {"no_wrap": True, "justify": "right"},
                        {"no_wrap": True, "overflow": "ellipsis", "max_width": 30},
                        {"no_wrap": True}, {"no_wrap": True, "overflow": "ellipsis"}):
            grid.add_column(**options)
        for identifier, name in running[:SHOWN]:
            tags = getattr(self._job(identifier), "tags", None) or {}
            levels = self._levels(identifier, now)
            fraction = overall_fraction(levels)
            bar: Any = ProgressBar(total=1.0, completed=fraction, width=16) \
                if fraction is not None else Text("")
            grid.add_row(Text("  " + name.rsplit(".", 1)[-1]), Text(identifier[:12], style="dim"),
                         Text(elapsed_text(now - since.get(identifier, now))),
                         Text(" ".join(f"{k}={v}" for k, v in sorted(tags.items())),
                              style="cyan"),
                         bar, Text(self._doing.get(identifier) or progress_text(levels)))
        rows: list[Any] = [head, grid]
        if len(running) > SHOWN:
            rows.append(Text(f"  … and {len(running) - SHOWN} more running", style="dim"))
        from rich.console import Group

        return Group(*rows)

    def _count_all(self, at_least: int) -> int:
        """How many jobs the experiment has (at least those seen)."""
        try:
            return max(at_least, self._total()) if self._total is not None else at_least
        except Exception:  # the display never fails the experiment
            return at_least
