"""The experiment this process submits to: a slot that core owns and the scheduler fills.

``Task.submit`` and the Store's lookups reach the active experiment, which lives in a higher
layer (:mod:`xpmstore.scheduler.experiment`) that core and the store never import: the
experiment puts itself here when its ``with`` block starts and takes itself out when it ends.
One per process, shared by its threads (the submitting thread and the scheduler's).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["Submitter", "activate", "active"]


class Submitter(Protocol):
    """What core and the store ask of the active experiment."""

    name: str

    def submit(self, task: Any, launcher: Any = None, hooks: Iterable[Any] = ()) -> Any:
        """Submit ``task``; returns what its ``task_outputs`` returns."""
        ...

    def note_root(self, identifier: str) -> None:
        """Record that the run uses ``identifier`` (a lookup): a gc root while the run lives."""
        ...


_active: Submitter | None = None


def active() -> Submitter | None:
    """The experiment whose ``with`` block runs in this process, if any."""
    return _active


def activate(submitter: Submitter | None) -> Submitter | None:
    """Make ``submitter`` the active experiment (None: no experiment); returns the previous."""
    global _active
    previous, _active = _active, submitter
    return previous
