"""The files of the LMDB index: what is checked before LMDB reads them, and moving them aside.

LMDB reads its data file through a memory map: a page past the end of a file cut short (a full
disk, a copy interrupted) kills the process with SIGBUS, and a write into a sparse ``lock.mdb``
on a full file system does the same.  So, before the first read of an environment:

* ``lock.mdb`` is allocated (``posix_fallocate``), never left sparse: ENOSPC is then an error
  raised here, not a SIGBUS later;
* ``data.mdb`` must hold every page LMDB's committed meta page counts (``last_pgno``); a file
  shorter than that is checked page by page with :func:`lmdb.verify.verify`, a pure-Python walk
  that never maps the file (LMDB may leave a short tail of *free* pages unwritten: that is
  sound).

Errors are sorted into damage (the files must go: :func:`is_damage`) and the rest (a full disk,
permissions, a read-only file system), which never move an index aside.
"""

from __future__ import annotations

import errno
import os
import struct
import time
from pathlib import Path
from typing import Any

import lmdb

from ..errors import IndexDamaged, IndexOutdated

__all__ = [
    "DATA_FILE",
    "KEPT_DAMAGED",
    "LOCK_FILE",
    "IndexDamaged",
    "IndexOutdated",
    "allocate_lock_file",
    "data_file_problem",
    "dead_readers",
    "file_identity",
    "is_damage",
    "keep_slack",
    "move_aside",
    "verify_problems",
]

DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"

SLACK = 1 << 20
"""Bytes kept allocated past the pages LMDB uses in its data file (:func:`keep_slack`)."""

_READER_SLOT = 64
"""Bytes of one reader slot of ``lock.mdb`` (a cache line), and of each of the 3 lines of its
header on Linux (LMDB 0.9 with POSIX robust mutexes): the file is
``(max_readers - 1) * 64 + 192`` bytes.  (A build that wants more grows the file itself, and
that tail stays sparse: the file cannot be reopened to allocate it once LMDB holds its locks.)"""


_NOT_DAMAGE = (lmdb.MapResizedError, lmdb.MapFullError, lmdb.ReadersFullError,
               lmdb.TlsFullError, lmdb.TxnFullError, lmdb.MemoryError, lmdb.DiskError,
               lmdb.ReadonlyError, lmdb.LockError)
"""LMDB errors that say nothing against the files: the machine, the disk or the load."""

_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                 errno.EPERM, errno.ENOMEM, errno.EMFILE, errno.ENFILE,
                                 errno.EAGAIN, errno.EBUSY})


def is_damage(error: BaseException) -> bool:
    """Whether ``error`` (raised by LMDB or while checking its files) means the files are
    damaged and must be moved aside; a full disk, missing permissions or a transient limit are
    not (the index is then used without its files, never thrown away)."""
    if isinstance(error, IndexDamaged):
        return True
    if isinstance(error, _NOT_DAMAGE):
        return False
    if isinstance(error, lmdb.Error):
        return getattr(error, "code", 0) not in _ENVIRONMENT_ERRNOS
    return False


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the data file of the index at ``path``, or None when there is none:
    how a process tells that another one replaced the files it has open."""
    try:
        stat = os.stat(path / DATA_FILE)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def allocate_lock_file(path: Path, max_readers: int) -> None:
    """Create ``lock.mdb`` in ``path`` if needed and give every byte of it disk space, so that
    LMDB's writes into its map never fault on a full file system.  Raises OSError (ENOSPC,
    EDQUOT...) when the space cannot be had; a file system without ``fallocate`` is left alone
    (glibc writes the zeros itself on most).  Only before this process opens the environment:
    closing a descriptor of ``lock.mdb`` drops every fcntl lock the process holds on it."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        wanted = max(os.fstat(fd).st_size, (max_readers - 1) * _READER_SLOT + 3 * _READER_SLOT)
        try:
            os.posix_fallocate(fd, 0, wanted)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    finally:
        os.close(fd)


_LOCK_HEADER = struct.Struct("=IIxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxQI")
"""LMDB 0.9's lock file header on Linux (POSIX robust mutexes): magic, format, the reader
mutex (40 bytes), the last txnid, the number of reader slots ever used."""
_LOCK_MAGIC = 0xBEEFC0DE
_LOCK_FORMAT = 0x10001
_READERS_AT = 2 * _READER_SLOT
_READER = struct.Struct("=Qi")  # a slot: txnid ((uint64)-1 when idle), pid
_IDLE = (1 << 64) - 1


def dead_readers(path: Path) -> list[int]:
    """The pids of processes that died inside a read transaction of the index at ``path``
    (killed, or crashed on a damaged page: LMDB aborts or faults on some), read from
    ``lock.mdb`` without mapping it and before this process opens the environment (a lone
    opener resets the table; and see :func:`allocate_lock_file` on descriptors).  [] when the
    file is absent or not laid out as LMDB 0.9's on Linux."""
    try:
        with open(path / LOCK_FILE, "rb") as handle:
            header = handle.read(_READERS_AT)
            if len(header) < _LOCK_HEADER.size:
                return []
            magic, layout, _, slots = _LOCK_HEADER.unpack_from(header)
            if magic != _LOCK_MAGIC or layout != _LOCK_FORMAT:
                return []
            table = handle.read(min(slots, 1 << 16) * _READER_SLOT)
    except OSError:
        return []
    dead = []
    for offset in range(0, len(table) - _READER.size + 1, _READER_SLOT):
        txnid, pid = _READER.unpack_from(table, offset)
        if pid > 0 and txnid != _IDLE and pid != os.getpid() and not _alive(pid):
            dead.append(pid)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's
    return True


def keep_slack(path: Path, used: int) -> None:
    """Keep :data:`SLACK` bytes allocated past the ``used`` bytes of the data file in ``path``.
    LMDB writes a new page with ``pwrite`` past its last one: into blocks allocated ahead that
    write needs no free space, so on a full disk the index still takes small writes (a
    reconcile, the records of the jobs that just ended).  A file longer than its pages is
    LMDB's normal state.  Best effort: on a full disk the slack stays what it is."""
    try:
        fd = os.open(path / DATA_FILE, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if os.fstat(fd).st_size < used + SLACK // 2:
            os.posix_fallocate(fd, used, SLACK)
    except OSError:
        pass
    finally:
        os.close(fd)


def verify_problems(path: Path) -> list[str]:
    """What :func:`lmdb.verify.verify` finds wrong with the data file in ``path`` (an empty list
    when it is sound).  Never maps the file: safe on any bytes."""
    from lmdb.verify import VerifyError, verify

    try:
        return list(verify(str(path / DATA_FILE), subdir=False))
    except VerifyError as exc:
        return [str(exc)]
    except OSError as exc:
        return [f"cannot read {DATA_FILE}: {exc.strerror or exc}"]


def data_file_problem(env: Any, path: Path) -> str | None:
    """Why the data file of the environment ``env`` (just opened on ``path``, nothing read yet)
    cannot be read safely, or None.

    Cheap when sound: ``env.info()`` and ``env.stat()`` read the meta page, then one ``stat``.
    A file shorter than ``(last_pgno + 1) * page size`` is walked by :func:`verify_problems`.
    """
    try:
        size = os.stat(path / DATA_FILE).st_size
    except FileNotFoundError:
        return None
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    if size >= needed:
        return None
    problems = verify_problems(path)
    if not problems:
        return None  # a tail of free pages LMDB never wrote
    return f"{DATA_FILE} holds {size} of the {needed} bytes its pages need ({problems[0]})"


def move_aside(path: Path) -> Path:
    """Rename the index folder ``path`` to ``<name>.damaged-<time>`` beside it and make an empty
    folder in its place; returns the new name of the old folder.  The caller holds the index's
    open lock."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    os.rename(path, aside)
    path.mkdir()
    _prune_damaged(path)
    return aside


KEPT_DAMAGED = 3
"""How many damaged indexes :func:`move_aside` keeps beside the index (the newest): each is
evidence of what happened, none is needed (the index is never the only copy), and a disk that
keeps damaging them must not fill with copies."""


def _damaged_order(name: str, prefix: str) -> tuple[str, int]:
    """(stamp, number) of a ``<prefix><stamp>[-<number>]`` name: the order they were made in."""
    stamp, _, number = name.removeprefix(prefix).partition("-")
    return stamp, int(number) if number.isdigit() else 1


def _prune_damaged(path: Path) -> None:
    """Delete the damaged copies of the index ``path`` beyond the newest :data:`KEPT_DAMAGED`
    (quietly: one that cannot be deleted stays)."""
    import shutil

    prefix = f"{path.name}.damaged-"
    try:
        copies = [entry for entry in os.scandir(path.parent)
                  if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False)]
    except OSError:
        return
    copies.sort(key=lambda entry: _damaged_order(entry.name, prefix), reverse=True)
    for entry in copies[KEPT_DAMAGED:]:
        shutil.rmtree(entry.path, ignore_errors=True)
