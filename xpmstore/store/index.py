"""The LMDB index: a per-host accelerator of the workspace (docs/store.md).

The index is never the only copy of anything: the workspace's directories are the truth, and
damage costs a rebuild from them, never an outage.  Databases:

``objects``   raw identifier → record (:class:`~xpmstore.store.indexrecords.IndexRecord`,
              its bytes :mod:`xpmstore.store.indexrecords`'s alone)
``names``     identity name NUL raw id → ""
``tags``      name NUL json(value) NUL raw id → ""
              (a prefix too long for an LMDB key is replaced by 0xFF blake3(prefix) NUL)
``deps``      raw dependency id + raw dependent id → ""
``pins``      raw id → ""  (gc roots set by hand: a mirror of ``.xpmstore/pins/``, which
              :mod:`xpmstore.store.pins` keeps as the truth so that a rebuilt index keeps them)
``digests``   (dev, inode, size, mtime_ns, ctime_ns) → checked 33-byte input digest
``meta``      schema version
``folders``   class folder (``jobs/<name>``) → checked stamp of its last listing, and the
              position this index read the journal of undone objects up to
              (:mod:`xpmstore.store.reconcile`)

Healing (:mod:`xpmstore.store.indexenv`): damaged files cost a rebuild from the workspace, a full
disk or missing permissions an index kept in memory; a record that fails its check is dropped
and recomputed from its directory.  Not safe on network file systems: :func:`index_location`
keeps it on a local disk.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, overload

import lmdb
from blake3 import blake3

from ..core.identifier import check_identifier
from . import indexenv
from .indexenv import MAX_DBS, MAX_READERS, MIN_MAP_SIZE, SCHEMA, IndexEnvironment, install
from .indexrecords import (
    IndexRecord,
    RecordSummary,
    checked_body,
    decode_record,
    encode_value,
    name_prefix,
    raw_identifier,
    record_dependencies,
    seal,
    secondary_keys,
    tag_prefix,
    unseal,
)
from .workspace import Workspace, is_network_fs, user_settings

__all__ = ["MAX_DBS", "MAX_READERS", "MIN_MAP_SIZE", "SCHEMA", "Index", "index_location",
           "install"]

_digest_key = struct.Struct(">QQQqq").pack

T = TypeVar("T")

_open: dict[str, tuple[int, Index]] = {}
_abandoned: list[Any] = []  # Index objects inherited across fork: kept so they are never freed


def _forget_after_fork() -> None:
    _abandoned.extend(_open.values())
    _open.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def index_location(workspace: Workspace) -> Path:
    """Where the index of ``workspace`` lives (docs/store.md).

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



class Index(IndexEnvironment):
    """An open LMDB index.  Use :meth:`for_workspace` or :meth:`open` (cached per process)."""

    def __init__(self, path: Path, map_size: int | None = None,
                 workspace: Workspace | None = None, fallback: bool = True):
        self._pending_digests: list[tuple[bytes, bytes]] = []
        super().__init__(path, map_size, workspace, fallback)

    @classmethod
    def open(cls, path: Path, map_size: int | None = None,
             workspace: Workspace | None = None) -> Index:
        """The index at ``path`` for this process (opened once per process, reopened after fork).
        """
        key = os.path.realpath(path)  # a symlinked workspace names the same files
        with indexenv.process_lock():
            found = _open.get(key)
            if found is not None and found[0] == os.getpid():
                if found[1].workspace is None:
                    found[1].workspace = workspace
                return found[1]
            index = cls(Path(os.path.abspath(path)), map_size, workspace)
            _open[key] = (os.getpid(), index)
            return index

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> Index:
        """The index of ``workspace`` (see :func:`index_location`); it also becomes the
        persistent memo of input digests of this process."""
        from ..core import digests

        index = cls.open(index_location(workspace), workspace=workspace)
        digests.set_persistent_memo(index)
        return index

    def close(self) -> None:
        """Write the buffered digests, then close this process's environment of the index
        (every Index object of the path in this process reopens it on its next use)."""
        with indexenv.process_lock():
            try:
                self.flush_digests()
            finally:
                super().close()
                found = _open.get(self._key)
                if found is not None and found[1] is self:
                    del _open[self._key]

    def refill(self) -> None:
        """Fill the index from its workspace's directories and pins."""
        from .reindex import fill

        assert self.workspace is not None
        fill(self, self.workspace)

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

    def _mend(self, damaged: list[bytes]) -> dict[bytes, IndexRecord]:
        """Drop the records of ``damaged`` (keys whose value fails its check) and record them
        again from their directories; returns the records recomputed."""
        from .reindex import record_of

        recomputed: dict[bytes, IndexRecord] = {}
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
            if len(recomputed) < len(damaged):  # a record dropped: every folder listed again
                txn.drop(self.dbs[b"folders"], delete=False)

        self.write(body)
        shown = ", ".join(raw.hex()[:16] for raw in damaged[:3])
        indexenv.warn(f"{len(damaged)} damaged record{'s' if len(damaged) > 1 else ''} in the"
                      f" index at {self.path} ({shown}{', ...' if len(damaged) > 3 else ''});"
                      f" recomputed {len(recomputed)} from the workspace")
        return recomputed

    # --- objects ----------------------------------------------------------------------------

    def get(self, identifier: str) -> IndexRecord | None:
        """The record of ``identifier`` or None; one read transaction."""
        return self.get_raw(raw_identifier(identifier))

    @overload
    def get_raw(self, raw: bytes, identity: Literal[True] = ...) -> IndexRecord | None:
        ...

    @overload
    def get_raw(self, raw: bytes, identity: bool) -> RecordSummary | None:
        ...

    def get_raw(self, raw: bytes, identity: bool = True) -> RecordSummary | None:
        """The record of the 32-byte identifier ``raw`` or None (the hot path: one read
        transaction and the record's check).

        ``identity=False`` leaves a task's identity section out (most of its bytes: what a
        lookup's Record does not hold) and parses only the rest.  A record that fails its
        check is recomputed from its directory (None when it has none).
        """
        data = self._value(raw)
        if data is None:
            return None
        record = decode_record(raw, data, identity)
        if record is not None:
            return record
        mended = self._mend([raw]).get(raw)
        if mended is not None and not identity:
            return cast(RecordSummary, {k: v for k, v in mended.items() if k != "identity"})
        return mended

    def _value(self, raw: bytes) -> bytes | None:
        """The value stored under ``raw`` in ``objects`` (one read transaction)."""
        self._ensure()
        try:
            with self.env.begin(buffers=False) as txn:
                return txn.get(raw, db=self.dbs[b"objects"])
        except (lmdb.Error, TypeError):  # a map resized, or worse: the guarded read sorts
            return self.read(lambda txn: txn.get(raw, db=self.dbs[b"objects"]))  # it out

    def _put(self, txn: Any, raw: bytes, record: IndexRecord, keep_tags: bool = False) -> None:
        objects = self.dbs[b"objects"]
        old = txn.get(raw, db=objects)
        previous = decode_record(raw, old) if old is not None else None
        if previous is not None:  # a damaged one's secondary keys cannot be read: left
            for db, key in secondary_keys(raw, previous):
                txn.delete(key, db=self.dbs[db])
            known = previous.get("tags")
            if keep_tags and known and isinstance(known, dict):
                record = {**record, "tags": {**(record.get("tags") or {}), **known}}
        txn.put(raw, encode_value(raw, record), db=objects)
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

    def put(self, identifier: str, record: IndexRecord) -> None:
        """Record (or replace) one object."""
        raw = raw_identifier(identifier)
        self.write(lambda txn: self._put(txn, raw, record))

    def put_many(self, records: Iterable[tuple[str, IndexRecord]],
                 keep_tags: bool = False) -> None:
        """Record many objects in one transaction.  ``keep_tags``: a record replaced keeps the
        tags the index knew (see :meth:`add_tags`)."""
        items = [(raw_identifier(identifier), record) for identifier, record in records]

        def body(txn: Any) -> None:
            for raw, record in items:
                self._put(txn, raw, record, keep_tags)

        self.write(body)

    def add_tags(self, items: Iterable[tuple[str, dict[str, Any]]]) -> set[str]:
        """Add the tags of submissions to the records of their objects, in one transaction.

        The index keeps the union of the tags of every submission of an object: a name it
        knows keeps the value it knew first.  Returns the identifiers it has no record of (or
        a damaged one: the next read recomputes it).
        """
        pending = [(raw_identifier(identifier), identifier, tags) for identifier, tags in items
                   if tags]

        def body(txn: Any) -> set[str]:
            unknown = set()
            for raw, identifier, tags in pending:
                data = txn.get(raw, db=self.dbs[b"objects"])
                record = decode_record(raw, data) if data is not None else None
                if record is None:
                    unknown.add(identifier)
                    continue
                known = record.get("tags")
                known = known if isinstance(known, dict) else {}
                if not tags.keys() <= known.keys():
                    self._put(txn, raw, {**record, "tags": {**tags, **known}})
            return unknown

        return self.write(body) if pending else set()

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
                txn.put(raw, encode_value(raw, record), db=self.dbs[b"objects"])

        self.write(body)

    def _every_record(self, decode: Callable[[bytes, bytes], T | None]) -> list[tuple[str, T]]:
        """(identifier, ``decode(key, value)``) of every record, in identifier order, in one
        read transaction; a record ``decode`` refuses (None) is damaged: recomputed first."""
        def body(txn: Any, damaged: list[bytes]) -> list[tuple[str, T]]:
            found = []
            for key, value in txn.cursor(db=self.dbs[b"objects"]):
                record = decode(key, value)
                if record is None:
                    damaged.append(key)
                else:
                    found.append((key.hex(), record))
            return found

        return self._read_records(body)

    def items(self) -> Iterator[tuple[str, IndexRecord]]:
        """Every (identifier, record), in identifier order (one read transaction; damaged
        records are recomputed first)."""
        return iter(self._every_record(decode_record))

    def summaries(self) -> list[tuple[str, RecordSummary]]:
        """Every (identifier, record without its ``identity`` section), in identifier order, in
        one read transaction: what listings and gc need, without parsing the identity sections
        of task records (most of their bytes; see
        :func:`~xpmstore.store.indexrecords.decode_summary`).  Damaged records are recomputed
        first.
        """
        return self._every_record(_decode_summary)

    def summaries_from(self, start: bytes, limit: int) -> list[tuple[bytes, RecordSummary]]:
        """Up to ``limit`` (raw identifier, record without its identity section) from the raw
        identifier ``start`` on, in identifier order (one read transaction; damaged records are
        recomputed first): a walk of every record in bounded memory, a chunk at a time."""
        def body(txn: Any, damaged: list[bytes]) -> list[tuple[bytes, RecordSummary]]:
            found: list[tuple[bytes, RecordSummary]] = []
            cursor = txn.cursor(db=self.dbs[b"objects"])
            if not cursor.set_range(start):
                return found
            for key, value in cursor.iternext():
                if len(found) >= limit:
                    break
                record = decode_record(key, value, identity=False)
                if record is None:
                    damaged.append(key)
                else:
                    found.append((bytes(key), record))
            return found

        return self._read_records(body)

    def reach(self, roots: Iterable[bytes],
              more: Callable[[bytes], Iterable[bytes]]) -> set[bytes]:
        """The raw identifiers reachable from ``roots`` (raw) through the dependencies the
        records hold and those ``more(raw)`` adds, roots included; in one read transaction,
        reading only the records reached (damaged ones are recomputed first)."""
        start = list(roots)

        def body(txn: Any, damaged: list[bytes]) -> set[bytes]:
            objects = self.dbs[b"objects"]
            reached: set[bytes] = set()
            stack = list(start)
            while stack:
                raw = stack.pop()
                if raw in reached:
                    continue
                reached.add(raw)
                stack.extend(more(raw))
                value = txn.get(raw, db=objects)
                if value is not None:
                    found = record_dependencies(raw, value)
                    if found is None:
                        damaged.append(raw)
                    else:
                        stack.extend(found)
            return reached

        return self._read_records(body)

    def raw_records(self) -> list[tuple[str, bytes]]:
        """Every (identifier, record's JSON bytes), in identifier order, in one read
        transaction: for readers that parse only what they need, with
        :func:`~xpmstore.store.indexrecords.decode_summary` or
        :func:`~xpmstore.store.indexrecords.task_listing_members`.  Every record passed its
        check (:func:`~xpmstore.store.indexrecords.checked_body`; damaged ones are recomputed
        first)."""
        return self._every_record(checked_body)

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

    def names(self) -> list[str]:
        """The distinct identity names of the recorded objects (one seek per name; a name too
        long for a key, stored hashed, is left out)."""
        def body(txn: Any) -> list[str]:
            cursor = txn.cursor(db=self.dbs[b"names"])
            found: list[str] = []
            at = b""
            while cursor.set_range(at):
                key = bytes(next(iter(cursor.iternext(keys=True, values=False))))
                prefix = bytes(key[:-32])
                if len(key) <= 32 or not prefix.endswith(b"\0"):
                    break  # not a names key: nothing sensible after it
                if not prefix.startswith(b"\xff"):
                    found.append(prefix[:-1].decode(errors="replace"))
                at = prefix + b"\xff" * 32 + b"\0"  # past every key of this name
            return found

        return self.read(body)

    # --- reconciling with the disk (xpmstore.store.reconcile) ---------------------------------

    def folder_states(self) -> dict[bytes, bytes]:
        """Every key of the ``folders`` database and its body (one that fails its check is left
        out: its folder is listed again)."""
        def body(txn: Any) -> dict[bytes, bytes]:
            found = {}
            for key, value in txn.cursor(db=self.dbs[b"folders"]):
                state = unseal(key, value)
                if state is not None:
                    found[bytes(key)] = state
            return found

        return self.read(body)

    def commit_reconcile(self, added: Iterable[tuple[str, IndexRecord]],
                         removed: Iterable[str], states: dict[bytes, bytes | None]) -> None:
        """One write transaction: records ``added`` (replacing), ``removed`` forgotten, and the
        ``folders`` entries of ``states`` written (None: deleted)."""
        puts = [(raw_identifier(identifier), record) for identifier, record in added]
        deletes = [raw_identifier(identifier) for identifier in removed]

        def body(txn: Any) -> None:
            for raw in deletes:
                self._delete(txn, raw)
            for raw, record in puts:
                self._put(txn, raw, record)
            folders = self.dbs[b"folders"]
            for key, state in states.items():
                if state is None:
                    txn.delete(key, db=folders)
                else:
                    txn.put(key, seal(key, state), db=folders)

        self.write(body)

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
        :func:`xpmstore.store.pins.sync_index` mirrors the pins kept on disk."""
        raws = [raw_identifier(identifier) for identifier in identifiers]

        def body(txn: Any) -> None:
            txn.drop(self.dbs[b"pins"], delete=False)
            for raw in raws:
                txn.put(raw, b"", db=self.dbs[b"pins"])

        self.write(body)

    # --- the input-digest memo (xpmstore.core.digests.PersistentMemo) -----------------------------

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

    def replace_all(self, records: Iterable[tuple[str, IndexRecord]]) -> int:
        """Drop every object record and write ``records`` instead, in one write transaction.

        Pins and the digest memo are kept.  Returns the number of records written.
        """
        items = [(raw_identifier(identifier), record) for identifier, record in records]

        def body(txn: Any) -> int:
            for name in (b"objects", b"names", b"tags", b"deps", b"folders"):
                txn.drop(self.dbs[name], delete=False)
            for raw, record in items:
                self._put(txn, raw, record)
            return len(items)

        return self.write(body)


def _decode_summary(key: bytes, value: bytes) -> RecordSummary | None:
    return decode_record(key, value, identity=False)
