"""An in-memory stand-in for the part of an LMDB environment that the index uses.

The index falls back to it when its files cannot be used at all (a full disk, a read-only file
system, no permission): the process then keeps its index in memory, filled from the workspace's
directories, and every answer still comes from the disk.  Transactions are serialised by one
lock (as LMDB serialises writers) and a write transaction that raises is undone.  Safe across
threads; private to one process.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

__all__ = ["MemoryEnv"]


class _Db:
    """One named database: a dict, and its keys in order when a cursor needs them."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._order: list[bytes] | None = None

    def ordered(self) -> list[bytes]:
        if self._order is None:
            self._order = sorted(self.data)
        return self._order

    def changed(self) -> None:
        self._order = None


class _Cursor:
    """Forward iteration from a position, as :class:`lmdb.Cursor` does it."""

    def __init__(self, db: _Db):
        self._db = db
        self._keys = db.ordered()
        self._at = 0

    def set_range(self, key: bytes) -> bool:
        self._at = bisect.bisect_left(self._keys, key)
        return self._at < len(self._keys)

    def iternext(self, keys: bool = True, values: bool = True) -> Iterator[Any]:
        data = self._db.data
        for key in self._keys[self._at:]:
            if keys and values:
                yield key, data[key]
            elif keys:
                yield key
            else:
                yield data[key]

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return self.iternext()


class _Txn:
    """A transaction; a write transaction keeps what it replaced, to undo it on an error."""

    def __init__(self, env: MemoryEnv, write: bool):
        self._env = env
        self._undo: list[tuple[_Db, bytes, bytes | None]] | None = [] if write else None

    def __enter__(self) -> _Txn:
        self._env.lock.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if kind is not None and self._undo:
                for db, key, old in reversed(self._undo):
                    if old is None:
                        db.data.pop(key, None)
                    else:
                        db.data[key] = old
                    db.changed()
        finally:
            self._env.lock.release()

    def _note(self, db: _Db, key: bytes) -> None:
        if self._undo is None:
            raise PermissionError("a write in a read-only transaction")
        self._undo.append((db, key, db.data.get(key)))
        db.changed()

    def get(self, key: bytes, default: Any = None, db: _Db | None = None) -> Any:
        assert db is not None
        return db.data.get(bytes(key), default)

    def put(self, key: bytes, value: bytes, db: _Db | None = None) -> bool:
        assert db is not None
        key = bytes(key)
        self._note(db, key)
        db.data[key] = bytes(value)
        return True

    def delete(self, key: bytes, db: _Db | None = None) -> bool:
        assert db is not None
        key = bytes(key)
        if key not in db.data:
            return False
        self._note(db, key)
        del db.data[key]
        return True

    def drop(self, db: _Db, delete: bool = True) -> None:
        for key in list(db.data):
            self.delete(key, db=db)

    def stat(self, db: _Db) -> dict[str, int]:
        return {"entries": len(db.data)}

    def cursor(self, db: _Db | None = None) -> _Cursor:
        assert db is not None
        return _Cursor(db)


class MemoryEnv:
    """The environment: named databases, transactions, and the few calls the index makes on an
    environment (``info``, ``set_mapsize``, ``reader_check``, ``close``) as harmless no-ops."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._dbs: dict[bytes, _Db] = {}

    def open_db(self, name: bytes, txn: Any = None) -> _Db:
        """The database ``name`` (created empty on first use)."""
        return self._dbs.setdefault(name, _Db())

    def begin(self, write: bool = False, buffers: bool = False) -> _Txn:
        """A transaction (use it as a context manager)."""
        return _Txn(self, write)

    def info(self) -> dict[str, int]:
        """What the index reads of an LMDB ``info()``."""
        return {"map_size": 0, "last_pgno": 0}

    def set_mapsize(self, size: int) -> None:
        """Nothing to do: memory has no map."""

    def reader_check(self) -> int:
        """No reader slots: none stale."""
        return 0

    def close(self) -> None:
        """Forget every database."""
        self._dbs.clear()
