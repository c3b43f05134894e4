"""Reconciling the index with the workspace's directories, in proportion to what changed.

The index holds the done objects; the disk is the truth.  Results made by other hosts (or other
processes whose publication did not reach this index) appear on the disk only, and objects
deleted elsewhere disappear from it, so ``ls``, ``find``, gc and a prefix ``get`` first bring
the index in line with the disk.  Listing every object directory and checking every done
manifest costs O(workspace): minutes on a network file system at a million objects.  Instead
(docs/store.md, "Reconciling"):

* each class folder (``jobs/<name>``, ``cache/<name>``) has a **stamp** in the index: its
  (inode, mtime, ctime) when it was last listed, and the directories in it that the index does
  not hold (not done: running, failed, leftovers; or done but unreadable).  A directory that
  appears in a folder or leaves it (a new task, a pull, a result made on another host, ``rm``,
  gc) changes the folder's mtime: only a folder whose stamp moved is listed again, and in it
  only the directories the index does not know are checked (one ``stat`` of ``.xpm/done``);
* a directory that **becomes done** in place does not change its folder's mtime: the
  directories a stamp lists as not done are checked again at every reconcile;
* a done object that **stops being done** in place (``fsck --repair`` moves its done manifest
  aside) is written to the **journal of undone objects** ``.xpmstore/undone`` by whoever does
  it; every index reads the journal from where it stopped and checks those directories again;
* a stamp read less than 2 s after its folder last changed is not trusted (a change within the
  file system's timestamp granularity could hide behind it): that folder is listed again next
  time.

``full=True`` lists every folder and checks every directory (what an index rebuild does, and
the only way to see a done manifest deleted by hand).  Safe across processes: every result of
one pass (records added and removed, stamps) is written in one transaction, and a stamp is
always read before the listing it vouches for, so a stamp never claims more than the records
written with it.  A pass that finds nothing new writes nothing: read-only commands leave the
index as they found it (``xpmstore serve`` keeps a listing while the index does not change).
"""

from __future__ import annotations

import os
import re
import stat
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .index import Index
from .indexrecords import IndexRecord
from .objectdirs import ObjectDir
from .taskdirs import record_from_disk
from .workspace import DONE, KINDS, Workspace

__all__ = ["RACY_SECONDS", "Reconciled", "note_undone", "reconcile"]

RACY_SECONDS = 2.0
"""A folder that changed less than this before its stamp was read is listed again next time."""

SIBLING_CHECKS = 1000
"""Above this many identifiers to tell apart, the other kind's folder of a name is listed
rather than each identifier looked for in it."""

_FULL_ID = re.compile(r"[0-9a-f]{64}")
_JOURNAL_KEY = b"\0undone"
_JOURNAL = struct.Struct(">QQ")  # inode, offset read up to
_STAMP = struct.Struct(">cBQqq")  # b"S", racy, inode, mtime_ns, ctime_ns
_ABSENT = b"A"
_KIND_OF_TOP = {top: kind for kind, top in KINDS.items()}

Stamp = tuple[int, int, int]


class Reconciled(NamedTuple):
    """What a reconcile did and found: records ``added`` and ``removed``, ``folders`` listed,
    and the directories on disk the index does not hold (``unindexed``: not done, or done but
    unreadable; ``done`` from a ``stat`` made by this pass)."""

    added: int
    removed: int
    folders: int
    unindexed: list[ObjectDir]


@dataclass
class _Folder:
    """One class folder as this pass sees it."""

    kind: str
    name: str
    path: str | None  # None: not on disk
    stamp: Stamp | None = None
    racy: bool = False
    unindexed: dict[str, bool] = field(default_factory=dict)  # identifier → done

    @property
    def key(self) -> bytes:
        return os.fsencode(f"{KINDS[self.kind]}/{self.name}")


def _decode_state(body: bytes) -> tuple[Stamp | None, bool, list[str]] | None:
    """(stamp, racy, unindexed identifiers) of a folder's stored state; (None, False, []) for an
    absent folder; None for bytes that are not a state (then the folder is listed again)."""
    if body == _ABSENT:
        return None, False, []
    if len(body) < _STAMP.size or (len(body) - _STAMP.size) % 32 or body[:1] != b"S":
        return None
    _, racy, inode, mtime, ctime = _STAMP.unpack_from(body)
    rest = body[_STAMP.size:]
    return (inode, mtime, ctime), bool(racy), [rest[i:i + 32].hex()
                                               for i in range(0, len(rest), 32)]


def _encode_state(folder: _Folder) -> bytes:
    if folder.path is None or folder.stamp is None:
        return _ABSENT
    return _STAMP.pack(b"S", folder.racy, *folder.stamp) + b"".join(
        bytes.fromhex(ident) for ident in sorted(folder.unindexed))


def _stamp(path: str) -> tuple[Stamp, int] | None:
    """(stamp, mtime_ns) of the folder ``path``, or None when it is not a real folder."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(found.st_mode):
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_ctime_ns), found.st_mtime_ns


def _class_folders(workspace: Workspace) -> dict[tuple[str, str], str]:
    """(kind, name) → path of every class folder on disk (symbolic links and dot names are not
    class folders)."""
    found: dict[tuple[str, str], str] = {}
    for kind, top in KINDS.items():
        try:
            entries = list(os.scandir(workspace.root / top))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                found[(kind, entry.name)] = entry.path
    return found


def _listing(path: str) -> list[str]:
    """The object directories of a class folder (64-hex names, real folders)."""
    try:
        with os.scandir(path) as entries:
            return [entry.name for entry in entries
                    if _FULL_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_done(directory: str) -> bool:
    return os.path.exists(f"{directory}/{DONE}")


def note_undone(workspace: Workspace, identifier: str, kind: str, name: str) -> None:
    """Tell every index that the done object ``identifier`` (in ``<kind folder>/<name>``) is no
    longer done: one line appended to ``.xpmstore/undone`` (see the module doc)."""
    line = f"{identifier} {KINDS[kind]}/{name}\n".encode()
    path = workspace.private / "undone"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    workspace.private.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, line)  # one write of a short line: appended whole
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_journal(workspace: Workspace, state: bytes | None) -> tuple[dict[str, str], bytes]:
    """(identifier → folder key) of the undone objects written since this index last read the
    journal, and the journal's new position.  A journal replaced or cut short is read again
    from its start; lines that are not ``<64 hex> <top>/<name>`` are ignored."""
    path = workspace.private / "undone"
    inode, offset = _JOURNAL.unpack(state) if state and len(state) == _JOURNAL.size else (0, 0)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}, _JOURNAL.pack(0, 0)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return {}, _JOURNAL.pack(0, 0)
        if info.st_ino != inode or info.st_size < offset:
            offset = 0
        os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    complete = data.rfind(b"\n") + 1  # a line being written is read next time
    found: dict[str, str] = {}
    for line in data[:complete].split(b"\n"):
        ident, _, folder = line.decode(errors="replace").partition(" ")
        top, _, name = folder.partition("/")
        if _FULL_ID.fullmatch(ident) and top in _KIND_OF_TOP and name and "/" not in name:
            found[ident] = folder
    return found, _JOURNAL.pack(info.st_ino, offset + complete)


class _Pass:
    """One reconcile: what it saw, and what it will write in one transaction."""

    def __init__(self, index: Index, workspace: Workspace, full: bool):
        self.index = index
        self.workspace = workspace
        self.full = full
        self.now_ns = time.time_ns()
        self.added: list[tuple[str, IndexRecord]] = []
        self.removed: set[str] = set()
        self.states: dict[bytes, bytes | None] = {}
        self.folders: list[_Folder] = []
        self.listed = 0

    def run(self) -> Reconciled:
        stored = self.index.folder_states()
        before = dict(stored)
        suspects, journal = _read_journal(self.workspace, stored.pop(_JOURNAL_KEY, None))
        on_disk = _class_folders(self.workspace)
        indexed = set(self.index.names())
        names = {name for _, name in on_disk} | indexed
        for key in stored:
            top, _, name = os.fsdecode(key).partition("/")
            if top in _KIND_OF_TOP and name:
                names.add(name)
            else:
                self.states[key] = None  # not a folder's key: dropped
        for name in sorted(names):
            self._name(name, on_disk, stored, name in indexed,
                       {i: f for i, f in suspects.items() if f.partition("/")[2] == name})
        self.states[_JOURNAL_KEY] = journal
        changed = {key: state for key, state in self.states.items() if before.get(key) != state}
        if self.added or self.removed or changed:  # nothing new: no write (read-only commands)
            self.index.commit_reconcile(self.added, self.removed, changed)
        unindexed = [ObjectDir(ident, folder.kind, folder.name, f"{folder.path}/{ident}", done)
                     for folder in self.folders if folder.path is not None
                     for ident, done in sorted(folder.unindexed.items())]
        return Reconciled(len(self.added), len(self.removed), self.listed, unindexed)

    def _name(self, name: str, on_disk: dict[tuple[str, str], str],
              stored: dict[bytes, bytes], indexed: bool, suspects: dict[str, str]) -> None:
        """Reconcile the folders of one identity name (``jobs/<name>`` and ``cache/<name>``,
        whose objects share the name's entries in the index)."""
        changed: list[_Folder] = []
        unchanged: list[_Folder] = []
        absent: list[bytes] = []  # folders without a state: nothing indexed, none on disk
        added_before = len(self.added)
        for kind in KINDS:
            folder = _Folder(kind, name, on_disk.get((kind, name)))
            raw_state = stored.get(folder.key)
            state = _decode_state(raw_state) if raw_state is not None else None
            if folder.path is not None:
                found = _stamp(folder.path)
                if found is None:  # replaced by a file or a link since the listing
                    folder.path = None
                else:
                    folder.stamp, mtime_ns = found
                    folder.racy = abs(self.now_ns - mtime_ns) < RACY_SECONDS * 1e9
            if folder.path is None:
                if not indexed and (raw_state is None or state is None or state[0] is None):
                    self.states[folder.key] = None  # no folder and nothing indexed: no state
                    absent.append(folder.key)
                    continue
                same = state is not None and state[0] is None  # absent then, absent now
            else:
                same = (not self.full and state is not None and not state[1]
                        and state[0] == folder.stamp)
            if same:
                assert state is not None
                folder.unindexed = dict.fromkeys(state[2], False)
                unchanged.append(folder)
            else:
                changed.append(folder)
        if changed:
            self._rescan(name, changed, unchanged, suspects)
            if len(self.added) > added_before:  # the name is indexed now: its absent folders
                for key in absent:               # are stamped as such at once (not next pass)
                    self.states[key] = _ABSENT
        for folder in unchanged:
            self._recheck(folder, suspects)
        for folder in changed + unchanged:
            self.folders.append(folder)
            self.states[folder.key] = _encode_state(folder)

    def _rescan(self, name: str, changed: list[_Folder], unchanged: list[_Folder],
                suspects: dict[str, str]) -> None:
        """List the changed folders of ``name``; index their new done objects, forget the
        objects that left them."""
        known = set(self.index.by_name(name))
        listed: dict[str, _Folder] = {}
        for folder in changed:
            if folder.path is not None:
                self.listed += 1
                for ident in _listing(folder.path):
                    listed[ident] = folder
        gone = known - listed.keys()
        for sibling in unchanged:
            if not gone or sibling.path is None:
                continue
            if len(gone) <= SIBLING_CHECKS:  # known objects of the other kind stay
                gone = {ident for ident in gone
                        if not os.path.isdir(f"{sibling.path}/{ident}")}
            else:
                self.listed += 1
                gone -= set(_listing(sibling.path))
        self.removed |= gone
        for ident, folder in listed.items():
            if ident in known and not self.full and ident not in suspects:
                continue  # known done: trusted (a done object undone is in the journal)
            self._check(folder, ident, ident in known)

    def _check(self, folder: _Folder, ident: str, known: bool | None) -> None:
        """Look at one directory of ``folder`` that the index may not hold as done (``known``:
        whether it holds it; None: asked of the index when the directory is done)."""
        directory = f"{folder.path}/{ident}"
        if not _is_done(directory):
            folder.unindexed[ident] = False
            if known:
                self.removed.add(ident)
            return
        if known is None:
            known = self.index.get_raw(bytes.fromhex(ident), identity=False) is not None
        if known:
            folder.unindexed.pop(ident, None)
            return
        record = record_from_disk(self.workspace, Path(directory))
        if record is None:  # done but unreadable (fsck says why): gc reads its params.json
            folder.unindexed[ident] = True
        else:
            folder.unindexed.pop(ident, None)
            self.added.append((ident, record))

    def _recheck(self, folder: _Folder, suspects: dict[str, str]) -> None:
        """An unchanged folder: the directories it held that the index does not, and the
        objects the journal says were undone."""
        if folder.path is None:
            return
        for ident in list(folder.unindexed):
            self._check(folder, ident, None)
        key = os.fsdecode(folder.key)
        for ident, where in suspects.items():
            if where == key and os.path.isdir(f"{folder.path}/{ident}"):
                self._check(folder, ident, True)


def reconcile(index: Index, workspace: Workspace, *, full: bool = False) -> Reconciled:
    """Bring ``index`` in line with the directories of ``workspace``, listing only the class
    folders that changed since the last reconcile (all of them with ``full``); returns what it
    did and the directories the index does not hold (see the module doc)."""
    return _Pass(index, workspace, full).run()
