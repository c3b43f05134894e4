"""Refilling the index from the workspace's directories: the disk is the truth.

:func:`fill` refills an open index (the index does it itself after moving damaged files aside);
:func:`record_of` recomputes the record of one object (a record that fails its check);
:func:`rebuild` is ``xpmstore index rebuild``: a new index built beside the old one, which it
never needs to open, then put in its place.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import lmdb

from ..errors import CorruptObjectError, IndexWriteError
from .index import Index, index_location, install
from .indexfiles import verify_problems
from .indexrecords import IndexRecord
from .objectdirs import find_object_dirs, list_object_dirs
from .taskdirs import is_done, read_record, record_from_disk
from .taskstate import process_start
from .workspace import Workspace

__all__ = ["disk_records", "fill", "rebuild", "record_of"]


OnDamaged = Callable[[Path, str], None]
"""Told of each done object left out because it cannot be read: (directory, why)."""


def disk_records(workspace: Workspace,
                 on_damaged: OnDamaged | None = None) -> list[tuple[str, IndexRecord]]:
    """(identifier, index record) of every done object of ``workspace``, read from its files;
    one that cannot be read is left out (``on_damaged(directory, why)``)."""
    records = []
    for directory in list_object_dirs(workspace):
        try:
            record = read_record(workspace, directory)
        except CorruptObjectError as exc:
            if on_damaged is not None:
                on_damaged(directory, str(exc))
            continue
        if record is not None:
            records.append((directory.name, record))
    return records


def fill(index: Index, workspace: Workspace,
         on_damaged: OnDamaged | None = None) -> tuple[int, int]:
    """Make the objects and pins of ``index`` those of the disk (one write transaction each,
    the digest memo kept); returns (objects, pins)."""
    from .pins import sync_index

    count = index.replace_all(disk_records(workspace, on_damaged))
    return count, sync_index(workspace, index)


def record_of(workspace: Workspace, identifier: str) -> IndexRecord | None:
    """The index record of the done object ``identifier`` read from its directory, or None when
    no done object of that identifier is here."""
    for _, candidate in find_object_dirs(workspace, identifier):
        if is_done(candidate):
            return record_from_disk(workspace, candidate)
    return None


_LEFTOVER = re.compile(r"\.rebuild-(\d+)")


def _clear_leftovers(location: Path) -> None:
    """Remove the folders of rebuilds whose process is gone (killed mid-way)."""
    try:
        siblings = list(location.parent.iterdir())
    except OSError:
        return
    for sibling in siblings:
        match = _LEFTOVER.fullmatch(sibling.name[len(location.name):])
        if sibling.name.startswith(location.name) and match and process_start(
                int(match.group(1))) is None:
            shutil.rmtree(sibling, ignore_errors=True)


def _salvage(location: Path, fresh: Index, workspace: Workspace) -> None:
    """Pins found only in the old index go to disk, and its digest memo into ``fresh``, when
    the old files pass :func:`~xpmstore.store.indexfiles.verify_problems` (read without LMDB);
    otherwise nothing of them is read."""
    if not (location / "data.mdb").is_file() or verify_problems(location):
        return
    from .pins import pinned

    old = Index.open(location)
    pinned(workspace, old)
    fresh.copy_digests(old)


def rebuild(workspace: Workspace, on_damaged: OnDamaged | None = None) -> tuple[int, int]:
    """Build a new index of ``workspace`` from its directories beside the old one, then put it
    in its place (processes that have the old one open adopt the new one on their next write);
    returns (objects, pins).  The old index is never opened unless it is sound.  Raises
    IndexWriteError (an OSError) when the new one cannot be written (a full disk): the old one
    is then left as it was."""
    location = index_location(workspace)
    location.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(location)
    built = location.with_name(f"{location.name}.rebuild-{os.getpid()}")
    shutil.rmtree(built, ignore_errors=True)
    try:
        fresh = Index(built, fallback=False)
        try:
            _salvage(location, fresh, workspace)
            counts = fill(fresh, workspace, on_damaged)
        finally:
            fresh.close()
    except (OSError, lmdb.Error) as error:
        shutil.rmtree(built, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(built.with_name(f"{built.name}.lock"))
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise IndexWriteError(f"cannot write a new index beside {location} ({reason}); the old"
                              " one is left as it was") from None
    install(location, built)
    return counts
