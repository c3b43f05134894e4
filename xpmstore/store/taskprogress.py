"""Progress reported from inside a task, and read back from its directory by anyone.

```python
from xpmstore import progress

progress(0.4)                                   # a fraction (a float)
progress(step, total=1000, desc="epoch 3")      # a step (an int) of a known total
for batch in progress.track(loader, desc="train"):
    ...                                         # one step per item; nested loops nest levels
```

Inside a job's process, the latest report is written to ``.xpm/progress.json`` of the task
directory, atomically (a rename), by a background thread at most every :data:`WRITE_PERIOD`
seconds: a call itself only stores a few values (no I/O, no lock).  Outside a job a call checks
its arguments and does nothing else.  Levels nest (an epoch within a run): level 0 is the
outermost; reporting a level drops the deeper ones, which belong to its previous step.

:func:`read_progress` reads the file back (from any process or host that sees the directory) and
never raises: a missing, damaged or hostile file reads as None.
"""

from __future__ import annotations

import json
import math
import operator
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypedDict, TypeVar

from ..errors import ProgressArgumentError
from ..system import jsonio
from ..system.atomic import write_atomic
from .workspace import XPM

__all__ = ["MAX_LEVELS", "PROGRESS_FILE", "WRITE_PERIOD", "ProgressLevel", "TaskProgress",
           "Tracked", "overall_fraction", "parse_progress", "progress", "progress_text",
           "read_progress"]

PROGRESS_FILE = "progress.json"
"""The file's name in a task directory's ``.xpm/``."""

WRITE_PERIOD = 0.25
"""Seconds between two writes of the file, at least."""

MAX_LEVELS = 8
"""Levels kept (0 to 7); a deeper level is reported as the deepest."""

_VERSION = 1
_MAX_DESC = 200  # characters of a description kept (written and read)
_MAX_BYTES = 64 * 1024  # a larger file is not a progress file
_MAX_INT = 2**63  # steps and totals beyond this are not counts

T = TypeVar("T")


class ProgressLevel(TypedDict):
    """One level of a task's progress, as :func:`read_progress` returns it.

    ``fraction`` is in [0, 1] (None when unknown: a step without a total); ``step`` and
    ``total`` are None for a bare fraction; ``updated`` is the wall-clock time (epoch seconds)
    of the write that recorded it.
    """

    level: int
    fraction: float | None
    step: int | None
    total: int | None
    desc: str | None
    updated: float


_Entry = tuple[float | None, int | None, int | None, str | None]  # fraction, step, total, desc


def _wrong(what: str, value: Any, call: str = "progress") -> ProgressArgumentError:
    """The error of an argument of the wrong type."""
    return ProgressArgumentError(f"{call}(): {what}, got {type(value).__qualname__} {value!r:.40}")


def _fraction(value: float) -> float | None:
    """``value`` kept within [0, 1]; None for NaN."""
    if 0.0 <= value <= 1.0:
        return value
    return None if value != value else (0.0 if value < 0.0 else 1.0)


def _other(value: Any) -> tuple[float | None, int | None]:
    """(fraction, step) of a value that is not a float or an int: a subclass of either, or a
    number of another library (numpy.int64 has ``__index__``, numpy.float32 ``__float__``)."""
    if isinstance(value, bool):
        raise _wrong("expected a fraction (float) or a step (int)", value)
    if isinstance(value, float):
        return _fraction(value), None
    if hasattr(value, "__index__"):
        return None, _count(value, "a step")
    if hasattr(value, "__float__") and not isinstance(value, (str, bytes)):
        return _fraction(float(value)), None
    raise _wrong("expected a fraction (float) or a step (int)", value)


def _count(value: Any, what: str) -> int:
    """``value`` as a non-negative int (an int, or anything with ``__index__``)."""
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise _wrong(f"{what} must be an int", value)
        value = operator.index(value)
    return value if value > 0 else 0


class TaskProgress:
    """The reporter behind :data:`progress` (one per process).  Call it from the task's main
    thread; calls from several threads are safe but their levels interleave."""

    def __init__(self) -> None:
        self._path: str | None = None  # .xpm/progress.json of the running job, else None
        self._levels: list[_Entry | None] = []
        self._depth = 0  # tracked loops open: the level of a call that names none
        self._dirty = False
        self._lock = threading.Lock()  # the slow path only: starting the thread, writing
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget_thread)

    # --- the writer side ------------------------------------------------------------------------

    def __call__(self, value: float, total: int | None = None, *, desc: str | None = None,
                 level: int | None = None) -> None:
        """Report progress: ``progress(0.4)`` (a float: a fraction, kept within [0, 1]),
        ``progress(step)`` (an int: a step of an unknown total) or ``progress(step,
        total=1000)``.  ``desc`` names what progresses; ``level`` defaults to the number of
        :meth:`track` loops open around the call (0 outside any).

        Raises ProgressArgumentError (a TypeError) for a value of another type.  Outside a job,
        does nothing else.
        """
        # The common types are checked inline: this runs in training loops (see
        # benchmarks/progress.py), and a function call costs as much as the rest.
        if total is not None:
            if type(value) is not int or type(total) is not int or value < 0 or total < 0:
                value, total = _count(value, "a step with a total"), _count(total, "total")
            step = value
            fraction = (value / total if value < total else 1.0) if total else None
        elif type(value) is float:
            fraction = value if 0.0 <= value <= 1.0 else _fraction(value)
            step = None
        elif type(value) is int:
            fraction, step = None, (value if value > 0 else 0)
        else:
            fraction, step = _other(value)
        if desc is not None and type(desc) is not str:
            raise _wrong("desc must be a str", desc)
        if level is None:
            level = self._depth
        elif type(level) is not int or level < 0:
            level = _count(level, "level")
        if self._path is None:
            return
        levels = self._levels
        if level < len(levels):
            levels[level] = (fraction, step, total, desc)
            if level + 1 < len(levels):
                del levels[level + 1:]
            self._dirty = True
            if self._thread is None:
                self._start_thread()
        else:
            self._set(level, (fraction, step, total, desc))

    def _set(self, level: int, entry: _Entry) -> None:
        if self._path is None:
            return
        levels = self._levels
        if level >= MAX_LEVELS:
            level = MAX_LEVELS - 1
        if level < len(levels):
            levels[level] = entry
            if level + 1 < len(levels):
                del levels[level + 1:]
        else:
            levels.extend([None] * (level - len(levels)))
            levels.append(entry)
        self._dirty = True
        if self._thread is None:
            self._start_thread()

    def track(self, iterable: Iterable[T], total: int | None = None,
              desc: str | None = None) -> Tracked[T]:
        """Iterate over ``iterable``, reporting one step per item (of ``total``, else of
        ``len(iterable)`` when it has one), at the next level: a ``track`` inside another's
        loop reports the inner level.  The result has a ``len()`` when the total is known, so
        ``tqdm(progress.track(loader))`` shows the same total."""
        if desc is not None and type(desc) is not str:
            raise _wrong("desc must be a str", desc, "progress.track")
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        else:
            total = _count(total, "total")
        return Tracked(self, iterable, total, desc)

    # --- the job's process ----------------------------------------------------------------------

    def begin(self, taskdir: str | os.PathLike[str]) -> None:
        """Report to ``taskdir`` from now on (the runner calls it when a job starts): the
        progress of a previous attempt is removed."""
        path = os.path.join(taskdir, XPM, PROGRESS_FILE)
        with self._lock:
            self._levels, self._depth, self._dirty = [], 0, False
            try:
                os.unlink(path)
            except OSError:
                pass
            self._path = path

    def end(self) -> None:
        """Write what is not written yet and stop reporting (the job ended)."""
        with self._lock:
            self._write_locked()
            self._path = None
            self._levels, self._depth = [], 0

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._flush_loop, daemon=True,
                                                name="xpmstore-progress")
                self._thread.start()

    def _forget_thread(self) -> None:
        self._thread = None  # a forked child has no copy of the parent's threads
        self._lock = threading.Lock()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(WRITE_PERIOD)  # a pace, not a synchronisation: writes wait for it
            if self._dirty:
                with self._lock:
                    self._write_locked()

    def _write_locked(self) -> None:
        """Write the levels now, if any changed (the caller holds the lock)."""
        path = self._path
        if path is None or not self._dirty:
            return
        self._dirty = False
        levels = list(self._levels)  # a snapshot: the task's thread goes on changing them
        document = {"version": _VERSION, "pid": os.getpid(), "updated": time.time(), "levels": [
            {"level": number, "fraction": entry[0], "step": entry[1], "total": entry[2],
             "desc": entry[3][:_MAX_DESC] if entry[3] is not None else None}
            for number, entry in enumerate(levels) if entry is not None]}
        try:
            write_atomic(path, json.dumps(document).encode(), durable=False)
        except (OSError, ValueError):
            pass  # progress is for people: a full disk or a removed directory never fails a job


class Tracked(Iterable[T]):
    """An iterable reporting its progress (what :meth:`TaskProgress.track` returns)."""

    def __init__(self, reporter: TaskProgress, iterable: Iterable[T], total: int | None,
                 desc: str | None):
        self._reporter = reporter
        self._iterable = iterable
        self.total = total
        self.desc = desc

    def __len__(self) -> int:
        if self.total is None:
            raise ProgressArgumentError("progress.track(...): the total is unknown (give total=)")
        return self.total

    def __iter__(self) -> Iterator[T]:
        reporter = self._reporter
        level = reporter._depth
        reporter._depth = level + 1
        total, desc = self.total, self.desc
        set_level = reporter._set
        try:
            set_level(level, (0.0 if total else None, 0, total, desc))
            for step, item in enumerate(self._iterable, 1):
                yield item
                set_level(level, ((step / total if step < total else 1.0) if total else None,
                                  step, total, desc))
        finally:
            reporter._depth = level


progress = TaskProgress()
"""Report the running task's progress: see :class:`TaskProgress` and the module doc."""


# --- the reader side ----------------------------------------------------------------------------


def _clean_text(value: Any) -> str | None:
    """A description as shown: printable characters only (no terminal escapes), bounded."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("desc")
    text = "".join(c if c.isprintable() else " " for c in value[:_MAX_DESC])
    return " ".join(text.split()) or None


def _number(value: Any, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not low <= value <= high:
        raise ValueError("number")
    return float(value)


def _integer(value: Any, low: int) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not low <= value < _MAX_INT:
        raise ValueError("integer")
    return value


def _read_bounded(path: str) -> bytes | None:
    """The bytes of a regular file of at most _MAX_BYTES, not through a symlink; else None."""
    return jsonio.read_small(path, _MAX_BYTES)


def parse_progress(data: bytes) -> list[ProgressLevel] | None:
    """The levels a progress file's bytes hold, outer level first; None when they are not a
    well-formed progress file (or report nothing).  Never raises."""
    try:
        document = json.loads(data)
        version = document.get("version") if isinstance(document, dict) else None
        if type(version) is not int or version != _VERSION:
            return None
        updated = _number(document.get("updated"), 0.0, 1e11)
        levels = document.get("levels")
        if updated is None or not isinstance(levels, list) or len(levels) > MAX_LEVELS:
            return None
        found: list[ProgressLevel] = []
        for entry in levels:
            if not isinstance(entry, dict):
                return None
            level = _integer(entry.get("level"), 0)
            if level is None or level >= MAX_LEVELS or (found and level <= found[-1]["level"]):
                return None
            step, total = _integer(entry.get("step"), 0), _integer(entry.get("total"), 1)
            found.append(ProgressLevel(
                level=level, fraction=_number(entry.get("fraction"), 0.0, 1.0), step=step,
                total=total, desc=_clean_text(entry.get("desc")), updated=updated))
        return found or None
    except (ValueError, TypeError, RecursionError):
        return None


def read_progress(taskdir: str | os.PathLike[str]) -> list[ProgressLevel] | None:
    """The progress the task of ``taskdir`` last reported, outer level first, or None when it
    reported nothing (or its file is missing, damaged or not a regular file).  Never raises;
    reads at most 64 KiB; safe across processes and hosts (the file is replaced atomically)."""
    try:
        path = os.path.join(os.fspath(taskdir), XPM, PROGRESS_FILE)
    except TypeError:
        return None
    data = _read_bounded(path)
    return parse_progress(data) if data is not None else None


def overall_fraction(levels: list[ProgressLevel] | None) -> float | None:
    """The share of the whole task that is done, combining the levels: step 2 of 5 epochs with
    40% of the third done is (2 + 0.4) / 5 = 0.48.  None when no level has a fraction."""
    inner: float | None = None
    for level in reversed(levels or ()):
        step, total = level["step"], level["total"]
        if step is not None and total:
            inner = min(1.0, (step + (inner or 0.0)) / total) if step < total else 1.0
        else:
            inner = level["fraction"]
    return inner


def progress_text(levels: list[ProgressLevel] | None) -> str:
    """A short text of the levels, outer first: ``epoch 3/10 · train 40% (400/1000)``; ``""``
    for None."""
    parts = []
    for level in levels or ():
        fraction, step, total = level["fraction"], level["step"], level["total"]
        if step is not None and total is not None:
            amount = f"{step}/{total}"
            if fraction is not None and total > 20:
                amount = f"{fraction:.0%} ({amount})"
        elif step is not None:
            amount = str(step)
        elif fraction is not None:
            amount = f"{fraction:.0%}"
        else:
            amount = ""
        parts.append(" ".join(p for p in (level["desc"], amount) if p))
    return " · ".join(p for p in parts if p)

