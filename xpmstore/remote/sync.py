"""The scheduler's side of the remote: presence in bulk, pulls instead of runs, pushes in the
background (docs/remote.md).

An experiment holds one :class:`RemoteSync`, which keeps what the remote answered about presence
for the whole run (:class:`~xpmstore.remote.presence.PresenceMemo`): each planning batch asks
only about identifiers the run has not learned yet, the remote's size is estimated once and a
2-hex prefix is listed at most once.  It never fails the experiment: an unreachable
remote is noticed once (one warning line; :mod:`.reach` shares the verdict with this process's
``@cache`` misses), after which the experiment goes on locally and launches its jobs with
``XPMSTORE_REMOTE_DOWN=1`` (:attr:`RemoteSync.down`), so that they do not ask it either; a pull
that fails verification prints one warning line naming the object and the job runs locally
(its push then repairs the remote's copy: :func:`xpmstore.remote.upload.push_auto`).  Pulls and
pushes run on their own thread pools.  With ``push = "auto"``, a job that finishes is pushed,
then the ``@cache`` entries its process created and did not push itself
(:func:`xpmstore.remote.cachepush.drain`); :meth:`RemoteSync.close` waits for every pending push
(the experiment's end), those of ``@cache`` entries created in this process included — unless
the run was interrupted, or a Ctrl-C comes while it waits: the transfers in flight then stop
within a chunk (:mod:`.interrupt`).  Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..errors import (
    RemoteError,
    RemoteUnavailableError,
    TransferInterrupted,
    XpmstoreError,
)
from ..store.workspace import Workspace
from . import cachepush, reach
from .interrupt import Interrupt
from .layout import Remote, open_remote
from .presence import PresenceMemo
from .transfer import pull_instead
from .upload import push_auto

__all__ = ["RemoteSync"]

_PULL_THREADS = 4
_PUSH_THREADS = 2

_warn = reach.warn


class RemoteSync:
    """The remote of one experiment (see the module doc); build it with :meth:`for_workspace`."""

    def __init__(self, workspace: Workspace, remote: Remote):
        self.workspace = workspace
        self.remote = remote
        reach.forget(remote)  # a fresh look for each experiment
        self._lock = threading.Lock()
        self._pulls: ThreadPoolExecutor | None = None
        self._pushes: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._presence = PresenceMemo()  # what this run learned: asked once per run
        self._interrupt = Interrupt()  # set when the run is interrupted: transfers stop
        self._stopped = 0  # pushes stopped in flight by the interrupt

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> RemoteSync | None:
        """The sync of ``workspace``'s configured remote, or None when none is configured (or
        its settings are wrong: one warning line)."""
        try:
            remote = open_remote(workspace)
        except XpmstoreError as exc:
            _warn(f"remote ignored: {exc}")
            return None
        return None if remote is None else cls(workspace, remote)

    @property
    def down(self) -> bool:
        """Whether the remote was found unreachable (by this experiment, a ``@cache`` miss of
        this process, or ``$XPMSTORE_REMOTE_DOWN``): its jobs are then launched with
        ``XPMSTORE_REMOTE_DOWN=1``."""
        return reach.is_down(self.remote)

    @property
    def pulls(self) -> bool:
        """Whether jobs absent locally are looked up in the remote (``pull = "auto"``)."""
        return self.remote.settings.pull == "auto" and not self.down

    @property
    def pushes(self) -> bool:
        """Whether finished jobs are pushed (``push = "auto"``)."""
        return self.remote.settings.push == "auto" and not self.down

    def unreachable(self, exc: Exception) -> None:
        """Note that the remote cannot be reached (warned once; nothing more is asked of it)."""
        if reach.mark_down(self.remote):
            _warn(f"remote {reach.down_reason(exc)}, going on without it: {exc}")

    def present(self, identifiers: Iterable[str]) -> set[str]:
        """Which of ``identifiers`` the remote holds (empty when pulls are off or the remote is
        down), asking only about those this run has not learned yet (an object pushed after
        the run asked about it is missed until the next run).  Never raises for the remote's
        sake."""
        wanted = list(identifiers)
        if not wanted or not self.pulls:
            return set()
        try:
            return self.remote.present(wanted, self._presence)
        except RemoteUnavailableError as exc:
            self.unreachable(exc)
        except RemoteError as exc:
            _warn(f"remote {self.remote.url}: {exc}; going on without it")
        return set()

    def start_pull(self, identifier: str, on_done: Callable[[str, bool], None]) -> None:
        """Pull ``identifier`` on a thread; ``on_done(identifier, ok)`` is called from that
        thread (ok False: run the job locally)."""
        with self._lock:
            if self._pulls is None:
                self._pulls = ThreadPoolExecutor(_PULL_THREADS, "xpmstore-pull")
            pool = self._pulls
        pool.submit(self._pull, identifier, on_done)

    def _pull(self, identifier: str, on_done: Callable[[str, bool], None]) -> None:
        ok = False
        try:  # absent (gone since the plan), rejected or failed: run it here
            ok = not self.down and pull_instead(self.workspace, identifier, self.remote, "",
                                                "running", self.unreachable,
                                                interrupt=self._interrupt)
        except Exception as exc:
            _warn(f"pull of {identifier[:12]} failed ({exc}); running it locally")
        finally:
            on_done(identifier, ok)

    def push_later(self, directory: Path) -> None:
        """Push the done object at ``directory`` in the background (``push = "auto"``), then
        the ``@cache`` entries left in the outbox (those its job created, among others).  An
        object whose remote copy this run's pull refused is verified and repaired instead."""
        if not self.pushes:
            return
        with self._lock:
            if self._pushes is None:
                self._pushes = ThreadPoolExecutor(_PUSH_THREADS, "xpmstore-push")
            self._pending.append(self._pushes.submit(self._push, directory))

    def _push(self, directory: Path) -> None:
        if self.down:
            return
        try:
            push_auto(self.remote, directory, interrupt=self._interrupt)
        except RemoteUnavailableError as exc:
            self.unreachable(exc)
            return
        except TransferInterrupted:
            with self._lock:
                self._stopped += 1
            return
        except Exception as exc:
            _warn(f"push of {directory} failed: {exc}")
        cachepush.drain(self.workspace, self.remote)

    def close(self, interrupted: bool = False) -> None:
        """Wait for the pending pulls and pushes (``@cache`` entries of this process and of
        its jobs included), then release the threads.

        ``interrupted`` (the run was), or a Ctrl-C while it waits (KeyboardInterrupt, raised
        again once they stopped): the transfers in flight stop within a chunk, publishing
        nothing, those not started are dropped, and one warning line says how many pushes were
        not done (``xpmstore push --all`` sends them)."""
        if interrupted:
            self._interrupt.set()
        try:
            self._shutdown()
        except KeyboardInterrupt:
            self._interrupt.set()
            self._shutdown()
            self._say_stopped()
            raise
        self._pulls = self._pushes = None
        if self._interrupt.is_set():
            self._say_stopped()
        elif self.pushes:
            cachepush.drain(self.workspace, self.remote)
        cachepush.wait()

    def _shutdown(self) -> None:
        """Wait for the pools' calls (interrupted: only for those in flight)."""
        for pool in (self._pulls, self._pushes):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=self._interrupt.is_set())

    def _say_stopped(self) -> None:
        """One warning line when the interrupt left pushes undone."""
        with self._lock:
            undone = self._stopped + sum(1 for f in self._pending if f.cancelled())
        if undone:
            _warn(f"{undone} push(es) not done (the run was interrupted); `xpmstore push"
                  " --all` sends them")
