"""The LMDB index: a per-host accelerator of the workspace (DESIGN §6).

The index is never the only copy of anything: the workspace's directories are the truth, and
damage costs a rebuild from them, never an outage.  Databases:

``objects``   raw identifier → checked record (:mod:`xpmstore.indexrecords`: JSON of kind,
              name, identity, path, created, last_access, size, tags, dependencies, and for a
              cache entry config/method/file)
``names``     identity name NUL raw id → ""
``tags``      name NUL json(value) NUL raw id → ""
              (a prefix too long for an LMDB key is replaced by 0xFF blake3(prefix) NUL)
``deps``      raw dependency id + raw dependent id → ""
``pins``      raw id → ""  (gc roots set by hand: a mirror of ``.xpmstore/pins/``, which
              :mod:`xpmstore.pins` keeps as the truth so that a rebuilt index keeps them)
``digests``   (dev, inode, size, mtime_ns, ctime_ns) → checked 33-byte input digest
``meta``      schema version

Healing: the files are checked before LMDB reads them (:mod:`xpmstore.indexfiles`).  Damage
found there, or an LMDB error of a read or a write that says the files are damaged, moves the
index aside (``<name>.damaged-<time>``) under the open lock, with one line on stderr, and a
fresh one is filled from the workspace (:mod:`xpmstore.reindex`); the operation then goes on.
A process that finds the files already replaced by another one adopts them instead, so two
processes never both move an index aside.  An error that says nothing against the files (a full
disk, no permission) never moves them: the process keeps its index in memory
(:class:`~xpmstore.memenv.MemoryEnv`), filled from the workspace, with one line on stderr.  A
record that fails its check is dropped and recomputed from its directory.

Concurrency: one Environment per (path, pid), shared by every Index object of that path in the
process; a forked child reopens instead of using an inherited handle (``os.register_at_fork``
forgets the cache, and an inherited Index object reopens on its first use in the child).  Every
process opens with the same constants.  One transaction helper doubles the map on
``MapFullError`` and adopts another process's growth on ``MapResizedError``.  Writers are
serialised by LMDB; readers never block.  Not safe on network file systems:
:func:`index_location` keeps it on a local disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import lmdb
from blake3 import blake3

from .identifier import check_identifier
from .indexfiles import (
    IndexDamaged,
    allocate_lock_file,
    data_file_problem,
    dead_readers,
    file_identity,
    is_damage,
    move_aside,
    verify_problems,
)
from .indexrecords import (
    decode_record,
    encode_record,
    name_prefix,
    raw_identifier,
    seal,
    secondary_keys,
    summary,
    tag_prefix,
    unseal,
    without_identity,
)
from .locks import path_lock
from .memenv import MemoryEnv
from .workspace import Workspace, is_network_fs, user_settings

__all__ = ["MAX_DBS", "MAX_READERS", "MIN_MAP_SIZE", "SCHEMA", "Index", "index_location",
           "install", "without_identity"]

SCHEMA = b"2"
"""2: values of ``objects`` and ``digests`` carry a check (an index of schema 1 is rebuilt)."""
MAX_DBS = 8
MAX_READERS = 1024
MIN_MAP_SIZE = 1 << 30

_DB_NAMES = (b"objects", b"names", b"tags", b"deps", b"pins", b"digests", b"meta")
_digest_key = struct.Struct(">QQQqq").pack
_summary = summary  # the name listing.py imports

T = TypeVar("T")

_open: dict[str, tuple[int, Index]] = {}
_abandoned: list[Any] = []  # Index objects inherited across fork: kept so they are never freed
_open_lock = threading.RLock()


class _Opened(NamedTuple):
    """One process's environment of an index: LMDB's (``files`` is then the (device, inode) of
    its data file) or a :class:`MemoryEnv` (``files`` None)."""

    pid: int
    env: Any
    dbs: dict[bytes, Any]
    files: tuple[int, int] | None


_envs: dict[str, _Opened] = {}
"""real path → the one environment of each index in this process.  py-lmdb refuses to open the
same files twice in one process (LMDB's fcntl locks belong to the process), so every Index of a
path shares it.  After a fork the entry names the parent's pid until the child opens its own
(:meth:`Index._attach`)."""


_this_pid = os.getpid()  # kept current by _forget_after_fork: no getpid() per lookup


def _forget_after_fork() -> None:
    global _open_lock, _this_pid
    _this_pid = os.getpid()
    _open_lock = threading.RLock()  # another thread of the parent may have held it at the fork
    _abandoned.extend(_open.values())
    _open.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _warn(text: str) -> None:
    """One line on stderr (a closed or broken stderr loses it, never stops the caller)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"xpmstore: {text}", file=sys.stderr, flush=True)


def _lock_path(path: Path) -> Path:
    """The open lock of the index at ``path``: beside the folder, so that it outlives moving
    the folder aside."""
    return path.parent / f"{path.name}.lock"


def index_location(workspace: Workspace) -> Path:
    """Where the index of ``workspace`` lives (DESIGN §6).

    ``index_path`` in the workspace's settings (relative to the workspace) or in the user's
    settings; else
    ``$XPMSTORE_INDEX_DIR/<host>-<hash>``; else ``WORKSPACE/.xpmstore/index`` on a local file
    system; else ``/var/tmp/xpmstore-$UID/<host>-<blake3(realpath)[:16]>`` (LMDB is unsafe on
    network file systems, and no two hosts may share one index).
    """
    configured = workspace.settings.get("index_path")
    if configured:  # relative to the workspace, never to the cwd of whichever process reads it
        return workspace.root / Path(str(configured)).expanduser()
    configured = user_settings().get("index_path")
    if configured:
        return Path(str(configured)).expanduser()
    digest = blake3(os.path.realpath(workspace.root).encode()).hexdigest()[:16]
    key = f"{socket.gethostname()}-{digest}"
    env = os.environ.get("XPMSTORE_INDEX_DIR")
    if env:
        return Path(env).expanduser() / key
    network, _ = is_network_fs(workspace.root if workspace.root.exists() else workspace.root.parent)
    if not network:
        return workspace.private / "index"
    return Path(f"/var/tmp/xpmstore-{os.getuid()}") / key



def install(path: Path, built: Path) -> None:
    """Put the index built in the folder ``built`` at ``path`` (under the open lock), deleting
    the old files.  This process adopts it at once; another process that has the old one open
    adopts it on its next write or error."""
    path = Path(os.path.abspath(path))
    with _open_lock:
        held = _envs.pop(os.path.realpath(path), None)
        if held is not None and held.pid == _this_pid:
            held.env.close()
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


class Index:
    """An open LMDB index.  Use :meth:`for_workspace` or :meth:`open` (cached per process).

    ``workspace`` (set by :meth:`for_workspace`) is what a heal refills the index from; an
    index opened by path alone starts empty after a heal.
    """

    def __init__(self, path: Path, map_size: int | None = None):
        self.path = Path(os.path.abspath(path))
        self._key = os.path.realpath(self.path)  # one environment per files, whatever the path
        self._requested_map = map_size
        self.workspace: Workspace | None = None
        self.env: Any = None
        self.dbs: dict[bytes, Any] = {}
        self._pid = 0
        self._held: _Opened | None = None
        self._filling = False
        self._pending_digests: list[tuple[bytes, bytes]] = []
        self._attach()

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, map_size: int | None = None) -> Index:
        """The index at ``path`` for this process (opened once per process, reopened after fork).
        """
        key = os.path.realpath(path)  # a symlinked workspace names the same files
        with _open_lock:
            found = _open.get(key)
            if found is not None and found[0] == os.getpid():
                return found[1]
            index = cls(Path(os.path.abspath(path)), map_size)
            _open[key] = (os.getpid(), index)
            return index

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> Index:
        """The index of ``workspace`` (see :func:`index_location`); it also becomes the
        persistent memo of input digests of this process."""
        from . import inputs

        index = cls.open(index_location(workspace))
        if index.workspace is None:
            index.workspace = workspace
        inputs.set_persistent_memo(index)
        return index

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
            with contextlib.suppress(lmdb.Error):
                self.flush_digests()
            held = _envs.get(self._key)
            if held is not None and held.pid == os.getpid():
                del _envs[self._key]
                held.env.close()
            found = _open.get(self._key)
            if found is not None and found[1] is self:
                del _open[self._key]

    def _register(self, env: Any, dbs: dict[bytes, Any], files: tuple[int, int] | None) -> None:
        held = _Opened(_this_pid, env, dbs, files)
        _envs[self._key] = held
        self._use(held)

    def _forget_env(self) -> None:
        """Close and forget this process's environment of the path (caller holds _open_lock)."""
        held = _envs.pop(self._key, None)
        if held is not None and held.pid == _this_pid:
            with contextlib.suppress(lmdb.Error):
                held.env.close()
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
        """Open the LMDB files after checking them (IndexDamaged when they are damaged)."""
        allocate_lock_file(self.path, MAX_READERS)
        died_reading = dead_readers(self.path)  # before LMDB resets its reader table
        env = lmdb.open(
            str(self.path), map_size=self._map_size(), max_dbs=MAX_DBS,
            max_readers=MAX_READERS, subdir=True, readahead=False,
        )
        try:
            problem = data_file_problem(env, self.path)  # before any page is read
            if problem is not None:
                raise IndexDamaged(problem)
            allocate_lock_file(self.path, MAX_READERS)  # the tail LMDB may have added
            if died_reading:  # killed, or crashed on a bad page (LMDB aborts on some): walk
                with env.begin():  # the file without LMDB, its pages held by this reader
                    problems = verify_problems(self.path)
                if problems:
                    raise IndexDamaged(f"process {died_reading[0]} died reading it, and"
                                       f" {problems[0]}")
            env.reader_check()  # free the slots of dead processes
            return env, self._open_dbs(env)
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
                dbs = {name: env.open_db(name, txn=txn) for name in _DB_NAMES}
                schema = txn.get(b"schema", db=dbs[b"meta"])
                if schema is None:
                    txn.put(b"schema", SCHEMA, db=dbs[b"meta"])
                elif schema != SCHEMA:
                    raise IndexDamaged(f"index schema {schema!r}, expected {SCHEMA!r}")
            return dbs
        raise RuntimeError("index map kept changing size")  # pragma: no cover

    def _move_aside(self, error: BaseException) -> None:
        """Move the damaged files aside (caller holds the open lock and closed them)."""
        aside = move_aside(self.path)
        _warn(f"the index at {self.path} is damaged ({error}); moved it to {aside.name} and"
              " rebuilt it from the workspace")

    def _fill(self) -> None:
        """Refill a fresh environment from the workspace (nothing without one)."""
        if self.workspace is None:
            return
        from .reindex import fill

        self._filling = True
        try:
            fill(self, self.workspace)
        finally:
            self._filling = False

    def _in_memory(self, error: BaseException) -> None:
        """Go on with an index in memory filled from the workspace (caller holds _open_lock)."""
        self._forget_env()
        env = MemoryEnv()
        self._register(env, {name: env.open_db(name) for name in _DB_NAMES}, None)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        _warn(f"cannot use the index at {self.path} ({reason}); this process keeps it in"
              " memory and answers from the workspace's directories")
        self._fill()

    def _recover(self, error: lmdb.Error, attempt: int) -> None:
        """Make the index usable after ``error`` from one of its transactions: adopt what
        another thread or process put in place, else move damaged files aside and refill,
        else (or on a second error) go on in memory."""
        if self._filling:
            raise error  # the heal that is filling the index decides (see _open)
        with _open_lock:
            current = _envs.get(self._key)
            if current is not self._held:  # closed, or healed by another thread: adopt
                self._attach()
                return
            if attempt > 0 or not is_damage(error) or current is None \
                    or current.files is None:
                self._in_memory(error)
                return
            self._forget_env()
            self._open(damage=error, files=current.files)

    def reader_check(self) -> int:
        """Clear reader slots of dead processes; returns how many were cleared."""
        self._ensure()
        try:
            return int(self.env.reader_check())
        except lmdb.Error as error:
            self._recover(error, 0)
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
        for attempt in range(3):
            self._ensure()
            try:
                return self._read_once(body)
            except lmdb.Error as error:
                self._recover(error, attempt)
        return self._read_once(body)  # in memory by now

    def _read_once(self, body: Callable[[Any], T]) -> T:
        for _ in range(8):
            try:
                with self.env.begin(buffers=False) as txn:
                    return body(txn)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
        raise RuntimeError("index map kept changing size")  # pragma: no cover

    def write(self, body: Callable[[Any], T]) -> T:
        """Run ``body(txn)`` in one durable write transaction, growing the map as needed and
        healing the index on an LMDB error.

        ``body`` may run more than once (after a map resize or a heal): it must only touch the
        txn.
        """
        for attempt in range(3):
            self._ensure()
            self._adopt_replaced_files()
            try:
                return self._write_once(body)
            except lmdb.Error as error:
                self._recover(error, attempt)
        return self._write_once(body)  # in memory by now

    def _write_once(self, body: Callable[[Any], T]) -> T:
        for _ in range(64):
            try:
                with self.env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        raise RuntimeError("index write kept failing to fit")  # pragma: no cover

    def _read_records(self, body: Callable[[Any, list[bytes]], T]) -> T:
        """``body(txn, damaged)`` in a read transaction, where ``body`` adds to ``damaged``
        the keys of the records that fail their check; those are then mended and ``body`` runs
        once more."""
        damaged: list[bytes] = []

        def first(txn: Any) -> T:
            damaged.clear()  # the body may run again after a map resize or a heal
            return body(txn, damaged)

        result = self.read(first)
        if damaged:
            self._mend(damaged)
            result = self.read(lambda txn: body(txn, []))
        return result

    def _mend(self, damaged: list[bytes]) -> dict[bytes, dict[str, Any]]:
        """Drop the records of ``damaged`` (keys whose value fails its check) and record them
        again from their directories; returns the records recomputed."""
        from .reindex import record_of

        recomputed: dict[bytes, dict[str, Any]] = {}
        if self.workspace is not None:
            for raw in damaged:
                record = record_of(self.workspace, raw.hex())
                if record is not None:
                    recomputed[raw] = record

        def body(txn: Any) -> None:
            objects = self.dbs[b"objects"]
            for raw in damaged:
                value = txn.get(raw, db=objects)
                if value is not None and decode_record(raw, value) is None:
                    txn.delete(raw, db=objects)  # its secondary keys cannot be read: left
            for raw, record in recomputed.items():
                self._put(txn, raw, record)

        self.write(body)
        shown = ", ".join(raw.hex()[:16] for raw in damaged[:3])
        _warn(f"{len(damaged)} damaged record{'s' if len(damaged) > 1 else ''} in the index at"
              f" {self.path} ({shown}{', ...' if len(damaged) > 3 else ''}); recomputed"
              f" {len(recomputed)} from the workspace")
        return recomputed

    # --- objects ----------------------------------------------------------------------------

    def get(self, identifier: str) -> dict[str, Any] | None:
        """The record of ``identifier`` or None; one read transaction."""
        return self.get_raw(raw_identifier(identifier))

    def get_raw(self, raw: bytes, identity: bool = True) -> dict[str, Any] | None:
        """The record of the 32-byte identifier ``raw`` or None (the hot path: one read
        transaction and the record's check).

        ``identity=False`` leaves a task's identity section out (most of its bytes: what a
        lookup's Record does not hold) and parses only the rest.  A record that fails its
        check is recomputed from its directory (None when it has none).
        """
        self._ensure()
        try:
            with self.env.begin(buffers=False) as txn:
                data = txn.get(raw, db=self.dbs[b"objects"])
        except lmdb.Error:  # a map resized, or worse: the guarded read sorts it out
            data = self.read(lambda txn: txn.get(raw, db=self.dbs[b"objects"]))
        if data is None:
            return None
        record = decode_record(raw, data, identity)
        if record is None:
            record = self._mend([raw]).get(raw)
            if record is not None and not identity:
                record = {k: v for k, v in record.items() if k != "identity"}
        return record

    def _put(self, txn: Any, raw: bytes, record: dict[str, Any]) -> None:
        objects = self.dbs[b"objects"]
        old = txn.get(raw, db=objects)
        previous = decode_record(raw, old) if old is not None else None
        if previous is not None:  # a damaged one's secondary keys cannot be read: left
            for db, key in secondary_keys(raw, previous):
                txn.delete(key, db=self.dbs[db])
        txn.put(raw, seal(raw, encode_record(record)), db=objects)
        for db, key in secondary_keys(raw, record):
            txn.put(key, b"", db=self.dbs[db])

    def _delete(self, txn: Any, raw: bytes) -> bool:
        objects = self.dbs[b"objects"]
        old = txn.get(raw, db=objects)
        if old is None:
            return False
        previous = decode_record(raw, old)
        if previous is not None:
            for db, key in secondary_keys(raw, previous):
                txn.delete(key, db=self.dbs[db])
        txn.delete(raw, db=objects)
        return True

    def put(self, identifier: str, record: dict[str, Any]) -> None:
        """Record (or replace) one object."""
        raw = raw_identifier(identifier)
        self.write(lambda txn: self._put(txn, raw, record))

    def put_many(self, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Record many objects in one transaction."""
        items = [(raw_identifier(identifier), record) for identifier, record in records]

        def body(txn: Any) -> None:
            for raw, record in items:
                self._put(txn, raw, record)

        self.write(body)

    def delete(self, identifier: str) -> bool:
        """Forget one object; returns whether it was known."""
        raw = raw_identifier(identifier)
        return self.write(lambda txn: self._delete(txn, raw))

    def delete_many(self, identifiers: Iterable[str]) -> None:
        """Forget many objects in one transaction."""
        raws = [raw_identifier(identifier) for identifier in identifiers]
        self.write(lambda txn: [self._delete(txn, raw) for raw in raws])

    def touch(self, identifier: str, when: float) -> None:
        """Set the last access time of an object (no-op when unknown or damaged)."""
        raw = raw_identifier(identifier)

        def body(txn: Any) -> None:
            data = txn.get(raw, db=self.dbs[b"objects"])
            record = decode_record(raw, data) if data is not None else None
            if record is not None:
                record["last_access"] = when
                txn.put(raw, seal(raw, encode_record(record)), db=self.dbs[b"objects"])

        self.write(body)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (identifier, record), in identifier order (one read transaction; damaged
        records are recomputed first)."""
        def body(txn: Any, damaged: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
            found = []
            for key, value in txn.cursor(db=self.dbs[b"objects"]):
                record = decode_record(key, value)
                if record is None:
                    damaged.append(key)
                else:
                    found.append((key.hex(), record))
            return found

        return iter(self._read_records(body))

    def summaries(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (identifier, record without its ``identity`` section), in identifier order, in
        one read transaction: what listings and gc need, three times faster than
        :meth:`items` on task records (whose identity section is most of their bytes).

        The index writes a record's identity section last, so the bytes from
        ``,"identity":{`` are cut before parsing; a record that does not look like that is
        parsed whole (and keeps its identity).  Damaged records are recomputed first.
        """
        def body(txn: Any, damaged: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
            found = []
            for key, value in txn.cursor(db=self.dbs[b"objects"]):
                record = decode_record(key, value, identity=False)
                if record is None:
                    damaged.append(key)
                else:
                    found.append((key.hex(), record))
            return found

        return self._read_records(body)

    def raw_records(self) -> list[tuple[str, bytes]]:
        """Every (identifier, record's JSON bytes), in identifier order, in one read
        transaction: for readers that parse only what they need.  Every record passed its
        check and decodes as UTF-8 (damaged ones are recomputed first)."""
        def body(txn: Any, damaged: list[bytes]) -> list[tuple[str, bytes]]:
            found = []
            for key, value in txn.cursor(db=self.dbs[b"objects"]):
                record = unseal(key, value)
                if record is None or not _utf8(record):
                    damaged.append(key)
                else:
                    found.append((key.hex(), record))
            return found

        return self._read_records(body)

    def identifiers(self) -> set[str]:
        """Every known identifier."""
        def body(txn: Any) -> set[str]:
            cursor = txn.cursor(db=self.dbs[b"objects"])
            return {key.hex() for key in cursor.iternext(keys=True, values=False)}

        return self.read(body)

    def count(self) -> int:
        """How many objects are recorded."""
        return int(self.read(lambda txn: txn.stat(self.dbs[b"objects"])["entries"]))

    def with_prefix(self, prefix: str, limit: int = 20) -> list[str]:
        """Identifiers starting with ``prefix`` (hex), at most ``limit``."""
        check_identifier(prefix)
        start = bytes.fromhex(prefix + "0" * (len(prefix) % 2))

        def body(txn: Any) -> list[str]:
            cursor = txn.cursor(db=self.dbs[b"objects"])
            found: list[str] = []
            if not cursor.set_range(start):
                return found
            for key in cursor.iternext(keys=True, values=False):
                text = key.hex()
                if not text.startswith(prefix) or len(found) >= limit:
                    break
                found.append(text)
            return found

        return self.read(body)

    def _scan_prefix(self, db: bytes, prefix: bytes) -> list[bytes]:
        def body(txn: Any) -> list[bytes]:
            cursor = txn.cursor(db=self.dbs[db])
            found: list[bytes] = []
            if not cursor.set_range(prefix):
                return found
            for key in cursor.iternext(keys=True, values=False):
                if not key.startswith(prefix):
                    break
                found.append(key[len(prefix):])
            return found

        return self.read(body)

    def by_name(self, name: str) -> list[str]:
        """Identifiers of the objects whose identity name is ``name``."""
        return [raw.hex() for raw in self._scan_prefix(b"names", name_prefix(name))]

    def by_tag(self, name: str, value: Any) -> list[str]:
        """Identifiers of the objects tagged ``name=value``."""
        return [raw.hex() for raw in self._scan_prefix(b"tags", tag_prefix(name, value))]

    def dependents(self, identifier: str) -> list[str]:
        """Identifiers of the objects that depend on ``identifier``."""
        return [raw.hex() for raw in self._scan_prefix(b"deps", raw_identifier(identifier))]

    # --- pins ---------------------------------------------------------------------------------

    def pin(self, identifier: str, pinned: bool = True) -> None:
        """Add (or with ``pinned=False`` remove) a gc pin."""
        raw = raw_identifier(identifier)

        def body(txn: Any) -> None:
            if pinned:
                txn.put(raw, b"", db=self.dbs[b"pins"])
            else:
                txn.delete(raw, db=self.dbs[b"pins"])

        self.write(body)

    def pins(self) -> set[str]:
        """Every pinned identifier."""
        def body(txn: Any) -> set[str]:
            cursor = txn.cursor(db=self.dbs[b"pins"])
            return {key.hex() for key in cursor.iternext(keys=True, values=False)
                    if len(key) == 32}

        return self.read(body)

    def replace_pins(self, identifiers: Iterable[str]) -> None:
        """Make the pins exactly ``identifiers`` (one write transaction): how
        :func:`xpmstore.pins.sync_index` mirrors the pins kept on disk."""
        raws = [raw_identifier(identifier) for identifier in identifiers]

        def body(txn: Any) -> None:
            txn.drop(self.dbs[b"pins"], delete=False)
            for raw in raws:
                txn.put(raw, b"", db=self.dbs[b"pins"])

        self.write(body)

    # --- the input-digest memo (xpmstore.inputs.PersistentMemo) -----------------------------

    def get_digest(self, key: tuple[int, int, int, int, int]) -> bytes | None:
        """The recorded digest of a file version, or None (also when it fails its check)."""
        packed = _digest_key(*key)
        value = self.read(lambda txn: txn.get(packed, db=self.dbs[b"digests"]))
        return unseal(packed, value) if value is not None else None

    def put_digest(self, key: tuple[int, int, int, int, int], digest: bytes) -> None:
        """Record the digest of a file version (buffered until :meth:`flush_digests`)."""
        packed = _digest_key(*key)
        self._pending_digests.append((packed, seal(packed, digest)))
        if len(self._pending_digests) >= 4096:
            self.flush_digests()

    def flush_digests(self) -> None:
        """Write the buffered digests in one transaction."""
        pending, self._pending_digests = self._pending_digests, []
        if pending:
            def body(txn: Any) -> None:
                for packed, value in pending:
                    txn.put(packed, value, db=self.dbs[b"digests"])

            self.write(body)

    def copy_digests(self, other: Index) -> int:
        """Copy the digest memo of ``other`` into this index; returns how many entries."""
        entries = other.read(lambda txn: list(txn.cursor(db=other.dbs[b"digests"])))

        def body(txn: Any) -> None:
            for packed, value in entries:
                txn.put(packed, value, db=self.dbs[b"digests"])

        self.write(body)
        return len(entries)

    # --- rebuild --------------------------------------------------------------------------------

    def replace_all(self, records: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Drop every object record and write ``records`` instead, in one write transaction.

        Pins and the digest memo are kept.  Returns the number of records written.
        """
        items = [(raw_identifier(identifier), record) for identifier, record in records]

        def body(txn: Any) -> int:
            for name in (b"objects", b"names", b"tags", b"deps"):
                txn.drop(self.dbs[name], delete=False)
            for raw, record in items:
                self._put(txn, raw, record)
            return len(items)

        return self.write(body)


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
