"""The environment of an index: opening its files, checking them, healing them, transactions.

One Environment per (path, pid), shared by every object of that path in the process (py-lmdb
refuses to open the same files twice in a process: LMDB's fcntl locks belong to the process); a
forked child reopens instead of using an inherited handle.  Every process opens with the same
constants.  One transaction helper doubles the map on ``MapFullError`` and adopts another
process's growth on ``MapResizedError``.

Healing: the files are checked before LMDB reads them (:mod:`xpmstore.store.indexfiles`).  Damage
found there, or an LMDB error of a read or a write that says the files are damaged, moves the
index aside (``<name>.damaged-<time>``) under the open lock, with one line on stderr, and a
fresh one is filled from the workspace (:mod:`xpmstore.store.reindex`); the operation then goes on.
A process that finds the files already replaced by another one adopts them instead (the
(device, inode) of ``data.mdb`` tells), so two processes never both move an index aside; one
that writes adopts replaced files first.  An error that says nothing against the files (a full
disk, no permission) never moves them: the process keeps its index in memory
(:class:`~xpmstore.store.memenv.MemoryEnv`), filled from the workspace, with one line on stderr.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import lmdb

from ..system.locks import path_lock
from .indexfiles import (
    IndexDamaged,
    IndexOutdated,
    allocate_lock_file,
    data_file_problem,
    dead_readers,
    file_identity,
    is_damage,
    keep_slack,
    move_aside,
    verify_problems,
)
from .memenv import MemoryEnv
from .workspace import Workspace

__all__ = ["DB_NAMES", "MAX_DBS", "MAX_READERS", "MIN_MAP_SIZE", "SCHEMA", "IndexEnvironment",
           "install", "process_lock"]

SCHEMA = b"2"
"""2: values of ``objects`` and ``digests`` carry a check (an index of schema 1 is rebuilt)."""
MAX_DBS = 8
MAX_READERS = 1024
MIN_MAP_SIZE = 1 << 30
DB_NAMES = (b"objects", b"names", b"tags", b"deps", b"pins", b"digests", b"meta", b"folders")

T = TypeVar("T")

_TRIES = 16
"""Attempts of one transaction: a heal takes one, going on in memory another; the rest are for
adopting what other threads put in place meanwhile."""

_open_lock = threading.RLock()


def process_lock() -> threading.RLock:
    """The lock of this process's table of environments (a new one after a fork)."""
    return _open_lock


class _Opened(NamedTuple):
    """One process's environment of an index: LMDB's (``files`` is then the (device, inode) of
    its data file) or a :class:`MemoryEnv` (``files`` None)."""

    pid: int
    env: Any
    dbs: dict[bytes, Any]
    files: tuple[int, int] | None


_envs: dict[str, _Opened] = {}
"""real path → the one environment of each index in this process.  After a fork the entry
names the parent's pid until the child opens its own (:meth:`IndexEnvironment._attach`)."""

_retired: list[Any] = []
"""Environments of files that were moved aside or replaced: never closed, because another
thread may still be inside a call on them (py-lmdb touches mapped pages with the GIL released;
closing would unmap them under it).  Their threads move to the new files on their next call."""

_this_pid = os.getpid()  # kept current by _after_fork: no getpid() per lookup


def _after_fork() -> None:
    global _open_lock, _this_pid
    _this_pid = os.getpid()
    _open_lock = threading.RLock()  # another thread of the parent may have held it at the fork


os.register_at_fork(after_in_child=_after_fork)


_PAGE = os.sysconf("SC_PAGE_SIZE")  # LMDB's page size: the OS page size


def _used(env: Any) -> int:
    """Bytes of the data file that LMDB's pages use (meta page only)."""
    return int((env.info()["last_pgno"] + 1) * _PAGE)


def warn(text: str) -> None:
    """One line on stderr (a closed or broken stderr loses it, never stops the caller)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"xpmstore: {text}", file=sys.stderr, flush=True)


def _lock_path(path: Path) -> Path:
    """The open lock of the index at ``path``: beside the folder, so that it outlives moving
    the folder aside."""
    return path.parent / f"{path.name}.lock"


def install(path: Path, built: Path) -> None:
    """Put the index built in the folder ``built`` at ``path`` (under the open lock), deleting
    the old files.  This process adopts it at once; another process that has the old one open
    adopts it on its next write or error."""
    path = Path(os.path.abspath(path))
    with _open_lock:
        held = _envs.pop(os.path.realpath(path), None)
        if held is not None and held.pid == _this_pid:
            _retired.append(held.env)
        old = path.with_name(f"{path.name}.replaced-{os.getpid()}")
        with path_lock(_lock_path(path)):
            try:
                os.rename(path, old)
            except FileNotFoundError:
                pass
            os.rename(built, path)
    shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.unlink(_lock_path(built))


class IndexEnvironment:
    """This process's environment of the index at ``path``: opened, checked and healed.

    ``workspace`` is what a heal refills the index from (an index opened by path alone starts
    empty after a heal).  Subclasses fill a fresh environment through :meth:`refill`.  With
    ``fallback=False`` an index that cannot use its files raises (OSError or lmdb.Error)
    instead of going on in memory.
    """

    def __init__(self, path: Path, map_size: int | None = None,
                 workspace: Workspace | None = None, fallback: bool = True):
        self.path = Path(os.path.abspath(path))
        self._key = os.path.realpath(self.path)  # one environment per files, whatever the path
        self._requested_map = map_size
        self._fallback = fallback
        self.workspace = workspace
        self.env: Any = None
        self.dbs: dict[bytes, Any] = {}
        self._pid = 0
        self._held: _Opened | None = None
        self._filling = False
        self._attach()

    def _map_size(self) -> int:
        if self._requested_map is not None:
            return self._requested_map
        try:
            size = os.stat(self.path / "data.mdb").st_size
        except FileNotFoundError:
            size = 0
        return max(2 * size, MIN_MAP_SIZE)

    def _use(self, held: _Opened) -> None:
        self._pid, self.env, self.dbs, self._held = held.pid, held.env, held.dbs, held

    def _attach(self) -> None:
        """Use this process's environment of the path, opening it if there is none yet.

        Called at construction and whenever the object is used in another process than the one
        that attached it (a forked child), after :meth:`close`, or after another object of the
        path healed it: a child closes the inherited handle (it never used it; the parent's
        stays open) and opens its own.
        """
        with _open_lock:
            held = _envs.get(self._key)
            if held is None or held.pid != os.getpid():
                if held is not None:
                    del _envs[self._key]
                    with contextlib.suppress(lmdb.Error):
                        held.env.close()  # inherited across fork: py-lmdb refuses a second open
                self._open()
            else:
                self._use(held)

    def _ensure(self) -> None:
        if self._pid != _this_pid or _envs.get(self._key) is not self._held:
            self._attach()

    def close(self) -> None:
        """Close this process's environment of the index (every Index object of the path in
        this process reopens it on its next use)."""
        with _open_lock:
            held = _envs.get(self._key)
            if held is not None and held.pid == os.getpid():
                del _envs[self._key]
                held.env.close()

    def _register(self, env: Any, dbs: dict[bytes, Any], files: tuple[int, int] | None) -> None:
        held = _Opened(_this_pid, env, dbs, files)
        _envs[self._key] = held
        self._use(held)

    def _forget_env(self) -> None:
        """Forget this process's environment of the path, to open other files (or none) in its
        place; it is retired, not closed (see ``_retired``).  Caller holds _open_lock."""
        held = _envs.pop(self._key, None)
        if held is not None and held.pid == _this_pid:
            _retired.append(held.env)
        self.env = None

    def _open(self, damage: BaseException | None = None,
              files: tuple[int, int] | None = None) -> None:
        """Open the files (checked first), moving damaged ones aside and refilling the fresh
        ones.  With ``damage`` (what a transaction raised on the files ``files``), those files
        are moved aside first, unless another process already replaced them.  A failure that
        says nothing against the files (full disk, permissions) leaves this process with an
        index in memory.  Caller holds _open_lock."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with path_lock(_lock_path(self.path)):
                fresh = damage is not None and file_identity(self.path) == files
                if fresh:
                    assert damage is not None
                    self._move_aside(damage)
                try:
                    env, dbs = self._open_files()
                except (lmdb.Error, IndexDamaged) as error:
                    if not is_damage(error):
                        raise
                    self._move_aside(error)
                    env, dbs = self._open_files()
                    fresh = True
                self._register(env, dbs, file_identity(self.path))
                if fresh:
                    self._fill()
        except (OSError, lmdb.Error, IndexDamaged) as error:
            self._in_memory(error)

    def _open_files(self) -> tuple[Any, dict[bytes, Any]]:
        """Open the LMDB files after checking them (IndexDamaged when they are damaged).

        ``lock.mdb`` is opened here only before LMDB opens it: closing any descriptor of it
        afterwards would drop the fcntl locks LMDB holds on it for this process (POSIX), and
        another process would then reset the lock table under this one.
        """
        allocate_lock_file(self.path, MAX_READERS)
        died_reading = dead_readers(self.path)  # before LMDB resets its reader table
        env = lmdb.open(
            str(self.path), map_size=self._map_size(), max_dbs=MAX_DBS,
            max_readers=MAX_READERS, subdir=True, readahead=False,
        )
        try:
            with env.begin():  # before any page is read; a walk, if any, under a reader
                problem = data_file_problem(env, self.path)
            if problem is not None:
                raise IndexDamaged(problem)
            if died_reading:  # killed, or crashed on a bad page (LMDB aborts on some): walk
                with env.begin():  # the file without LMDB, its pages held by this reader
                    problems = verify_problems(self.path)
                if problems:
                    raise IndexDamaged(f"process {died_reading[0]} died reading it, and"
                                       f" {problems[0]}")
            env.reader_check()  # free the slots of dead processes
            dbs = self._open_dbs(env)
            keep_slack(self.path, _used(env))
            return env, dbs
        except BaseException:
            env.close()  # half open: close it, or the next try is refused
            raise

    @staticmethod
    def _open_dbs(env: Any) -> dict[bytes, Any]:
        # A write transaction even when every database exists: LMDB refuses writes through
        # database handles opened in a read-only transaction.
        for _ in range(64):
            try:
                txn = env.begin(write=True)
            except lmdb.MapResizedError:  # another process grew the map since we opened
                env.set_mapsize(0)
                continue
            with txn:
                dbs = {name: env.open_db(name, txn=txn) for name in DB_NAMES}
                schema = txn.get(b"schema", db=dbs[b"meta"])
                if schema is None:
                    txn.put(b"schema", SCHEMA, db=dbs[b"meta"])
                elif schema != SCHEMA:
                    raise IndexOutdated(f"schema {schema.decode(errors='replace')}, this"
                                        f" xpmstore writes {SCHEMA.decode()}")
            return dbs
        raise RuntimeError("index map kept changing size")  # pragma: no cover

    def _move_aside(self, error: BaseException) -> None:
        """Move the damaged files aside (caller holds the open lock and closed them)."""
        aside = move_aside(self.path)
        if isinstance(error, IndexOutdated):  # an upgrade, not damage: say so
            warn(f"the index at {self.path} was written by another version of xpmstore"
                 f" ({error}); rebuilt it from the workspace (the old one is kept as"
                 f" {aside.name})")
            return
        warn(f"the index at {self.path} is damaged ({error}); moved it to {aside.name} and"
              " rebuilt it from the workspace")

    def _fill(self) -> None:
        """Refill a fresh environment from the workspace (nothing without one)."""
        if self.workspace is None:
            return
        self._filling = True
        try:
            self.refill()
        finally:
            self._filling = False

    def refill(self) -> None:
        """Fill the index from ``self.workspace`` (what a subclass knows how to do)."""
        raise NotImplementedError

    def _in_memory(self, error: BaseException) -> None:
        """Go on with an index in memory filled from the workspace (caller holds _open_lock);
        without fallback, raise ``error``."""
        self._forget_env()
        if not self._fallback:
            raise error
        env = MemoryEnv()
        self._register(env, {name: env.open_db(name) for name in DB_NAMES}, None)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        warn(f"cannot use the index at {self.path} ({reason}); this process keeps it in"
              " memory and answers from the workspace's directories")
        self._fill()

    def _recover(self, error: Exception, held: _Opened, healed: bool) -> bool:
        """Make the index usable after ``error`` from a transaction on ``held``: adopt what
        another thread or process put in place meanwhile (returns False), else move damaged
        files aside and refill, else, or when this call ``healed`` once already, go on in
        memory (returns True).  A TypeError is a wrong database handle after another thread
        changed the environment mid-call; otherwise it is raised."""
        if self._filling:
            raise error  # the heal that is filling the index decides (see _open)
        with _open_lock:
            if _envs.get(self._key) is not held:  # closed, or healed by another thread: adopt
                self._attach()
                return False
            if isinstance(error, TypeError):
                raise error
            if healed or not is_damage(error) or held.files is None:
                self._in_memory(error)
                return True
            self._forget_env()
            self._open(damage=error, files=held.files)
            return True

    def check_files(self) -> list[str]:
        """Walk every page of the index's files (:func:`~xpmstore.store.indexfiles.verify_problems`:
        O(size), safe on any bytes); damaged files are moved aside and refilled as in a heal.
        Returns the problems found ([] when sound, or when the index is in memory)."""
        self._ensure()
        held = self._held
        if held is None or held.files is None:
            return []
        try:
            with self.env.begin():  # a reader: no page of this snapshot is reused meanwhile
                problems = verify_problems(self.path)
        except lmdb.Error as error:
            problems = [str(error)]
        if problems:
            with _open_lock:
                self._forget_env()
                self._open(damage=IndexDamaged(problems[0]), files=held.files)
        return problems

    def reader_check(self) -> int:
        """Clear reader slots of dead processes; returns how many were cleared."""
        self._ensure()
        held = self._held
        assert held is not None
        try:
            return int(held.env.reader_check())
        except lmdb.Error as error:
            self._recover(error, held, False)
            return 0

    # --- transactions -----------------------------------------------------------------------

    def _adopt_replaced_files(self) -> None:
        """Before a write: adopt the files another process put in place (a heal, a rebuild),
        so that no write goes to files moved aside (one ``stat``)."""
        held = self._held
        if held is not None and held.files is not None and file_identity(self.path) != held.files:
            with _open_lock:
                if _envs.get(self._key) is held:
                    self._forget_env()
                self._attach()

    def read(self, body: Callable[[Any], T]) -> T:
        """Run ``body(txn)`` in a read transaction (adopting another process's map growth,
        healing the index on an LMDB error: ``body`` may then run again)."""
        healed = False
        for _ in range(_TRIES):
            self._ensure()
            held = self._held
            assert held is not None
            try:
                return self._read_once(held.env, body)
            except (lmdb.Error, TypeError) as error:
                healed = self._recover(error, held, healed) or healed
        raise RuntimeError("the index kept changing under one read")  # pragma: no cover

    @staticmethod
    def _read_once(env: Any, body: Callable[[Any], T]) -> T:
        for _ in range(8):
            try:
                with env.begin(buffers=False) as txn:
                    return body(txn)
            except lmdb.MapResizedError:
                env.set_mapsize(0)
        raise RuntimeError("index map kept changing size")  # pragma: no cover

    def write(self, body: Callable[[Any], T]) -> T:
        """Run ``body(txn)`` in one durable write transaction, growing the map as needed and
        healing the index on an LMDB error.

        ``body`` may run more than once (after a map resize or a heal): it must only touch the
        txn.
        """
        healed = False
        for _ in range(_TRIES):
            self._ensure()
            self._adopt_replaced_files()
            held = self._held
            assert held is not None
            try:
                result = self._write_once(held.env, body)
            except (lmdb.Error, TypeError) as error:
                healed = self._recover(error, held, healed) or healed
                continue
            if held.files is not None:
                keep_slack(self.path, _used(held.env))
            return result
        raise RuntimeError("the index kept changing under one write")  # pragma: no cover

    @staticmethod
    def _write_once(env: Any, body: Callable[[Any], T]) -> T:
        for _ in range(64):
            try:
                with env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapResizedError:
                env.set_mapsize(0)
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)
        raise RuntimeError("index write kept failing to fit")  # pragma: no cover
