"""The LMDB index: a per-host accelerator of the workspace (DESIGN §6).

The index is never the only copy of anything: the workspace's directories are the truth, and a
missing or corrupt index is rebuilt from them.  Databases:

``objects``   raw identifier → record (JSON: kind, name, identity, path, created, last_access,
              size, tags, dependencies, and for a cache entry config/method/file)
``names``     identity name NUL raw id → ""
``tags``      name NUL json(value) NUL raw id → ""
              (a prefix too long for an LMDB key is replaced by 0xFF blake3(prefix) NUL)
``deps``      raw dependency id + raw dependent id → ""
``pins``      raw id → ""  (gc roots set by hand: a mirror of ``.xpmstore/pins/``, which
              :mod:`xpmstore.pins` keeps as the truth so that a rebuilt index keeps them)
``digests``   (dev, inode, size, mtime_ns, ctime_ns) → 33-byte input digest
``meta``      schema version

Concurrency: one Environment per (path, pid), shared by every Index object of that path in the
process; a forked child reopens instead of using an inherited handle (``os.register_at_fork``
forgets the cache, and an inherited Index object reopens on its first use in the child).  Only
real damage (not an LMDB file, corrupted pages, another schema) moves an index aside.  Every
process opens with the same constants.  One transaction helper doubles the map on
``MapFullError`` and adopts another process's growth on ``MapResizedError``.  Writers are
serialised by LMDB; readers never block.  Not safe on network file systems:
:func:`index_location` keeps it on a local disk.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import lmdb
from blake3 import blake3

from .errors import InvalidIdentifierError
from .identifier import check_identifier
from .locks import path_lock
from .workspace import Workspace, is_network_fs, user_settings

__all__ = ["MAX_DBS", "MAX_READERS", "MIN_MAP_SIZE", "SCHEMA", "Index", "index_location"]

SCHEMA = b"1"
MAX_DBS = 8
MAX_READERS = 1024
MIN_MAP_SIZE = 1 << 30

_DB_NAMES = (b"objects", b"names", b"tags", b"deps", b"pins", b"digests", b"meta")
_digest_key = struct.Struct(">QQQqq").pack

T = TypeVar("T")

_open: dict[str, tuple[int, Index]] = {}
_abandoned: list[Any] = []  # Index objects inherited across fork: kept so they are never freed
_open_lock = threading.RLock()

_envs: dict[str, tuple[int, Any, dict[bytes, Any]]] = {}
"""real path → (pid, lmdb Environment, its databases): the one environment of each index in
this process.  py-lmdb refuses to open the same files twice in one process (LMDB's fcntl locks
belong to the process), so every Index of a path shares it.  After a fork the entry names the
parent's pid until the child opens its own (:meth:`Index._attach`)."""


class _Damaged(Exception):
    """The index cannot be used as it is (another schema)."""


_DAMAGE = (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError,
           lmdb.PageNotFoundError, lmdb.IncompatibleError, lmdb.BadChecksumError, _Damaged)
"""What moves an index aside.  Nothing else does: a transient error (map resized by another
process, readers full, permissions, a second open) must never throw the pins and the memo away."""


_this_pid = os.getpid()  # kept current by _forget_after_fork: no getpid() per lookup


def _forget_after_fork() -> None:
    global _open_lock, _this_pid
    _this_pid = os.getpid()
    _open_lock = threading.RLock()  # another thread of the parent may have held it at the fork
    _abandoned.extend(_open.values())
    _open.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


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


_IDENTITY_KEY = b',"identity":{'


def _summary(value: bytes) -> dict[str, Any]:
    return _summary_text(value)[0]


_decode = json.JSONDecoder().decode  # a str straight to the C scanner (json.loads of bytes
                                     # first guesses their encoding, in Python)


def without_identity(value: bytes) -> str | None:
    """The JSON text of a stored record without its identity section (written last by
    :meth:`Index.put`), or None when the record does not end with one."""
    cut = value.find(_IDENTITY_KEY)
    if cut > 0 and value.endswith(b"}}"):
        return (value[:cut] + b"}").decode()
    return None


def _summary_text(value: bytes) -> tuple[dict[str, Any], str | None]:
    """:func:`_summary` and the JSON text it parsed when the identity section was cut off
    (None when the record was parsed whole)."""
    text = without_identity(value)
    if text is not None:
        try:
            found = _decode(text)
        except ValueError:
            found = None
        if isinstance(found, dict):
            return found, text
    return dict(json.loads(value)), None


def _raw(identifier: str) -> bytes:
    check_identifier(identifier)
    if len(identifier) != 64:
        raise InvalidIdentifierError(f"{identifier!r}: a full identifier has 64 hex characters")
    return bytes.fromhex(identifier)


_MAX_PREFIX = 511 - 32
"""LMDB keys are at most 511 bytes and a secondary key ends with a 32-byte identifier."""


def _bounded(prefix: bytes) -> bytes:
    """``prefix``, or when a key holding it would be too long for LMDB (a long tag value or
    identity name), 0xFF and its blake3: 0xFF never starts a UTF-8 name, so no clash."""
    if len(prefix) <= _MAX_PREFIX:
        return prefix
    return b"\xff" + blake3(prefix).digest() + b"\0"


def _tag_prefix(name: str, value: Any) -> bytes:
    return _bounded(f"{name}\0{json.dumps(value)}\0".encode())


def _name_prefix(name: str) -> bytes:
    return _bounded(name.encode() + b"\0")


def _secondary_keys(raw: bytes, record: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    keys = [(b"names", _name_prefix(record["name"]) + raw)]
    for name, value in (record.get("tags") or {}).items():
        keys.append((b"tags", _tag_prefix(name, value) + raw))
    for dependency in record.get("dependencies") or ():
        keys.append((b"deps", bytes.fromhex(dependency) + raw))
    return keys


_SLACK = 1 << 20
"""Bytes kept allocated past the end of the index's data (see :meth:`Index._keep_slack`)."""
_PAGE = os.sysconf("SC_PAGE_SIZE")  # LMDB's page size: the OS page size

_LOCK_FILE_SIZE = (MAX_READERS - 1) * 64 + 192
"""The size LMDB gives its lock file for MAX_READERS readers (64-byte slots after a header)."""


def _reserve_lock_file(path: Path) -> None:
    """Make LMDB's lock file with every page allocated.  LMDB writes that file through a
    memory map: a page the file system cannot allocate then (a full disk) kills the process
    with SIGBUS.  Allocated here, a full disk is an OSError instead.  Only a new file (made
    under the open lock, so no process uses it yet): an existing one is LMDB's."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    try:
        os.posix_fallocate(fd, 0, _LOCK_FILE_SIZE)
    except OSError as exc:
        os.close(fd)
        fd = -1
        os.unlink(path)
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return  # a file system without fallocate: LMDB makes the file as usual
        raise OSError(exc.errno, f"the index cannot be created ({exc.strerror}); free some"
                      " space and try again", str(path)) from None
    finally:
        if fd >= 0:
            os.close(fd)


class Index:
    """An open LMDB index.  Use :meth:`for_workspace` or :meth:`open` (cached per process)."""

    def __init__(self, path: Path, map_size: int | None = None):
        self.path = Path(os.path.abspath(path))
        self._key = os.path.realpath(self.path)  # one environment per files, whatever the path
        self._requested_map = map_size
        self.env: Any = None
        self.dbs: dict[bytes, Any] = {}
        self._pid = 0
        self._held: tuple[int, Any, dict[bytes, Any]] | None = None
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

    def _attach(self) -> None:
        """Use this process's environment of the path, opening it if there is none yet.

        Called at construction and whenever the object is used in another process than the one
        that attached it (a forked child) or after :meth:`close`: the child then closes the
        inherited handle (it never used it; the parent's stays open) and opens its own.
        """
        with _open_lock:
            held = _envs.get(self._key)
            if held is None or held[0] != os.getpid():
                if held is not None:
                    del _envs[self._key]
                    try:
                        held[1].close()  # inherited across fork: py-lmdb refuses a second open
                    except lmdb.Error:
                        pass
                self._open()
                held = _envs[self._key] = (os.getpid(), self.env, self.dbs)
            self._pid, self.env, self.dbs, self._held = held[0], held[1], held[2], held

    def _ensure(self) -> None:
        if self._pid != _this_pid or _envs.get(self._key) is not self._held:
            self._attach()

    def close(self) -> None:
        """Close this process's environment of the index (every Index object of the path in
        this process reopens it on its next use)."""
        with _open_lock:
            self.flush_digests()
            held = _envs.get(self._key)
            if held is not None and held[0] == os.getpid():
                del _envs[self._key]
                held[1].close()
            found = _open.get(self._key)
            if found is not None and found[1] is self:
                del _open[self._key]

    def _open(self) -> None:
        self.env = None  # never close another handle (inherited or closed) when moving aside
        self.path.mkdir(parents=True, exist_ok=True)
        with path_lock(self.path.parent / f"{self.path.name}.lock"):
            try:
                try:
                    self._open_env()
                except _DAMAGE as exc:
                    self._move_aside(str(exc))
                    self._open_env()
            except BaseException:
                if self.env is not None:  # half open: close it, or the next try is refused
                    self.env.close()
                    self.env = None
                raise

    def _open_env(self) -> None:
        _reserve_lock_file(self.path / "lock.mdb")
        self.env = lmdb.open(
            str(self.path), map_size=self._map_size(), max_dbs=MAX_DBS,
            max_readers=MAX_READERS, subdir=True, readahead=False,
        )
        self.env.reader_check()
        # A write transaction even when every database exists: LMDB refuses writes through
        # database handles opened in a read-only transaction.
        for _ in range(64):
            try:
                txn = self.env.begin(write=True)
            except lmdb.MapResizedError:  # another process grew the map since we opened
                self.env.set_mapsize(0)
                continue
            with txn:
                self.dbs = {name: self.env.open_db(name, txn=txn) for name in _DB_NAMES}
                schema = txn.get(b"schema", db=self.dbs[b"meta"])
                if schema is None:
                    txn.put(b"schema", SCHEMA, db=self.dbs[b"meta"])
                elif schema != SCHEMA:
                    raise _Damaged(f"index schema {schema!r}, expected {SCHEMA!r}")
            self._keep_slack()
            return
        raise RuntimeError("index map kept changing size")  # pragma: no cover

    def _move_aside(self, reason: str) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}-{os.getpid()}")
        os.rename(self.path, aside)
        self.path.mkdir(parents=True)
        print(f"xpmstore: the index at {self.path} was unreadable ({reason}); moved it to"
              f" {aside.name} and started a fresh one (it refills from the workspace)",
              file=sys.stderr)

    def reader_check(self) -> int:
        """Clear reader slots of dead processes; returns how many were cleared."""
        self._ensure()
        return int(self.env.reader_check())

    # --- transactions -----------------------------------------------------------------------

    def read(self, body: Callable[[Any], T]) -> T:
        """Run ``body(txn)`` in a read transaction (adopting another process's map growth)."""
        self._ensure()
        for _ in range(8):
            try:
                with self.env.begin(buffers=False) as txn:
                    return body(txn)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
        raise RuntimeError("index map kept changing size")  # pragma: no cover

    def write(self, body: Callable[[Any], T]) -> T:
        """Run ``body(txn)`` in one durable write transaction, growing the map as needed.

        ``body`` may run more than once (after a map resize): it must only touch the txn.
        """
        self._ensure()
        for _ in range(64):
            try:
                with self.env.begin(write=True) as txn:
                    result = body(txn)
                self._keep_slack()
                return result
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
            except lmdb.DiskError as exc:  # ENOSPC: nothing is damaged; say it as an OSError
                raise OSError(errno.ENOSPC, "the index cannot be written: no space left on the"
                              " device (free some space; the index refills from the workspace)",
                              str(self.path)) from exc
        raise RuntimeError("index write kept failing to fit")  # pragma: no cover

    def _keep_slack(self) -> None:
        """Keep :data:`_SLACK` bytes allocated past the pages LMDB uses in its data file.
        LMDB writes a new page with ``pwrite`` past its last one: into blocks allocated
        ahead, that write needs no free space, so on a full disk the index still takes small
        writes (a reconcile, the records of the jobs that just ended).  A file longer than
        its pages is LMDB's normal state (it never shrinks).  Best effort: on a full disk the
        slack stays what it is."""
        used = (self.env.info()["last_pgno"] + 1) * _PAGE
        try:
            fd = os.open(self.path / "data.mdb", os.O_WRONLY)
        except OSError:
            return
        try:
            if os.fstat(fd).st_size < used + _SLACK // 2:
                os.posix_fallocate(fd, used, _SLACK)
        except OSError:
            pass
        finally:
            os.close(fd)

    # --- objects ----------------------------------------------------------------------------

    def get(self, identifier: str) -> dict[str, Any] | None:
        """The record of ``identifier`` or None; one read transaction."""
        return self.get_raw(_raw(identifier))

    def get_raw(self, raw: bytes, identity: bool = True) -> dict[str, Any] | None:
        """The record of the 32-byte identifier ``raw`` or None (the hot path: no checks).

        ``identity=False`` leaves a task's identity section out (most of its bytes: what a
        lookup's Record does not hold) and parses only the rest.
        """
        self._ensure()
        try:
            with self.env.begin(buffers=False) as txn:
                data = txn.get(raw, db=self.dbs[b"objects"])
        except lmdb.MapResizedError:
            data = self.read(lambda txn: txn.get(raw, db=self.dbs[b"objects"]))
        if data is None:
            return None
        return json.loads(data) if identity else _summary(data)

    def _put(self, txn: Any, identifier: str, record: dict[str, Any],
             keep_tags: bool = False) -> None:
        raw = _raw(identifier)
        old = txn.get(raw, db=self.dbs[b"objects"])
        if old is not None:
            previous = json.loads(old)
            for db, key in _secondary_keys(raw, previous):
                txn.delete(key, db=self.dbs[db])
            known = previous.get("tags")
            if keep_tags and known and isinstance(known, dict):
                record = {**record, "tags": {**(record.get("tags") or {}), **known}}
        if record.get("identity") is not None:  # last, so that summaries() can skip it
            record = {**{k: v for k, v in record.items() if k != "identity"},
                      "identity": record["identity"]}
        txn.put(raw, json.dumps(record, separators=(",", ":")).encode(), db=self.dbs[b"objects"])
        for db, key in _secondary_keys(raw, record):
            txn.put(key, b"", db=self.dbs[db])

    def _delete(self, txn: Any, identifier: str) -> bool:
        raw = _raw(identifier)
        old = txn.get(raw, db=self.dbs[b"objects"])
        if old is None:
            return False
        for db, key in _secondary_keys(raw, json.loads(old)):
            txn.delete(key, db=self.dbs[db])
        txn.delete(raw, db=self.dbs[b"objects"])
        return True

    def put(self, identifier: str, record: dict[str, Any]) -> None:
        """Record (or replace) one object."""
        self.write(lambda txn: self._put(txn, identifier, record))

    def put_many(self, records: Iterable[tuple[str, dict[str, Any]]],
                 keep_tags: bool = False) -> None:
        """Record many objects in one transaction.  ``keep_tags``: a record replaced keeps the
        tags the index knew (see :meth:`add_tags`)."""
        items = list(records)
        def body(txn: Any) -> None:
            for identifier, record in items:
                self._put(txn, identifier, record, keep_tags)

        self.write(body)

    def add_tags(self, items: Iterable[tuple[str, dict[str, Any]]]) -> set[str]:
        """Add the tags of submissions to the records of their objects, in one transaction.

        The index keeps the union of the tags of every submission of an object: a name it
        knows keeps the value it knew first.  Returns the identifiers it has no record of.
        """
        pending = [(identifier, tags) for identifier, tags in items if tags]

        def body(txn: Any) -> set[str]:
            unknown = set()
            for identifier, tags in pending:
                data = txn.get(_raw(identifier), db=self.dbs[b"objects"])
                if data is None:
                    unknown.add(identifier)
                    continue
                record = json.loads(data)
                known = record.get("tags")
                known = known if isinstance(known, dict) else {}
                if not tags.keys() <= known.keys():
                    self._put(txn, identifier, {**record, "tags": {**tags, **known}})
            return unknown

        return self.write(body) if pending else set()

    def delete(self, identifier: str) -> bool:
        """Forget one object; returns whether it was known."""
        return self.write(lambda txn: self._delete(txn, identifier))

    def delete_many(self, identifiers: Iterable[str]) -> None:
        """Forget many objects in one transaction."""
        items = list(identifiers)
        self.write(lambda txn: [self._delete(txn, i) for i in items])

    def touch(self, identifier: str, when: float) -> None:
        """Set the last access time of an object (no-op when unknown)."""
        raw = _raw(identifier)

        def body(txn: Any) -> None:
            data = txn.get(raw, db=self.dbs[b"objects"])
            if data is not None:
                record = json.loads(data)
                record["last_access"] = when
                txn.put(raw, json.dumps(record, separators=(",", ":")).encode(),
                        db=self.dbs[b"objects"])

        self.write(body)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (identifier, record), in identifier order (one read transaction)."""
        def body(txn: Any) -> list[tuple[str, dict[str, Any]]]:
            cursor = txn.cursor(db=self.dbs[b"objects"])
            return [(key.hex(), json.loads(value)) for key, value in cursor]

        return iter(self.read(body))

    def summaries(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (identifier, record without its ``identity`` section), in identifier order, in
        one read transaction: what listings and gc need, three times faster than
        :meth:`items` on task records (whose identity section is most of their bytes).

        The index writes a record's identity section last (:meth:`put`), so the bytes from
        ``,"identity":{`` are cut before parsing; a record that does not look like that is
        parsed whole (and keeps its identity).
        """
        def body(txn: Any) -> list[tuple[str, dict[str, Any]]]:
            cursor = txn.cursor(db=self.dbs[b"objects"])
            return [(key.hex(), _summary(value)) for key, value in cursor]

        return self.read(body)

    def raw_records(self) -> list[tuple[str, bytes]]:
        """Every (identifier, stored record bytes), in identifier order, in one read
        transaction: for readers that parse only what they need."""
        def body(txn: Any) -> list[tuple[str, bytes]]:
            cursor = txn.cursor(db=self.dbs[b"objects"])
            return [(key.hex(), bytes(value)) for key, value in cursor]

        return self.read(body)

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
        return [raw.hex() for raw in self._scan_prefix(b"names", _name_prefix(name))]

    def by_tag(self, name: str, value: Any) -> list[str]:
        """Identifiers of the objects tagged ``name=value``."""
        return [raw.hex() for raw in self._scan_prefix(b"tags", _tag_prefix(name, value))]

    def dependents(self, identifier: str) -> list[str]:
        """Identifiers of the objects that depend on ``identifier``."""
        return [raw.hex() for raw in self._scan_prefix(b"deps", _raw(identifier))]

    # --- pins ---------------------------------------------------------------------------------

    def pin(self, identifier: str, pinned: bool = True) -> None:
        """Add (or with ``pinned=False`` remove) a gc pin."""
        raw = _raw(identifier)

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
            return {key.hex() for key in cursor.iternext(keys=True, values=False)}

        return self.read(body)

    def replace_pins(self, identifiers: Iterable[str]) -> None:
        """Make the pins exactly ``identifiers`` (one write transaction): how
        :func:`xpmstore.pins.sync_index` mirrors the pins kept on disk."""
        raws = [_raw(identifier) for identifier in identifiers]

        def body(txn: Any) -> None:
            txn.drop(self.dbs[b"pins"], delete=False)
            for raw in raws:
                txn.put(raw, b"", db=self.dbs[b"pins"])

        self.write(body)

    # --- the input-digest memo (xpmstore.inputs.PersistentMemo) -----------------------------

    def get_digest(self, key: tuple[int, int, int, int, int]) -> bytes | None:
        """The recorded digest of a file version, or None."""
        packed = _digest_key(*key)
        return self.read(lambda txn: txn.get(packed, db=self.dbs[b"digests"]))

    def put_digest(self, key: tuple[int, int, int, int, int], digest: bytes) -> None:
        """Record the digest of a file version (buffered until :meth:`flush_digests`)."""
        self._pending_digests.append((_digest_key(*key), digest))
        if len(self._pending_digests) >= 4096:
            self.flush_digests()

    def flush_digests(self) -> None:
        """Write the buffered digests in one transaction."""
        pending, self._pending_digests = self._pending_digests, []
        if pending:
            def body(txn: Any) -> None:
                for packed, digest in pending:
                    txn.put(packed, digest, db=self.dbs[b"digests"])

            self.write(body)

    # --- rebuild --------------------------------------------------------------------------------

    def replace_all(self, records: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Drop every object record and write ``records`` instead, in one write transaction.

        Pins and the digest memo are kept.  Returns the number of records written.
        """
        items = list(records)

        def body(txn: Any) -> int:
            for name in (b"objects", b"names", b"tags", b"deps"):
                txn.drop(self.dbs[name], delete=False)
            for identifier, record in items:
                self._put(txn, identifier, record)
            return len(items)

        return self.write(body)
