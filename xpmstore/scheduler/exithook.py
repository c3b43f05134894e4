"""A script whose experiment failed or was interrupted ends with one line, not a traceback.

The experiment marks the exceptions it raises (``ExperimentFailed``) or re-raises once it has
stopped its jobs (``KeyboardInterrupt``) with :func:`mark`; :func:`install`, called when an
experiment is entered, wraps ``sys.excepthook`` once, so that a marked exception nobody caught
prints ``xpmstore: <its line>`` on stderr.  Everything else goes to the hook that was there.
The exit status stays Python's: 1, or, for a KeyboardInterrupt, the process ends by SIGINT
(CPython decides that after the hook).  ``XPMSTORE_TRACEBACK=1`` shows the traceback again;
an interactive session and a hook another library installed first are left alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import TracebackType

__all__ = ["TRACEBACK_VARIABLE", "install", "line_of", "mark"]

TRACEBACK_VARIABLE = "XPMSTORE_TRACEBACK"
"""Set to anything but ``""`` or ``"0"``: marked exceptions show their traceback too."""

_LINE = "_xpmstore_exit_line"  # the attribute that marks an exception, holding its line

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


def mark(error: BaseException, line: str) -> None:
    """Make ``error``, if nobody catches it, end the script with ``xpmstore: line`` (one line;
    the exception is otherwise unchanged)."""
    setattr(error, _LINE, line)


def line_of(error: BaseException) -> str | None:
    """The line ``error`` was marked with, if it was."""
    line = getattr(error, _LINE, None)
    return line if isinstance(line, str) else None


def install() -> None:
    """Wrap ``sys.excepthook`` unless it is already wrapped, another library replaced it
    (IPython, rich…: they are in charge), or the session is interactive.  Not thread-safe:
    call it from the main thread, as an experiment is entered."""
    if sys.excepthook is sys.__excepthook__ and not _interactive():
        sys.excepthook = _one_line_hook(sys.excepthook)


def _one_line_hook(previous: ExceptHook) -> ExceptHook:
    def hook(kind: type[BaseException], error: BaseException,
             trace: TracebackType | None) -> None:
        line = line_of(error)
        if (line is None or _interactive()
                or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0")):
            previous(kind, error, trace)
            return
        try:
            sys.stderr.write(f"xpmstore: {line}\n")
            sys.stderr.flush()
        except Exception:  # no stderr to write to: Python's own hook copes
            previous(kind, error, trace)

    return hook


def _interactive() -> bool:
    """Whether an interactive prompt is running or will run (``python -i``): the traceback
    stays, as Python shows it there."""
    return bool(sys.flags.interactive) or hasattr(sys, "ps1")
