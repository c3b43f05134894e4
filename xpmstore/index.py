"""The LMDB index: a per-host accelerator of the workspace (DESIGN §6).

The index is never the only copy of anything: the workspace's directories are the truth, and a
missing or corrupt index is rebuilt from them.  Databases:

``objects``   raw identifier → record (JSON: kind, name, identity, path, created, last_access,
              size, tags, dependencies, and for a cache entry config/method/file)
``names``     identity name NUL raw id → ""
``tags``      name NUL json(value) NUL raw id → ""
``deps``      raw dependency id + raw dependent id → ""
``pins``      raw id → ""  (gc roots set by hand)
``digests``   (dev, inode, size, mtime_ns, ctime_ns) → 33-byte input digest
``meta``      schema version

Concurrency: one Environment per (path, pid); a forked child reopens instead of using an
inherited handle (``os.register_at_fork``).  Every process opens with the same constants.  One
transaction helper doubles the map on ``MapFullError`` and adopts another process's growth on
``MapResizedError``.  Writers are serialised by LMDB; readers never block.  Not safe on network
file systems: :func:`index_location` keeps it on a local disk.
"""

from __future__ import annotations

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
_abandoned: list[Any] = []  # handles inherited across fork: never used, never closed
_open_lock = threading.Lock()


def _forget_after_fork() -> None:
    _abandoned.extend(_open.values())
    _open.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def index_location(workspace: Workspace) -> Path:
    """Where the index of ``workspace`` lives (DESIGN §6).

    ``index_path`` in the workspace's or the user's settings; else
    ``$XPMSTORE_INDEX_DIR/<host>-<hash>``; else ``WORKSPACE/.xpmstore/index`` on a local file
    system; else ``/var/tmp/xpmstore-$UID/<host>-<blake3(realpath)[:16]>`` (LMDB is unsafe on
    network file systems, and no two hosts may share one index).
    """
    configured = workspace.settings.get("index_path") or user_settings().get("index_path")
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


def _raw(identifier: str) -> bytes:
    check_identifier(identifier)
    if len(identifier) != 64:
        raise InvalidIdentifierError(f"{identifier!r}: a full identifier has 64 hex characters")
    return bytes.fromhex(identifier)


def _tag_prefix(name: str, value: Any) -> bytes:
    return f"{name}\0{json.dumps(value)}\0".encode()


def _secondary_keys(raw: bytes, record: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    keys = [(b"names", record["name"].encode() + b"\0" + raw)]
    for name, value in (record.get("tags") or {}).items():
        keys.append((b"tags", _tag_prefix(name, value) + raw))
    for dependency in record.get("dependencies") or ():
        keys.append((b"deps", bytes.fromhex(dependency) + raw))
    return keys


class Index:
    """An open LMDB index.  Use :meth:`for_workspace` or :meth:`open` (cached per process)."""

    def __init__(self, path: Path, map_size: int | None = None):
        self.path = path
        self._requested_map = map_size
        self.env: Any = None
        self.dbs: dict[bytes, Any] = {}
        self._pending_digests: list[tuple[bytes, bytes]] = []
        self._open()

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, map_size: int | None = None) -> Index:
        """The index at ``path`` for this process (opened once per process, reopened after fork).
        """
        key = os.path.abspath(path)
        with _open_lock:
            found = _open.get(key)
            if found is not None and found[0] == os.getpid():
                return found[1]
            index = cls(Path(key), map_size)
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

    def _open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with path_lock(self.path.parent / f"{self.path.name}.lock"):
            try:
                self._open_env()
            except (lmdb.Error, ValueError, OSError) as exc:
                self._move_aside(str(exc))
                self._open_env()

    def _open_env(self) -> None:
        self.env = lmdb.open(
            str(self.path), map_size=self._map_size(), max_dbs=MAX_DBS,
            max_readers=MAX_READERS, subdir=True, readahead=False,
        )
        self.env.reader_check()
        with self.env.begin(write=True) as txn:
            self.dbs = {name: self.env.open_db(name, txn=txn) for name in _DB_NAMES}
            schema = txn.get(b"schema", db=self.dbs[b"meta"])
            if schema is None:
                txn.put(b"schema", SCHEMA, db=self.dbs[b"meta"])
            elif schema != SCHEMA:
                raise ValueError(f"index schema {schema!r}, expected {SCHEMA!r}")

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
        return int(self.env.reader_check())

    # --- transactions -----------------------------------------------------------------------

    def read(self, body: Callable[[Any], T]) -> T:
        """Run ``body(txn)`` in a read transaction (adopting another process's map growth)."""
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
        for _ in range(64):
            try:
                with self.env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        raise RuntimeError("index write kept failing to fit")  # pragma: no cover

    # --- objects ----------------------------------------------------------------------------

    def get(self, identifier: str) -> dict[str, Any] | None:
        """The record of ``identifier`` or None; one read transaction."""
        raw = _raw(identifier)
        data = self.read(lambda txn: txn.get(raw, db=self.dbs[b"objects"]))
        return None if data is None else json.loads(data)

    def _put(self, txn: Any, identifier: str, record: dict[str, Any]) -> None:
        raw = _raw(identifier)
        old = txn.get(raw, db=self.dbs[b"objects"])
        if old is not None:
            for db, key in _secondary_keys(raw, json.loads(old)):
                txn.delete(key, db=self.dbs[db])
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

    def put_many(self, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Record many objects in one transaction."""
        items = list(records)
        def body(txn: Any) -> None:
            for identifier, record in items:
                self._put(txn, identifier, record)

        self.write(body)

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
        return [raw.hex() for raw in self._scan_prefix(b"names", name.encode() + b"\0")]

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
